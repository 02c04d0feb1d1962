"""The CLI syntax of stages and gates: what it accepts, what it refuses, and its round trips."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import ConfigurationError
from edgefleet.server.rollout.plan import (
    check_every_stage_is_judged,
    format_duration,
    format_gate,
    format_share,
    format_stages,
    parse_duration,
    parse_gate,
    parse_share,
    parse_stages,
)
from edgefleet.server.rollout.spec import Gate, RolloutPlan, Stage

# -- shares and durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "share"),
    [("5%", 0.05), ("100%", 1.0), ("12.5%", 0.125), ("0.05", 0.05), (" 1 ", 1.0), ("1e-3", 0.001)],
)
def test_a_share_is_a_percentage_or_a_fraction(text: str, share: float) -> None:
    assert parse_share(text) == share


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", "more than 100%; for 5 percent write 5%"),
        ("101%", "more than 100%"),
        ("0%", "must be more than 0%"),
        ("-5%", "must be more than 0%"),
        ("half", "expected a percentage such as 5% or a fraction such as 0.05"),
        ("nan", "expected a percentage"),
        ("", "expected a percentage"),
    ],
)
def test_a_bad_share_is_refused_with_the_expected_syntax(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_share(text)


def test_zero_is_a_share_only_where_allowed() -> None:
    assert parse_share("0%", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("0", 0.0),
        (" 2H ", 7200.0),
    ],
)
def test_a_duration_has_an_optional_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "-1s", "h", "1w", "inf", "1h-30m", "2 weeks"])
def test_a_bad_duration_is_refused_with_the_expected_syntax(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"expected a duration such as 30s, 5m, 2h"):
        parse_duration(text)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_a_formatted_duration_reads_back_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1, exclude_min=True))
def test_a_formatted_share_reads_back_exactly(share: float) -> None:
    assert parse_share(format_share(share)) == share


def test_round_durations_and_shares_format_readably() -> None:
    assert [format_duration(s) for s in (0.0, 45.0, 300.0, 7200.0, 172800.0)] == [
        "0s",
        "45s",
        "5m",
        "2h",
        "2d",
    ]
    assert [format_share(s) for s in (0.05, 0.1, 0.125, 1.0)] == ["5%", "10%", "12.5%", "100%"]


# -- stages -----------------------------------------------------------------------------------


def test_the_documented_example_parses_into_four_stages() -> None:
    assert parse_stages("shadow:10%:1h,canary:5%:2h,25%:2h,100%") == (
        Stage("shadow", 0.1, 3600.0),
        Stage("canary", 0.05, 7200.0),
        Stage("staged", 0.25, 7200.0),
        Stage("staged", 1.0, 0.0),
    )


def test_a_shadow_stage_takes_a_sample_rate_as_fourth_field() -> None:
    (shadow, _) = parse_stages("shadow:10%:1h:20%,100%")
    assert shadow.sample_rate == 0.2


def test_a_single_full_stage_is_a_plan() -> None:
    assert parse_stages("100%") == (Stage("staged", 1.0),)


def test_kinds_are_explicit_or_staged() -> None:
    stages = parse_stages("canary:0.01,staged:0.5:30s,1")
    assert [s.kind for s in stages] == ["canary", "staged", "staged"]
    assert [s.bake_s for s in stages] == [0.0, 30.0, 0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no stages given: expected comma-separated"),
        ("50%,,100%", "stage 2 is empty"),
        ("canry:5%,100%", "unknown stage kind 'canry'; expected one of shadow, canary, staged"),
        ("canary,100%", "stage 1 .* lacks a share"),
        ("canary:5%:1h:20%,100%", "has too many fields: a canary stage is canary:share"),
        ("0%,100%", r"stage 1 \('0%'\): share '0%' must be more than 0%"),
        ("150%", "share '150%' is more than 100%"),
        ("5%:soon,100%", "stage 1 .*: bad duration 'soon'"),
        ("shadow:10%:1h:0,100%", "share '0' must be more than 0%"),
        ("25%,10%,100%", r"stage 2 \('10%'\) must serve more devices than stage 1 \('25%'\)"),
        ("50%,50%,100%", "serving shares strictly increase"),
        ("canary:5%,shadow:10%,100%", "stage 2 .* is a shadow stage after serving stage 1"),
        ("canary:5%,50%", r"the last stage \('50%'\) must serve 100%.*end with e\.g\. ,100%"),
        ("shadow:100%", r"the last stage \('shadow:100%'\) must serve 100%"),
    ],
)
def test_a_bad_stage_list_is_refused_naming_the_stage(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_stages(text)


def test_shadow_shares_need_not_increase() -> None:
    stages = parse_stages("shadow:50%,shadow:10%,canary:5%,100%")
    assert [s.share for s in stages] == [0.5, 0.1, 0.05, 1.0]


def test_format_stages_gives_the_cli_syntax_back() -> None:
    text = "shadow:10%:1h:20%,canary:5%:2h,25%:2h,100%"
    assert format_stages(parse_stages(text)) == text


def _serving_shares() -> st.SearchStrategy[list[float]]:
    share = st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True)
    return st.lists(share, max_size=5, unique=True).map(lambda shares: [*sorted(shares), 1.0])


@st.composite
def stage_tuples(draw: st.DrawFn) -> tuple[Stage, ...]:
    """Valid stage tuples: some shadow stages, then serving stages up to 100%."""
    bake = st.floats(min_value=0, max_value=1e9, allow_nan=False)
    unit = st.floats(min_value=0, max_value=1, exclude_min=True)
    shadows = draw(
        st.lists(st.builds(Stage, st.just("shadow"), unit, bake, unit), max_size=3),
    )
    serving = [
        Stage(draw(st.sampled_from(["canary", "staged"])), share, draw(bake))
        for share in draw(_serving_shares())
    ]
    return (*shadows, *serving)


@given(stage_tuples())
def test_parse_stages_reads_format_stages_back_exactly(stages: tuple[Stage, ...]) -> None:
    assert parse_stages(format_stages(stages)) == stages


# -- gates ------------------------------------------------------------------------------------


def test_a_gate_is_a_metric_an_operator_and_a_threshold() -> None:
    assert parse_gate("p99_ratio<=1.5") == Gate("p99_ratio", "<=", 1.5)
    assert parse_gate(" accuracy_delta >= -0.02 ") == Gate("accuracy_delta", ">=", -0.02)


def test_gate_options_follow_the_threshold() -> None:
    gate = parse_gate(
        "accuracy_delta>=-0.02,min_devices=3,min_share=80%,min_inferences=200,"
        "interval=30s,failures=2"
    )
    assert gate == Gate("accuracy_delta", ">=", -0.02, 3, 0.8, 200, 30.0, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "latency<=2",
            "unknown gate metric 'latency'; expected one of p99_ratio, error_rate_delta",
        ),
        ("p99_ratio<1.5", "bad operator '<' .*; expected <= or >="),
        ("p99_ratio==1.5", "bad operator '=='"),
        ("p99_ratio", "bad gate 'p99_ratio': expected metric<=number or metric>=number"),
        ("p99_ratio<=fast", "bad threshold 'fast'.*expected a number"),
        ("p99_ratio<=inf", "bad threshold 'inf'"),
        ("p99_ratio<=1.5,devices=3", "unknown gate option 'devices'.*expected one of min_devices"),
        ("p99_ratio<=1.5,min_devices", "gate option 'min_devices' needs a value"),
        ("p99_ratio<=1.5,min_devices=two", "gate option min_devices: 'two' is not an integer"),
        ("p99_ratio<=1.5,min_devices=0", "min_devices must be an integer >= 1, got 0"),
        ("p99_ratio<=1.5,failures=0", "failures must be an integer >= 1"),
        ("p99_ratio<=1.5,min_inferences=-1", "min_inferences must be an integer >= 0"),
        ("p99_ratio<=1.5,min_share=120%", "gate option min_share: share '120%' is more than 100%"),
        ("p99_ratio<=1.5,interval=0", "interval must be positive"),
        ("p99_ratio<=1.5,interval=soon", "gate option interval: bad duration 'soon'"),
        ("p99_ratio<=1.5,failures=1,failures=2", "gate option 'failures' is given twice"),
        ("p99_ratio<=1.5,", "empty gate option"),
    ],
)
def test_a_bad_gate_is_refused_listing_the_valid_choices(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_gate(text)


def test_a_zero_min_share_is_allowed() -> None:
    assert parse_gate("rollbacks<=0,min_share=0%").min_device_share == 0.0


def test_format_gate_shows_only_options_that_differ_from_the_defaults() -> None:
    assert format_gate(Gate("p99_ratio", "<=", 1.5)) == "p99_ratio<=1.5"
    assert format_gate(Gate("rollbacks", "<=", 0.0, interval_s=60.0)) == "rollbacks<=0,interval=1m"


gates = st.builds(
    Gate,
    st.sampled_from(["p99_ratio", "error_rate_delta", "accuracy_delta", "disagreement"]),
    st.sampled_from(["<=", ">="]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e9, exclude_min=True),
    st.integers(min_value=1, max_value=100),
)


@given(gates)
def test_parse_gate_reads_format_gate_back_exactly(gate: Gate) -> None:
    assert parse_gate(format_gate(gate)) == gate


@given(gates)
def test_a_gate_with_default_options_formats_as_its_condition_alone(gate: Gate) -> None:
    defaults = Gate(gate.metric, gate.op, gate.threshold)
    assert "," not in format_gate(defaults)
    assert format_gate(dataclasses.replace(gate, failure_limit=101)).endswith(",failures=101")


@pytest.mark.parametrize(
    ("stages", "gates", "stage_shown"),
    [
        ("canary:5%:1h,100%", (), "stage 1"),
        ("shadow:10%:1h,100%", ("disagreement<=0.1",), "stage 2"),
    ],
)
def test_a_plan_with_a_stage_no_gate_applies_to_is_refused_naming_the_stage(
    stages: str, gates: tuple[str, ...], stage_shown: str
) -> None:
    plan = RolloutPlan(parse_stages(stages), tuple(parse_gate(g) for g in gates))
    with pytest.raises(ConfigurationError, match=f"{stage_shown} .* has no gate to judge it"):
        check_every_stage_is_judged(plan)


def test_disagreement_judges_the_shadow_stage_and_another_gate_the_rest() -> None:
    plan = RolloutPlan(
        parse_stages("shadow:10%:1h,100%"),
        (parse_gate("disagreement<=0.1"), parse_gate("accuracy_delta>=-0.03")),
    )
    assert check_every_stage_is_judged(plan) is plan
