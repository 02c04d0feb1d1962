"""The report page of one bench run: self-contained, escaped, and robust to missing data."""

from __future__ import annotations

import re
from typing import Any

import pytest

from edgefleet.bench.html import render_report_html
from edgefleet.bench.svg import Bar, RefLine, Series, bar_chart, fmt_num, line_chart
from tests.unit.bench.reports import (
    cloud_target,
    make_report,
    make_target,
    server_block,
    sustained_block,
)

HOSTILE = "<script>alert(1)</script>"
EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:[a-z]+:)?//""", re.I)


def full_report() -> dict[str, Any]:
    edge = make_target(server=server_block(), sustained=sustained_block())
    return make_report("orin-nx", [edge, cloud_target()])


def test_the_page_shows_model_device_settings_and_every_target() -> None:
    page = render_report_html(full_report())

    assert page.startswith("<!DOCTYPE html>")
    for text in ("digits", "orin-nx", "Synthetic CPU @ 2.4GHz", "CPUExecutionProvider"):
        assert text in page
    assert "p99 ≤ 50 ms" in page  # the settings' SLO
    assert 'class="badge estimate">estimate<' in page  # the estimated energy is flagged
    assert ">edge " in page
    assert ">cloud " in page
    assert "RTT 45 ms ± 10 ms, 20 Mbit/s, 0.5 % loss" in page
    assert "PARTIAL" not in page


def test_the_page_has_all_six_charts_when_the_data_is_there() -> None:
    page = render_report_html(full_report())

    for title in (
        "Latency distribution (cumulative)",
        "Latency over time",
        "Throughput over time",
        "Temperature over time",
        "Energy per inference",
        "Server scenario: p99 at each offered load",
        "Sustained load: throughput per window",
    ):
        assert f'aria-label="{title}"' in page
    assert page.count("<svg") == 8  # and the sustained temperature
    assert 'data-label="edge"' in page
    assert 'data-label="cloud"' in page
    assert "SLO p99 50 ms" in page
    assert "edge max 1,800 QPS" in page
    assert 'class="badge good">stable<' in page


def test_no_external_references_of_any_kind() -> None:
    report = full_report()
    page = render_report_html(report)

    assert not EXTERNAL.search(page)
    assert "<script" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert "<link" not in page
    # The only URL on the page is the cloud endpoint's, shown as plain text.
    url = report["targets"][1]["url"]
    assert f"endpoint {url} (json)" in page
    assert "http" not in page.replace(url, "")


def test_hostile_strings_are_escaped_everywhere() -> None:
    report = full_report()
    report["label"] = HOSTILE
    report["model"]["name"] = HOSTILE
    report["environment"]["cpu_model"] = HOSTILE
    report["targets"][0]["name"] = HOSTILE
    report["targets"][0]["sustained"]["evidence"] = [HOSTILE]
    report["targets"][1]["url"] = f'https://x/">{HOSTILE}'

    page = render_report_html(report)

    assert "<script>" not in page
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "https://x/&quot;&gt;&lt;script&gt;" in page
    assert 'data-label="&lt;script&gt;' in page


def test_a_partial_run_gets_a_banner() -> None:
    page = render_report_html(make_report(partial=True))

    assert 'class="banner partial"' in page
    assert "PARTIAL RESULTS" in page


def test_a_single_target_renders() -> None:
    page = render_report_html(make_report("pi5", [make_target()]))

    assert 'data-label="edge"' in page
    assert "cloud" not in page
    assert "Server scenario" not in page  # left out when there is no server search
    assert "Sustained load" not in page  # left out without a sustained run


def test_missing_energy_and_temperature_are_said_so() -> None:
    report = make_report("pi5", [make_target(mj=None, temp_c=None, top1=None)])
    page = render_report_html(report)

    assert "not measured" in page
    assert "No temperature readings" in page
    assert 'aria-label="Temperature over time"' not in page


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"targets": None, "model": None, "settings": None, "environment": None},
        {"targets": [None, "x", {}]},
        {"targets": [{"name": "edge", "latency_ms": None, "histogram": {"edges_ms": [1]}}]},
        {
            "settings": {"slo_ms": {"p99": None}},
            "targets": [
                {
                    "name": "edge",
                    "latency_ms": {"p50": None, "p99": float("nan")},
                    "timeline": [{"t_s": 1, "qps": None, "p50_ms": "x", "temp_c": None}],
                    "energy": {"mj_per_inference": None, "estimated": True},
                    "server": {"search": [{"qps": 10}], "max_qps_at_slo": None},
                    "sustained": {"windows": None, "verdict": None},
                    "histogram": {"edges_ms": [0, 1, 2], "counts": [0, 0]},
                }
            ],
        },
    ],
)
def test_missing_or_malformed_fields_never_crash(report: dict[str, Any]) -> None:
    page = render_report_html(report)

    assert page.rstrip().endswith("</html>")


def test_latency_charts_switch_to_a_log_axis_when_values_span_orders_of_magnitude() -> None:
    near = line_chart("t", [Series("a", "#000", [(0, 1.0), (1, 2.0)])], x_label="", y_label="")
    far = line_chart("t", [Series("a", "#000", [(0, 0.3), (1, 95.0)])], x_label="", y_label="")

    assert ">1,000<" not in near
    assert ">0.1<" in far  # decade ticks from 0.1 ...
    assert ">100<" in far  # ... to 100


def test_charts_without_plottable_points_say_so() -> None:
    chart = line_chart("t", [Series("a", "#000", [(1.0, float("nan"))])], x_label="", y_label="")
    bars = bar_chart("e", [Bar("edge", None, "#000")], y_label="mJ")

    assert "no data to plot" in chart
    assert "not measured" in bars


def test_reference_lines_are_labelled() -> None:
    chart = line_chart(
        "t",
        [Series("a", "#000", [(0, 1.0), (1, 2.0)])],
        x_label="",
        y_label="",
        refs=[RefLine(1.5, "SLO p99 1.5 ms")],
    )
    assert "SLO p99 1.5 ms" in chart


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (0.0123, "0.0123"), (0.6, "0.6"), (9.1, "9.1"), (123.4, "123"), (3100, "3,100")],
)
def test_numbers_are_shown_with_about_three_significant_digits(value: float, shown: str) -> None:
    assert fmt_num(value) == shown
