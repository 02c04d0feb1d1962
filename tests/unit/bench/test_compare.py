"""`edgefleet bench compare`: how candidates are scored, ranked and explained."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgefleet.bench.compare import (
    RANKING_RULE,
    Comparison,
    compare,
    format_table,
    load_reports,
    parse_prices,
    parse_slo,
    render_compare_html,
)
from edgefleet.errors import ConfigurationError
from tests.unit.bench.reports import (
    cloud_target,
    make_report,
    make_target,
    server_block,
    sustained_block,
    write_report,
)

P99_50 = {"p99": 50.0}


def three_candidates() -> list[dict[str, Any]]:
    """One misses the SLO, one is the fastest at the SLO, one is the most frugal."""
    return [
        make_report("slowpoke", [make_target(p50=40, p99=80, qps=400, mj=5.0)]),
        make_report("fast", [make_target(p99=5, qps=1800, mj=2.9, estimated=True, top1=0.984)]),
        make_report("frugal", [make_target(p99=20, qps=900, mj=1.1, estimated=False, top1=0.978)]),
    ]


def by_label(result: Comparison) -> dict[str, Any]:
    return {c.label: c for c in result.candidates}


# --- ranking -------------------------------------------------------------------------------


def test_slo_meeting_candidates_rank_first_and_the_fastest_at_the_slo_is_recommended() -> None:
    result = compare(three_candidates(), P99_50)

    assert [c.label for c in result.candidates] == ["fast", "frugal", "slowpoke"]
    assert [c.rank for c in result.candidates] == [1, 2, 3]
    assert [c.verdict for c in result.candidates] == ["recommended", "meets SLO", "fails SLO"]
    assert result.recommended is not None
    assert result.recommended.label == "fast"
    assert result.recommended.reason.startswith("fastest at the SLO: 1,800 QPS")
    assert "2.9 mJ/inference (estimate)" in result.recommended.reason


def test_the_runner_up_says_why_it_is_second_and_what_it_is_best_at() -> None:
    frugal = by_label(compare(three_candidates(), P99_50))["frugal"]

    assert "ranked below fast on throughput at the SLO" in frugal.reason
    assert "most efficient: 1.1 mJ/inference" in frugal.reason
    assert "(estimate)" not in frugal.reason  # a measured value is not labelled as an estimate


def test_a_candidate_that_fails_the_slo_says_which_percentile_missed() -> None:
    slow = by_label(compare(three_candidates(), P99_50))["slowpoke"]

    assert slow.reason == "fails the SLO: p99 80 ms exceeds 50 ms"
    assert slow.scores.qps_at_slo == 0
    assert slow.criteria[1].explanation == "0 QPS: does not meet the SLO"


def test_the_five_criteria_come_in_order_each_with_a_one_line_explanation() -> None:
    fast = by_label(compare(three_candidates(), P99_50))["fast"]

    names = [c.name for c in fast.criteria]
    assert names == ["tail latency", "throughput at SLO", "energy", "accuracy", "sustained"]
    assert fast.criteria[0].explanation == "p99 5 ms meets 50 ms"
    assert fast.criteria[3].explanation == "98.4 % top-1 (449 samples)"
    assert fast.criteria[4].explanation == "not measured"
    assert not fast.criteria[4].measured
    assert all("\n" not in c.explanation for c in fast.criteria)


def test_accuracy_more_than_one_point_better_outranks_throughput() -> None:
    reports = three_candidates()
    reports[1]["targets"][0]["accuracy"]["top1"] = 0.95  # fast is now 2.8 points worse

    result = compare(reports, P99_50)

    assert [c.label for c in result.candidates] == ["frugal", "fast", "slowpoke"]
    assert result.candidates[0].reason.startswith("most accurate: 97.8 % top-1")


def test_with_equal_throughput_the_lower_energy_wins() -> None:
    reports = [
        make_report("a", [make_target(p99=5, qps=1000, mj=3.0)]),
        make_report("b", [make_target(p99=6, qps=1000, mj=2.0)]),
    ]
    best = compare(reports, P99_50).candidates[0]

    assert best.label == "b"
    assert best.reason.startswith("most efficient among equally fast: 2 mJ/inference")


def test_unmeasured_accuracy_does_not_count_against_a_candidate() -> None:
    reports = [
        make_report("measured", [make_target(p99=5, qps=1000, top1=0.99)]),
        make_report("unmeasured", [make_target(p99=5, qps=2000, top1=None)]),
    ]
    result = compare(reports, P99_50)

    assert result.candidates[0].label == "unmeasured"
    assert result.candidates[0].criteria[3].explanation == "not measured"


def test_candidates_failing_the_slo_are_ordered_by_p99_and_none_is_recommended() -> None:
    reports = [
        make_report("worse", [make_target(p99=300)]),
        make_report("bad", [make_target(p99=90)]),
    ]
    result = compare(reports, P99_50)

    assert [c.label for c in result.candidates] == ["bad", "worse"]
    assert result.recommended is None
    assert {c.verdict for c in result.candidates} == {"fails SLO"}


def test_every_slo_percentile_must_be_met() -> None:
    report = make_report("pi5", [make_target(p50=10, p99=40)])  # p90 = (10 + 40) / 2 = 25 ms
    candidate = compare([report], {"p90": 20.0, "p99": 50.0}).candidates[0]

    assert not candidate.meets_slo
    assert candidate.reason == "fails the SLO: p90 25 ms exceeds 20 ms"
    assert "p99 40 ms meets 50 ms" in candidate.criteria[0].explanation


def test_more_than_one_percent_errors_fails_the_slo() -> None:
    report = make_report("flaky", [make_target(p99=5, qps=100, seconds=10, errors=20)])
    candidate = compare([report], P99_50).candidates[0]

    assert candidate.verdict == "fails SLO"
    assert "error rate 2 % exceeds 1 %" in candidate.reason


def test_the_server_search_gives_the_throughput_at_the_slo() -> None:
    target = make_target(p99=0.7, qps=499, server=server_block(max_qps=1800.0))
    candidate = compare([make_report("orin", [target])], P99_50).candidates[0]

    assert candidate.scores.qps_at_slo == 1800.0
    assert "server-scenario search" in candidate.criteria[1].explanation


def test_sustained_verdicts_are_reported() -> None:
    target = make_target(p99=5, sustained=sustained_block("throttled", drop=0.2))
    candidate = compare([make_report("hot", [target])], P99_50).candidates[0]

    assert candidate.criteria[4].value == "throttled"
    assert candidate.criteria[4].explanation.startswith("throttled: throughput drop 20 %")
    assert "sustained: throttled" in candidate.reason


# --- labels --------------------------------------------------------------------------------


def test_a_report_with_several_targets_gives_one_candidate_per_target() -> None:
    report = make_report("orin-nx", [make_target(p99=0.6), cloud_target(p99=95)])
    labels = [c.label for c in compare([report], P99_50).candidates]

    assert labels == ["orin-nx/edge", "orin-nx/cloud"]


def test_duplicate_labels_are_told_apart_by_file_stem(tmp_path: Path) -> None:
    paths = [
        write_report(tmp_path, "monday.json", make_report("pi5", [make_target(p99=5)])),
        write_report(tmp_path, "tuesday.json", make_report("pi5", [make_target(p99=6)])),
    ]
    labels = [c.label for c in compare(load_reports(paths), P99_50).candidates]

    assert labels == ["pi5@monday", "pi5@tuesday"]


# --- battery and price arithmetic ----------------------------------------------------------


def test_battery_life_and_inferences_per_charge() -> None:
    report = make_report("pi5", [make_target(p99=5, qps=4000, mj=2.0, watts=8.0)])
    result = compare([report], P99_50, battery_wh=20)
    scores = result.candidates[0].scores

    # 20 Wh = 72 000 J; 2 mJ per inference -> 36 million inferences; 20 Wh / 8 W = 2.5 h.
    assert scores.inferences_per_charge == pytest.approx(36_000_000)
    assert scores.battery_hours == pytest.approx(2.5)
    explanation = result.candidates[0].criteria[2].explanation
    assert "36,000,000 inferences" in explanation
    assert "2.5 h continuous at 8 W" in explanation


def test_battery_life_without_mean_watts_uses_energy_times_throughput() -> None:
    target = make_target(p99=5, qps=1000, mj=5.0)
    target["energy"]["mean_watts"] = None
    scores = compare([make_report("pi5", [target])], P99_50, battery_wh=10).candidates[0].scores

    assert scores.watts == pytest.approx(5.0)  # 5 mJ x 1000 /s = 5 W
    assert scores.battery_hours == pytest.approx(2.0)


def test_estimated_energy_is_labelled_as_an_estimate() -> None:
    candidate = compare(three_candidates(), P99_50, battery_wh=20).candidates[0]

    assert candidate.criteria[2].explanation.startswith("2.9 mJ/inference (estimate)")


def test_cost_per_1000_qps_at_the_slo() -> None:
    result = compare(three_candidates(), P99_50, prices={"fast": 499, "frugal": 99})
    got = {c.label: c.cost_per_1000_qps for c in result.candidates}

    assert got["fast"] == pytest.approx(499 / 1800 * 1000)
    assert got["frugal"] == pytest.approx(110.0)
    assert got["slowpoke"] is None  # no price given
    assert "277 per 1000 QPS" in by_label(result)["fast"].criteria[-1].explanation


def test_a_price_for_a_report_label_applies_to_each_of_its_targets() -> None:
    report = make_report("orin-nx", [make_target(p99=1, qps=1000), cloud_target(p99=20, qps=20)])
    result = compare([report], P99_50, prices={"orin-nx": 500})

    assert by_label(result)["orin-nx/edge"].cost_per_1000_qps == pytest.approx(500)
    assert by_label(result)["orin-nx/cloud"].cost_per_1000_qps == pytest.approx(25_000)


def test_an_unknown_price_label_lists_the_known_labels() -> None:
    with pytest.raises(ConfigurationError, match=r"'nano' matches no candidate.*fast, frugal"):
        compare(three_candidates(), P99_50, prices={"nano": 99})
    with pytest.raises(ConfigurationError, match="known labels: a, b"):
        parse_prices("a=1,c=2", known=["a", "b"])


# --- parsing the command line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p99=50ms", {"p99": 50.0}),
        ("p99=50ms,p90=20ms", {"p99": 50.0, "p90": 20.0}),
        (" P99 = 500us ", {"p99": 0.5}),
        ("p99.9=0.2s", {"p999": 200.0}),
        ("p50=1.5ms", {"p50": 1.5}),
    ],
)
def test_slo_syntax(text: str, expected: dict[str, float]) -> None:
    assert parse_slo(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("p99", "not PERCENTILE=VALUE"),
        ("p99=fast", "not PERCENTILE=VALUE"),
        ("p99=50", "has no unit"),
        ("p99=50min", "unknown unit 'min'"),
        ("p95=50ms", "percentile 'p95' is unknown"),
        ("p99=0ms", "must be a positive latency"),
        ("p99=5ms,p99=6ms", "gives p99 twice"),
    ],
)
def test_bad_slo_syntax_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        parse_slo(text)


def test_price_syntax() -> None:
    assert parse_prices("A=499, B=899.5") == {"A": 499.0, "B": 899.5}
    assert parse_prices("orin-nx/edge=499") == {"orin-nx/edge": 499.0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "are empty"),
        ("A", "is not LABEL=PRICE"),
        ("=5", "is not LABEL=PRICE"),
        ("A=cheap", "not a number"),
        ("A=-1", "must be a number >= 0"),
        ("A=1,A=2", "given twice"),
    ],
)
def test_bad_prices_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        parse_prices(text)


def test_bad_arguments_to_compare() -> None:
    with pytest.raises(ConfigurationError, match="SLO is empty"):
        compare(three_candidates(), {})
    with pytest.raises(ConfigurationError, match="battery capacity"):
        compare(three_candidates(), P99_50, battery_wh=0)
    with pytest.raises(ConfigurationError, match="nothing to compare"):
        compare([], P99_50)


# --- reading report files ------------------------------------------------------------------


def test_load_reports_keeps_order_and_remembers_the_source(tmp_path: Path) -> None:
    a = write_report(tmp_path, "a.json", make_report("a"))
    b = write_report(tmp_path, "b.json", make_report("b"))

    reports = load_reports([a, str(b)])

    assert [r["label"] for r in reports] == ["a", "b"]
    assert reports[0]["_source"] == str(a)


def _bad(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    return path


def _report_json(**changes: Any) -> str:
    report = make_report()
    report.update(changes)
    return json.dumps({k: v for k, v in report.items() if v is not None})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON (Expecting property name"),
        ("[1, 2]", "not a report (expected a JSON object)"),
        (_report_json(schema_version=2), "schema_version 2 is not supported"),
        (_report_json(kind="something-else"), "kind is 'something-else'"),
        (_report_json(targets=None), "missing key 'targets'"),
        (_report_json(targets=[]), "missing key 'targets'"),
        (_report_json(label=None), "missing key 'label'"),
        (_report_json(targets=[{"name": "edge"}]), "targets[0] is missing key 'latency_ms'"),
    ],
)
def test_bad_report_files_name_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = _bad(tmp_path, content)
    with pytest.raises(ConfigurationError) as caught:
        load_reports([path])
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ConfigurationError, match=re.escape(f"{missing}: no such file")):
        load_reports([missing])


def test_an_unreadable_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"{tmp_path}: cannot read")):
        load_reports([tmp_path])  # a directory


def test_binary_garbage_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigurationError, match="not JSON"):
        load_reports([path])


def test_no_report_files() -> None:
    with pytest.raises(ConfigurationError, match="no report files given"):
        load_reports([])


# --- output --------------------------------------------------------------------------------


def test_the_terminal_table_lists_candidates_in_rank_order_then_the_reasons() -> None:
    text = format_table(compare(three_candidates(), P99_50))
    lines = text.splitlines()

    assert lines[0] == "SLO: p99 <= 50 ms"
    header = lines[2].split()
    assert header[:3] == ["rank", "candidate", "p99"]
    assert "battery" not in header
    assert "cost/1k" not in header
    rows = [line.split() for line in lines[4:7]]
    assert [row[1] for row in rows] == ["fast", "frugal", "slowpoke"]
    assert rows[0][-1] == "recommended"
    assert rows[2][-2:] == ["fails", "SLO"]
    assert "1. fast (recommended): fastest at the SLO" in text
    assert "   tail latency: p99 80 ms exceeds 50 ms" in text
    assert "(est) = estimated energy" in text
    assert text.endswith(f"Ranking rule: {RANKING_RULE}")
    assert "\x1b" not in text  # no terminal markup


def test_the_table_has_fixed_width_columns() -> None:
    lines = format_table(compare(three_candidates(), P99_50, battery_wh=20)).splitlines()
    header, rule = lines[2], lines[3]

    assert "battery" in header
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    for row in lines[4:7]:
        for start in starts[1:]:
            assert row[start - 2 : start] == "  "  # every column starts after a two-space gap


def test_the_table_shows_battery_and_cost_columns_when_asked() -> None:
    result = compare(three_candidates(), P99_50, battery_wh=20, prices={"fast": 499})
    text = format_table(result)

    assert "battery" in text
    assert "cost/1k QPS" in text
    assert "277" in text


def test_compare_html_is_self_contained_and_escapes_labels() -> None:
    reports = three_candidates()
    reports[0]["label"] = "<script>alert(1)</script>"
    page = render_compare_html(compare(reports, P99_50, battery_wh=20))

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http" not in page
    assert page.count("<svg") >= 3
    assert "Recommended: fast — fastest at the SLO" in page


def test_compare_html_says_when_nothing_meets_the_slo() -> None:
    page = render_compare_html(compare([make_report("bad", [make_target(p99=90)])], P99_50))

    assert "No candidate meets the SLO" in page
