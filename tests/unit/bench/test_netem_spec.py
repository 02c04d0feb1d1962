from __future__ import annotations

import pytest

from edgefleet.bench.netem_spec import SYNTAX, Emulation, parse_emulation
from edgefleet.errors import ConfigurationError


def test_the_documented_example_parses_into_seconds_bits_and_a_fraction() -> None:
    link = parse_emulation("rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%")
    assert link == Emulation(rtt_s=0.045, jitter_s=0.010, bandwidth_bps=20e6, loss=0.005)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtt=1500us", Emulation(rtt_s=0.0015)),
        ("rtt=0.2s", Emulation(rtt_s=0.2)),
        ("rtt=0ms", Emulation()),
        ("jitter=3ms", Emulation(jitter_s=0.003)),
        ("bw=512kbit", Emulation(bandwidth_bps=512e3)),
        ("bw=1gbit", Emulation(bandwidth_bps=1e9)),
        ("bw=2mbps", Emulation(bandwidth_bps=16e6)),  # tc convention: bytes per second
        ("bw=100kbps", Emulation(bandwidth_bps=800e3)),
        ("loss=2%", Emulation(loss=0.02)),
        ("loss=0.02", Emulation(loss=0.02)),
        ("loss=100%", Emulation(loss=1.0)),
        ("loss=1", Emulation(loss=1.0)),
        ("dist=uniform,jitter=4ms", Emulation(jitter_s=0.004, jitter_distribution="uniform")),
    ],
)
def test_each_key_accepts_its_documented_units(text: str, expected: Emulation) -> None:
    assert parse_emulation(text) == expected


def test_keys_units_and_spaces_are_forgiving_about_case_and_whitespace() -> None:
    assert parse_emulation(" RTT = 45ms , BW=20Mbit ") == parse_emulation("rtt=45ms,bw=20mbit")


def test_keys_left_out_add_nothing() -> None:
    link = parse_emulation("jitter=5ms")
    assert (link.rtt_s, link.bandwidth_bps, link.loss) == (0.0, None, 0.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the spec is empty"),
        ("   ", "the spec is empty"),
        ("rtt", "'rtt' is not key=value"),
        ("=5ms", "is not key=value"),
        ("rtt=45ms,", "'' is not key=value"),
        ("latency=45ms", "unknown key 'latency' (valid keys: rtt, jitter, bw, loss, dist)"),
        ("rtt=45ms,rtt=50ms", "rtt is given twice"),
        ("rtt=", "rtt has no value"),
        ("rtt=45", "rtt=45 is missing a unit (us, ms, s)"),
        ("rtt=0", "rtt=0 is missing a unit"),
        ("bw=20", "bw=20 is missing a unit (bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)"),
        ("rtt=45min", "rtt=45min has unknown unit 'min'"),
        ("bw=20mb", "bw=20mb has unknown unit 'mb'"),
        ("rtt=fast", "rtt=fast is not a number with a unit"),
        ("rtt=nanms", "is not a number with a unit"),
        ("rtt=-5ms", "rtt=-5ms is negative"),
        ("jitter=-1ms", "jitter=-1ms is negative"),
        ("loss=-1%", "loss=-1% is negative"),
        ("bw=0mbit", "the rate must be > 0 (leave bw out for unlimited)"),
        ("loss=150%", "loss=150%: loss is above 100%"),
        ("loss=5", "loss is above 100% (as a fraction; write 5% for percent)"),
        ("loss=5ms", "loss is a percentage (0.5%) or a fraction (0.005)"),
        ("dist=pareto", "dist must be one of normal, uniform"),
    ],
)
def test_every_bad_spec_names_the_bad_part_and_shows_the_syntax(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_emulation(text)
    message = str(caught.value)
    assert fragment in message
    assert message.endswith(f"syntax: {SYNTAX}")
    assert "\n" not in message


@pytest.mark.parametrize(
    "fields",
    [
        {"rtt_s": -0.001},
        {"jitter_s": float("nan")},
        {"loss": 1.5},
        {"bandwidth_bps": 0.0},
        {"jitter_distribution": "pareto"},
    ],
)
def test_an_emulation_built_in_code_is_validated_too(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Emulation(**fields)  # type: ignore[arg-type]


def test_describe_is_short_and_human() -> None:
    assert parse_emulation("rtt=45ms").describe() == "rtt 45 ms"
    assert (
        parse_emulation("rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%,dist=uniform").describe()
        == "rtt 45 ms, jitter 10 ms (uniform), 20 Mbit/s, loss 0.5%"
    )
    assert parse_emulation("rtt=0ms").describe() == "no emulation"


def test_as_dict_gives_report_fields_in_report_units() -> None:
    assert parse_emulation("rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%").as_dict() == {
        "rtt_ms": pytest.approx(45.0),
        "jitter_ms": pytest.approx(10.0),
        "bandwidth_mbit": pytest.approx(20.0),
        "loss_percent": pytest.approx(0.5),
        "jitter_distribution": "normal",
    }
    assert parse_emulation("rtt=1ms").as_dict()["bandwidth_mbit"] is None
