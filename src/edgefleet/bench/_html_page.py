"""The page shell both bench HTML pages share: inline CSS, tables, badges. No external assets."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from edgefleet.bench.svg import esc

__all__ = ["badge", "definition_list", "page", "table"]

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; background: #f6f7f9; color: #1d2129;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #d8dce3; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.sub { color: #5b6472; margin: 0 0 16px; }
.banner { border-radius: 6px; padding: 12px 16px; margin: 12px 0; font-weight: 600; }
.banner.partial { background: #fff3cd; border: 2px solid #d39e00; color: #6b4e00; }
.banner.ok { background: #e3f4ea; border: 1px solid #2e9d5b; color: #17532f; }
.banner.bad { background: #fde2e1; border: 1px solid #c9302c; color: #7a1512; }
.cards { display: flex; flex-wrap: wrap; gap: 16px; }
.card { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: 10px 14px;
  flex: 1 1 300px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dt { color: #5b6472; } dd { margin: 0; overflow-wrap: anywhere; }
table { font-size: 13px; border-collapse: collapse; background: #fff; width: 100%;
  border: 1px solid #d8dce3; }
th, td { padding: 4px 7px; border-bottom: 1px solid #e4e7ec; text-align: right;
  vertical-align: top; white-space: nowrap; }
th { background: #eef0f4; font-weight: 600; }
th.text, td.text { text-align: left; }
td.wrap { white-space: normal; text-align: left; }
.badge { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 12px;
  font-weight: 600; margin-left: 4px; }
.badge.estimate { background: #fff3cd; color: #6b4e00; border: 1px solid #d39e00; }
.badge.good { background: #e3f4ea; color: #17532f; }
.badge.bad { background: #fde2e1; color: #7a1512; }
.badge.neutral { background: #eef0f4; color: #3b4350; }
.charts { display: grid; gap: 16px; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); }
.chart-box { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: 6px;
  min-width: 0; }
.scroll { overflow-x: auto; }
.chart-box p { margin: 2px 8px 6px; color: #5b6472; font-size: 13px; }
svg.chart { display: block; width: 100%; height: auto; font-family: inherit; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1d2129; }
svg .tick { font-size: 11px; fill: #5b6472; }
svg .axis-label { font-size: 12px; fill: #3b4350; }
svg .legend { font-size: 12px; fill: #1d2129; }
svg .grid { stroke: #e4e7ec; stroke-width: 1; }
svg .axis { stroke: #8a93a3; stroke-width: 1; }
svg .ref-label { font-size: 11px; font-weight: 600; }
svg .ref-label, svg .bar-value { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .chart-empty { font-size: 13px; fill: #8a93a3; font-style: italic; }
svg .bar-value { font-size: 12px; fill: #1d2129; }
ul.notes { margin: 6px 0; padding-left: 20px; }
footer { margin-top: 32px; color: #8a93a3; font-size: 12px; }
"""


def page(title: str, body: str) -> str:
    """A complete HTML document: ``title`` is escaped here, ``body`` must already be HTML."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int] = (0,)
) -> str:
    """A table whose headers are escaped here; the cells must already be HTML.

    Columns are right-aligned (numbers) except those whose index is in ``left``.
    """

    def cell(tag: str, i: int, content: str) -> str:
        return (
            f'<{tag} class="text">{content}</{tag}>' if i in left else f"<{tag}>{content}</{tag}>"
        )

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def badge(label: str, kind: str = "neutral") -> str:
    """A small coloured tag (``kind``: estimate, good, bad or neutral)."""
    return f'<span class="badge {esc(kind)}">{esc(label)}</span>'


def definition_list(items: Sequence[tuple[str, str]]) -> str:
    """A two-column list of escaped terms and escaped plain-text values."""
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f"<dl>{body}</dl>"
