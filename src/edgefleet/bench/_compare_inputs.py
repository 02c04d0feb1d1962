"""What ``edgefleet bench compare`` reads: the SLO, the prices and the report.json files.

Every bad input raises :class:`~edgefleet.errors.ConfigurationError` with one line naming what
was wrong (and, for files, which file).

Examples
--------
>>> parse_slo("p99=50ms"), parse_slo("p90=500us, p99.9=0.1s")
({'p99': 50.0}, {'p90': 0.5, 'p999': 100.0})
>>> parse_prices("orin-nx=499,pi5=80.5")
{'orin-nx': 499.0, 'pi5': 80.5}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from edgefleet.errors import ConfigurationError

__all__ = [
    "REPORT_KIND",
    "SCHEMA_VERSION",
    "SLO_PERCENTILES",
    "load_reports",
    "parse_prices",
    "parse_slo",
    "validate_report",
]

REPORT_KIND = "edgefleet-bench-report"
SCHEMA_VERSION = 1
#: SLO keys as written on the command line -> the report's latency_ms key.
SLO_PERCENTILES = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p999", "p99.9": "p999"}
_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0}
_SLO_PART = re.compile(r"^\s*([a-z0-9.]+)\s*=\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zµ]*)\s*$")
_EXAMPLE = "write it like p99=50ms or p99=50ms,p90=20ms (units us, ms, s)"


def parse_slo(text: str) -> dict[str, float]:
    """Latency objectives in milliseconds from ``"p99=50ms"`` or ``"p99=50ms,p90=20ms"``.

    Keys are p50, p90, p99 and p999 (``p99.9`` is accepted as p999); every value needs a unit:
    ``us``, ``ms`` or ``s``. Raises :class:`ConfigurationError` on anything else.
    """
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigurationError(f"SLO {text!r} is empty; {_EXAMPLE}")
    slo: dict[str, float] = {}
    for part in parts:
        match = _SLO_PART.match(part.lower())
        if match is None:
            raise ConfigurationError(
                f"SLO part {part.strip()!r} is not PERCENTILE=VALUE; {_EXAMPLE}"
            )
        name, number, unit = match.groups()
        key = SLO_PERCENTILES.get(name)
        if key is None:
            known = ", ".join(SLO_PERCENTILES)
            raise ConfigurationError(f"SLO percentile {name!r} is unknown; use one of {known}")
        if unit not in _UNITS:
            why = "has no unit" if not unit else f"has unknown unit {unit!r}"
            raise ConfigurationError(f"SLO {part.strip()!r} {why}; use us, ms or s")
        value = float(number) * _UNITS[unit]
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"SLO {part.strip()!r} must be a positive latency")
        if key in slo:
            raise ConfigurationError(f"SLO gives {name} twice in {text!r}")
        slo[key] = value
    return slo


def parse_prices(text: str, known: Iterable[str] | None = None) -> dict[str, float]:
    """Prices per candidate label from ``"A=499,B=899"``.

    With ``known`` (the candidate labels), a label outside it raises
    :class:`ConfigurationError` listing the known labels; :func:`compare` checks the same.
    """
    prices: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        label, sep, amount = part.rpartition("=")
        label = label.strip()
        if not sep or not label:
            raise ConfigurationError(f"price {part!r} is not LABEL=PRICE (e.g. orin-nx=499)")
        try:
            value = float(amount)
        except ValueError:
            raise ConfigurationError(f"price for {label!r} is not a number: {amount!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"price for {label!r} must be a number >= 0, not {amount!r}")
        if label in prices:
            raise ConfigurationError(f"price for {label!r} is given twice")
        prices[label] = value
    if not prices:
        raise ConfigurationError(f"prices {text!r} are empty; write them like A=499,B=899")
    if known is not None:
        check_price_labels(prices, list(known))
    return prices


def check_price_labels(prices: Mapping[str, float], known: Sequence[str]) -> None:
    """Raise :class:`ConfigurationError` when a price names no known label."""
    unknown = [label for label in prices if label not in known]
    if unknown:
        raise ConfigurationError(
            f"price label {', '.join(map(repr, unknown))} matches no candidate; "
            f"known labels: {', '.join(known)}"
        )


def validate_report(data: object, where: str) -> dict[str, Any]:
    """``data`` as a report dict, or a :class:`ConfigurationError` naming ``where`` and why."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: not a report (expected a JSON object)")
    if data.get("kind") != REPORT_KIND:
        raise ConfigurationError(
            f"{where}: kind is {data.get('kind')!r}, expected {REPORT_KIND!r} "
            "(is this a report.json from edgefleet bench?)"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigurationError(
            f"{where}: schema_version {version!r} is not supported "
            f"(this edgefleet reads schema_version {SCHEMA_VERSION})"
        )
    if not isinstance(data.get("label"), str) or not data["label"]:
        raise ConfigurationError(f"{where}: missing key 'label' (a non-empty string)")
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise ConfigurationError(f"{where}: missing key 'targets' (a non-empty list)")
    for i, target in enumerate(targets):
        if not isinstance(target, dict):
            raise ConfigurationError(f"{where}: targets[{i}] is not an object")
        for key, kind in (("name", str), ("latency_ms", dict)):
            if not isinstance(target.get(key), kind):
                raise ConfigurationError(f"{where}: targets[{i}] is missing key {key!r}")
    return data


def load_reports(paths: Iterable[str | PathLike[str]]) -> list[dict[str, Any]]:
    """Read and validate report.json files, in order.

    Each returned dict is the file's JSON plus ``"_source"``: the path it was read from (used to
    tell apart candidates with the same label). Raises :class:`ConfigurationError` with the path
    and the problem for a missing or unreadable file, text that is not JSON, or a report that is
    not schema_version 1 of kind ``edgefleet-bench-report`` or lacks required keys.
    """
    reports = []
    for raw in paths:
        path = Path(raw)
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: no such file") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{path}: not JSON (not UTF-8 text)") from None
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        report = validate_report(data, str(path))
        report["_source"] = str(path)
        reports.append(report)
    if not reports:
        raise ConfigurationError("no report files given; pass at least one report.json")
    return reports
