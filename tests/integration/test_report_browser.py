"""The bench report pages in a real headless browser (Debian's Chromium), not just as strings.

Chromium renders each page from a file, with networking features off: its serialised DOM must
hold the charts and the target names, and its screenshot must be a real, non-blank image.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from edgefleet.bench.compare import compare, render_compare_html
from edgefleet.bench.html import render_report_html
from tests.unit.bench.reports import (
    cloud_target,
    make_report,
    make_target,
    server_block,
    sustained_block,
)

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Chromium once with a throw-away profile; fail (never skip) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the report browser tests need Debian's Chromium. "
            "`make test` installs it (apt-get install -y chromium)."
        )
    profile = tmp_path / "profile"
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def png_summary(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the image data.

    The pixel rows are checked to decompress to exactly the size the header promises. PNG
    stores each row as differences to its neighbours, so a blank single-colour page is a few
    distinct byte values; a page with text and charts uses most of the 256.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    position, idat = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(idat)
    channels = {2: 3, 6: 4}[colour_type]
    assert depth == 8
    assert len(raw) == height * (1 + width * channels)
    return width, height, len(set(raw))


def report_page(tmp_path: Path) -> Path:
    edge = make_target(server=server_block(), sustained=sustained_block())
    report = make_report("orin-nx", [edge, cloud_target()], partial=True)
    path = tmp_path / "report.html"
    path.write_text(render_report_html(report), encoding="utf-8")
    return path


def compare_page(tmp_path: Path) -> Path:
    reports = [
        make_report("orin-nx", [make_target(p99=0.6, qps=3100), cloud_target()]),
        make_report("pi5", [make_target(p99=20, qps=900, mj=1.1, estimated=False)]),
    ]
    comparison = compare(reports, {"p99": 50.0}, battery_wh=20, prices={"orin-nx": 899})
    path = tmp_path / "compare.html"
    path.write_text(render_compare_html(comparison), encoding="utf-8")
    return path


def screenshot(tmp_path: Path, page: Path) -> Path:
    png = tmp_path / (page.stem + ".png")
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2400", page.as_uri())
    assert png.exists(), f"chromium wrote no screenshot for {page}"
    return png


def test_the_report_page_renders_its_charts_in_the_browser(tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", report_page(tmp_path).as_uri()).stdout

    assert dom.count("<svg") >= 7
    assert "<polyline" in dom
    assert 'aria-label="Latency distribution (cumulative)"' in dom
    assert 'aria-label="Server scenario: p99 at each offered load"' in dom
    assert 'data-label="edge"' in dom
    assert 'data-label="cloud"' in dom
    assert "PARTIAL RESULTS" in dom


def test_the_report_page_screenshot_is_not_blank(tmp_path: Path) -> None:
    png = screenshot(tmp_path, report_page(tmp_path))

    width, height, distinct = png_summary(png)
    assert (width, height) == (1280, 2400)
    assert distinct > 64
    assert png.stat().st_size > 50_000


def test_the_compare_page_renders_in_the_browser(tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", compare_page(tmp_path).as_uri()).stdout

    assert dom.count("<svg") >= 3
    assert 'class="bar"' in dom
    for label in ("orin-nx/edge", "orin-nx/cloud", "pi5"):
        assert label in dom
    assert "Recommended: orin-nx/edge — fastest at the SLO" in dom


def test_the_compare_page_screenshot_is_not_blank(tmp_path: Path) -> None:
    png = screenshot(tmp_path, compare_page(tmp_path))

    width, height, distinct = png_summary(png)
    assert (width, height) == (1280, 2400)
    assert distinct > 64
    assert png.stat().st_size > 30_000
