"""Rollout and experiment plans from the CLI syntax, YAML or JSON, and back.

The CLI names stages as ``[kind:]share[:bake][:sample]``, comma-separated, and gates as
``metric<=number`` or ``metric>=number`` with optional ``,option=value`` pairs. Plan files and
the JSON kept in the store and sent over the HTTP API share one schema::

    stages: [{kind, share, bake, sample_rate}]           # a rollout
    gates: [{metric, max | min, min_devices, min_share, min_inferences, interval, failure_limit}]
    progress_deadline: 1h

    experiment: {share_b, duration, metrics, confidence, auto_promote, min_devices_per_arm}

Shares and durations take the CLI strings (``5%``, ``2h``) or numbers (fractions, seconds).
Every parser validates the whole plan and raises :class:`~edgefleet.errors.ConfigurationError`
naming the bad part and the expected syntax.

Examples
--------
>>> plan = plan_from_json({"stages": [{"kind": "canary", "share": "5%", "bake": "2h"},
...                                   {"share": 1}]})
>>> format_stages(plan.stages)
'canary:5%:2h,100%'
>>> plan_from_json(plan_to_json(plan)) == plan
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import yaml

from edgefleet.errors import ConfigurationError
from edgefleet.server.rollout.gates import applies
from edgefleet.server.rollout.spec import (
    EXPERIMENT_METRICS,
    ExperimentPlan,
    Gate,
    GateMetric,
    RolloutPlan,
    Stage,
    StageKind,
)

__all__ = [
    "DURATION_SYNTAX",
    "GATE_SYNTAX",
    "SHARE_SYNTAX",
    "STAGES_SYNTAX",
    "check_every_stage_is_judged",
    "experiment_from_json",
    "experiment_to_json",
    "format_duration",
    "format_gate",
    "format_share",
    "format_stages",
    "load_plan_data",
    "load_plan_file",
    "parse_duration",
    "parse_gate",
    "parse_share",
    "parse_stages",
    "plan_from_json",
    "plan_to_json",
    "validate_experiment",
    "validate_gate",
    "validate_plan",
    "validate_stages",
]

DURATION_SYNTAX = "a duration such as 30s, 5m, 2h, 1d, 1h30m or plain seconds"
SHARE_SYNTAX = "a percentage such as 5% or a fraction such as 0.05"
STAGES_SYNTAX = (
    "comma-separated [kind:]share[:bake][:sample] with kind shadow, canary or staged, "
    "e.g. shadow:10%:1h,canary:5%:2h,25%:2h,100%"
)
_GATE_OPTIONS_TEXT = "min_devices, min_share, min_inferences, interval, failures"
GATE_SYNTAX = (
    f"metric<=number or metric>=number, then optional ,option=value ({_GATE_OPTIONS_TEXT}), "
    "e.g. p99_ratio<=1.5,min_devices=3,interval=30s"
)

_KINDS: tuple[str, ...] = get_args(StageKind)
_METRICS: tuple[str, ...] = get_args(GateMetric)
_SERVING = ("canary", "staged")
_DEFAULT_SAMPLE_RATE = Stage("staged", 1.0).sample_rate
_DEFAULT_GATE = Gate("p99_ratio", "<=", 0.0)
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_COMPOUND = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h|d))+")
_A = TypeVar("_A")
_T = TypeVar("_T")
_GATE_HEAD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*([<>=!]*)\s*(.*?)\s*$")


# -- numbers, shares and durations ---------------------------------------------------------------


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _plain(value: float) -> str:
    """The shortest text that ``float()`` reads back as ``value`` (``2`` rather than ``2.0``)."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _check_share(value: float, shown: str, *, allow_zero: bool) -> float:
    if value > 1:
        hint = "" if shown.endswith("%") else f"; for {_plain(value)} percent write {shown}%"
        raise ConfigurationError(f"share {shown!r} is more than 100%{hint}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "0% or more" if allow_zero else "more than 0%"
        raise ConfigurationError(f"share {shown!r} must be {bound}")
    return value


def parse_share(text: str, *, allow_zero: bool = False) -> float:
    """A share of devices (or of inferences) from ``N%`` or a fraction, as a fraction.

    Shares lie in ``(0, 1]``, or ``[0, 1]`` with ``allow_zero``.

    Examples
    --------
    >>> parse_share("5%"), parse_share("0.25"), parse_share("100%")
    (0.05, 0.25, 1.0)
    >>> parse_share("5")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: share '5' is more than 100%; for 5 percent write 5%
    """
    raw = text.strip()
    number = raw[:-1] if raw.endswith("%") else raw
    value = _float(number.strip())
    if value is None:
        raise ConfigurationError(f"bad share {text!r}: expected {SHARE_SYNTAX}")
    if raw.endswith("%"):
        value /= 100
    return _check_share(value, raw, allow_zero=allow_zero)


def parse_duration(text: str) -> float:
    """Seconds from ``30s``, ``5m``, ``2h``, ``1d``, ``250ms``, ``1h30m`` or plain seconds.

    The same syntax as the benchmark's durations, plus days.

    Examples
    --------
    >>> parse_duration("2h"), parse_duration("1.5m"), parse_duration("1h30m"), parse_duration("90")
    (7200.0, 90.0, 5400.0, 90.0)
    >>> parse_duration("2 weeks")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: bad duration '2 weeks': expected a duration such as 30s, 5m, 2h, 1d, 1h30m or plain seconds
    """  # noqa: E501
    raw = text.strip().lower()
    unit = next((u for u in _UNITS if raw.endswith(u)), "")  # "ms" before "s"
    value = _float(raw[: len(raw) - len(unit)].strip())
    if value is not None:
        seconds: float | None = value * _UNITS.get(unit, 1.0)
    elif _COMPOUND.fullmatch(raw):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(raw))
    else:
        seconds = None
    if seconds is None or seconds < 0 or not math.isfinite(seconds):
        raise ConfigurationError(f"bad duration {text!r}: expected {DURATION_SYNTAX}")
    return seconds


def format_duration(seconds: float) -> str:
    """The CLI text of a duration; :func:`parse_duration` reads it back exactly.

    Examples
    --------
    >>> format_duration(7200.0), format_duration(90.0), format_duration(0.5)
    ('2h', '90s', '0.5s')
    """
    for unit, factor in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= factor and (seconds / factor).is_integer():
            text = _plain(seconds / factor) + unit
            if parse_duration(text) == seconds:
                return text
    return _plain(seconds) + "s"


def format_share(share: float) -> str:
    """The CLI text of a share; :func:`parse_share` reads it back exactly.

    Examples
    --------
    >>> format_share(0.05), format_share(1.0), format_share(1 / 3)
    ('5%', '100%', '0.3333333333333333')
    """
    text = _plain(round(share * 100, 10)) + "%"
    if parse_share(text, allow_zero=True) == share:
        return text
    return repr(share)


# -- validation (shared by every parser) ---------------------------------------------------------


def _stage_text(stage: Stage) -> str:
    parts: list[str] = [stage.kind] if stage.kind != "staged" else []
    parts.append(format_share(stage.share))
    sampled = stage.kind == "shadow" and stage.sample_rate != _DEFAULT_SAMPLE_RATE
    if stage.bake_s or sampled:
        parts.append(format_duration(stage.bake_s))
    if sampled:
        parts.append(format_share(stage.sample_rate))
    return ":".join(parts)


def _check_stage(number: int, stage: Stage) -> None:
    where = f"stage {number}"
    if stage.kind not in _KINDS:
        raise ConfigurationError(
            f"{where}: unknown kind {stage.kind!r}; expected one of {', '.join(_KINDS)}"
        )
    for name, value in (("share", stage.share), ("sample rate", stage.sample_rate)):
        if not (isinstance(value, float | int) and math.isfinite(value) and 0 < value <= 1):
            raise ConfigurationError(f"{where}: {name} {value!r} must lie in (0, 100%]")
    if not (math.isfinite(stage.bake_s) and stage.bake_s >= 0):
        raise ConfigurationError(f"{where}: bake {stage.bake_s!r} must be {DURATION_SYNTAX}")
    if stage.kind != "shadow" and stage.sample_rate != _DEFAULT_SAMPLE_RATE:
        raise ConfigurationError(f"{where} ({stage.kind}): a sample rate applies to shadow stages")


def validate_stages(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    """Check the rules a list of stages must follow; return them as a tuple.

    Shares lie in ``(0, 1]``; shadow stages come before serving (``canary``, ``staged``) ones;
    serving shares strictly increase; the last stage serves 100%.

    Examples
    --------
    >>> validate_stages([Stage("staged", 0.5), Stage("staged", 0.25), Stage("staged", 1.0)])
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: stage 2 ('25%') must serve more devices than stage 1 ('50%'): serving shares strictly increase
    """  # noqa: E501
    if not stages:
        raise ConfigurationError(f"a rollout needs at least one stage: expected {STAGES_SYNTAX}")
    previous: tuple[int, Stage] | None = None
    for number, stage in enumerate(stages, 1):
        _check_stage(number, stage)
        text = f"stage {number} ({_stage_text(stage)!r})"
        if stage.kind == "shadow" and previous is not None:
            raise ConfigurationError(
                f"{text} is a shadow stage after serving stage {previous[0]}: "
                "shadow stages come first"
            )
        if stage.kind in _SERVING:
            if previous is not None and stage.share <= previous[1].share:
                raise ConfigurationError(
                    f"{text} must serve more devices than stage {previous[0]} "
                    f"({_stage_text(previous[1])!r}): serving shares strictly increase"
                )
            previous = (number, stage)
    last = stages[-1]
    if last.kind not in _SERVING or last.share != 1:
        raise ConfigurationError(
            f"the last stage ({_stage_text(last)!r}) must serve 100% of the devices: "
            f"end with e.g. ,100%; expected {STAGES_SYNTAX}"
        )
    return tuple(stages)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_metric(metric: object) -> ConfigurationError:
    return ConfigurationError(
        f"unknown gate metric {metric!r}; expected one of {', '.join(_METRICS)}"
    )


def validate_gate(gate: Gate) -> Gate:
    """Check a gate's metric, operator, threshold and options; return it.

    Examples
    --------
    >>> validate_gate(Gate("p99_ratio", "<=", 1.5, failure_limit=0))
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: gate 'p99_ratio<=1.5': failures must be an integer >= 1, got 0
    """  # noqa: E501
    if gate.metric not in _METRICS:
        raise _unknown_metric(gate.metric)
    if gate.op not in ("<=", ">="):
        raise ConfigurationError(
            f"bad operator {gate.op!r} in a {gate.metric} gate; expected <= or >="
        )
    if not math.isfinite(gate.threshold):
        raise ConfigurationError(
            f"gate {gate.metric}{gate.op}{gate.threshold!r}: the threshold must be a finite number"
        )
    where = f"gate '{gate.metric}{gate.op}{_plain(gate.threshold)}'"
    for name, value, least in (
        ("min_devices", gate.min_devices, 1),
        ("min_inferences", gate.min_inferences, 0),
        ("failures", gate.failure_limit, 1),
    ):
        if not _is_int(value) or value < least:
            raise ConfigurationError(
                f"{where}: {name} must be an integer >= {least}, got {value!r}"
            )
    if not (math.isfinite(gate.min_device_share) and 0 <= gate.min_device_share <= 1):
        raise ConfigurationError(f"{where}: min_share must lie in [0%, 100%]")
    if not (math.isfinite(gate.interval_s) and gate.interval_s > 0):
        raise ConfigurationError(f"{where}: interval must be positive, {DURATION_SYNTAX}")
    return gate


def validate_plan(plan: RolloutPlan) -> RolloutPlan:
    """Check a rollout plan's stages, gates and progress deadline; return it.

    Examples
    --------
    >>> validate_plan(RolloutPlan((Stage("canary", 0.05), Stage("staged", 1.0)))).gates[0]
    Gate(metric='p99_ratio', op='<=', threshold=1.5, min_devices=1, min_device_share=0.8, min_inferences=100, interval_s=30.0, failure_limit=1)
    """  # noqa: E501
    validate_stages(plan.stages)
    for gate in plan.gates:
        validate_gate(gate)
    deadline = plan.progress_deadline_s
    if not (math.isfinite(deadline) and deadline > 0):
        raise ConfigurationError(f"progress_deadline must be positive, {DURATION_SYNTAX}")
    return plan


def check_every_stage_is_judged(plan: RolloutPlan) -> RolloutPlan:
    """Refuse a plan with a stage that no gate applies to (it could never advance); return it."""
    for number, stage in enumerate(plan.stages, start=1):
        if not any(applies(gate, stage.kind == "shadow") for gate in plan.gates):
            given = ", ".join(g.metric for g in plan.gates) or "none"
            raise ConfigurationError(
                f"stage {number} ({_stage_text(stage)}) has no gate to judge it (gates: {given}); "
                "disagreement applies to shadow stages only: add a gate such as "
                "accuracy_delta>=-0.03"
            )
    return plan


def validate_experiment(plan: ExperimentPlan) -> ExperimentPlan:
    """Check an A/B experiment plan; return it.

    Examples
    --------
    >>> validate_experiment(ExperimentPlan(share_b=1.0, duration_s=3600))
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: experiment share_b must lie in (0%, 100%): arm A needs devices too, got 100%
    """  # noqa: E501
    if not (math.isfinite(plan.share_b) and 0 < plan.share_b < 1):
        raise ConfigurationError(
            "experiment share_b must lie in (0%, 100%): arm A needs devices too, "
            f"got {format_share(plan.share_b)}"
        )
    if not (math.isfinite(plan.duration_s) and plan.duration_s > 0):
        raise ConfigurationError(f"experiment duration must be positive, {DURATION_SYNTAX}")
    if not plan.metrics:
        raise ConfigurationError(
            f"an experiment needs at least one metric of {', '.join(EXPERIMENT_METRICS)}"
        )
    for metric in plan.metrics:
        if metric not in EXPERIMENT_METRICS:
            raise ConfigurationError(
                f"unknown experiment metric {metric!r}; "
                f"expected one of {', '.join(EXPERIMENT_METRICS)}"
            )
    if len(set(plan.metrics)) != len(plan.metrics):
        raise ConfigurationError(f"experiment metrics repeat a name: {list(plan.metrics)}")
    if not (math.isfinite(plan.confidence) and 0 < plan.confidence < 1):
        raise ConfigurationError(
            f"experiment confidence must lie strictly between 0 and 1 (e.g. 0.95 or 95%), "
            f"got {plan.confidence!r}"
        )
    if not isinstance(plan.auto_promote, bool):
        raise ConfigurationError(
            f"experiment auto_promote must be true or false, got {plan.auto_promote!r}"
        )
    if not _is_int(plan.min_devices_per_arm) or plan.min_devices_per_arm < 2:
        raise ConfigurationError(
            "experiment min_devices_per_arm must be an integer >= 2 (a test needs two values "
            f"per arm), got {plan.min_devices_per_arm!r}"
        )
    return plan


# -- the CLI syntax --------------------------------------------------------------------------


def _in(where: str, parse: Callable[[_A], _T], value: _A) -> _T:
    """``parse(value)``, its error prefixed with ``where``."""
    try:
        return parse(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _parse_stage(number: int, text: str) -> Stage:
    where = f"stage {number} ({text.strip()!r})"
    fields = [part.strip() for part in text.split(":")]
    if fields == [""]:
        raise ConfigurationError(f"stage {number} is empty: expected {STAGES_SYNTAX}")
    kind = "staged"
    if fields[0] in _KINDS:
        kind = fields.pop(0)
    elif fields[0][:1].isalpha():
        raise ConfigurationError(
            f"{where}: unknown stage kind {fields[0]!r}; expected one of {', '.join(_KINDS)}"
        )
    if not fields or len(fields) > (3 if kind == "shadow" else 2):
        problem = "lacks a share" if not fields else "has too many fields"
        shape = "shadow:share[:bake][:sample]" if kind == "shadow" else f"{kind}:share[:bake]"
        raise ConfigurationError(
            f"{where} {problem}: a {kind} stage is {shape} (only shadow stages take a sample)"
        )
    share = _in(where, parse_share, fields[0])
    bake = _in(where, parse_duration, fields[1]) if len(fields) > 1 else 0.0
    sample = _in(where, parse_share, fields[2]) if len(fields) > 2 else None
    stage = Stage(cast(StageKind, kind), share, bake)
    return stage if sample is None else dataclasses.replace(stage, sample_rate=sample)


def parse_stages(text: str) -> tuple[Stage, ...]:
    """Stages from the CLI syntax ``[kind:]share[:bake][:sample]``, comma-separated.

    ``kind`` is ``shadow``, ``canary`` or ``staged`` (the default); ``share`` is ``N%`` or a
    fraction; ``bake`` a duration (default 0); ``sample`` (shadow stages only) the share of
    inferences also run on the candidate. The stages must pass :func:`validate_stages`.

    Examples
    --------
    >>> for stage in parse_stages("shadow:10%:1h:20%,canary:5%:2h,25%:2h,100%"):
    ...     print(stage)
    Stage(kind='shadow', share=0.1, bake_s=3600.0, sample_rate=0.2)
    Stage(kind='canary', share=0.05, bake_s=7200.0, sample_rate=0.1)
    Stage(kind='staged', share=0.25, bake_s=7200.0, sample_rate=0.1)
    Stage(kind='staged', share=1.0, bake_s=0.0, sample_rate=0.1)
    >>> parse_stages("canary:5%,50%")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: the last stage ('50%') must serve 100% of the devices: end with e.g. ,100%; expected comma-separated [kind:]share[:bake][:sample] with kind shadow, canary or staged, e.g. shadow:10%:1h,canary:5%:2h,25%:2h,100%
    """  # noqa: E501
    if not text.strip():
        raise ConfigurationError(f"no stages given: expected {STAGES_SYNTAX}")
    return validate_stages([_parse_stage(n, part) for n, part in enumerate(text.split(","), 1)])


def format_stages(stages: Sequence[Stage]) -> str:
    """The CLI syntax of ``stages``; :func:`parse_stages` reads it back exactly.

    Examples
    --------
    >>> format_stages(parse_stages("shadow:0.1:3600,canary:5%:120m,staged:1"))
    'shadow:10%:1h,canary:5%:2h,100%'
    """
    return ",".join(_stage_text(stage) for stage in stages)


def _parse_count(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigurationError(f"{text.strip()!r} is not an integer") from None


_GATE_OPTIONS: dict[str, tuple[str, Callable[[str], float]]] = {
    "min_devices": ("min_devices", _parse_count),
    "min_share": ("min_device_share", lambda text: parse_share(text, allow_zero=True)),
    "min_inferences": ("min_inferences", _parse_count),
    "interval": ("interval_s", parse_duration),
    "failures": ("failure_limit", _parse_count),
}


def parse_gate(text: str) -> Gate:
    """A gate from ``metric<=number`` or ``metric>=number`` and optional ``,option=value``.

    Options: ``min_devices`` (integer), ``min_share`` (share), ``min_inferences`` (integer),
    ``interval`` (duration), ``failures`` (consecutive failing evaluations that fail the
    rollout). See :class:`~edgefleet.server.rollout.spec.Gate`.

    Examples
    --------
    >>> parse_gate("p99_ratio<=1.5,min_devices=3,interval=1m")
    Gate(metric='p99_ratio', op='<=', threshold=1.5, min_devices=3, min_device_share=0.8, min_inferences=100, interval_s=60.0, failure_limit=1)
    >>> parse_gate("latency<=2")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: unknown gate metric 'latency'; expected one of p99_ratio, error_rate_delta, accuracy_delta, disagreement, rollbacks
    """  # noqa: E501
    head, *options = text.split(",")
    match = _GATE_HEAD.match(head)
    if match is None or not match.group(2):
        raise ConfigurationError(f"bad gate {text.strip()!r}: expected {GATE_SYNTAX}")
    metric, op, number = match.groups()
    if metric not in _METRICS:
        raise _unknown_metric(metric)
    if op not in ("<=", ">="):
        raise ConfigurationError(
            f"bad operator {op!r} in gate {text.strip()!r}; expected <= or >= ({GATE_SYNTAX})"
        )
    threshold = _float(number)
    if threshold is None:
        raise ConfigurationError(
            f"bad threshold {number!r} in gate {text.strip()!r}: expected a number"
        )
    values: dict[str, Any] = {}
    for option in options:
        name, equals, value = (part.strip() for part in option.partition("="))
        if not name:
            raise ConfigurationError(
                f"empty gate option in {text.strip()!r}: expected {GATE_SYNTAX}"
            )
        if name not in _GATE_OPTIONS:
            raise ConfigurationError(
                f"unknown gate option {name!r} in {text.strip()!r}; "
                f"expected one of {_GATE_OPTIONS_TEXT}"
            )
        if not equals:
            raise ConfigurationError(f"gate option {name!r} needs a value: {name}=value")
        field, parse = _GATE_OPTIONS[name]
        if field in values:
            raise ConfigurationError(f"gate option {name!r} is given twice in {text.strip()!r}")
        values[field] = _in(f"gate option {name}", parse, value)
    gate = Gate(cast(GateMetric, metric), cast(Any, op), threshold)
    return validate_gate(dataclasses.replace(gate, **values))


def format_gate(gate: Gate) -> str:
    """The CLI syntax of ``gate`` (options only where they differ from the defaults).

    Examples
    --------
    >>> format_gate(parse_gate("accuracy_delta>=-0.02,failures=2,min_share=50%"))
    'accuracy_delta>=-0.02,min_share=50%,failures=2'
    """
    parts = [f"{gate.metric}{gate.op}{_plain(gate.threshold)}"]
    shown = {
        "min_devices": str(gate.min_devices),
        "min_share": format_share(gate.min_device_share),
        "min_inferences": str(gate.min_inferences),
        "interval": format_duration(gate.interval_s),
        "failures": str(gate.failure_limit),
    }
    for name, (field, _) in _GATE_OPTIONS.items():
        if getattr(gate, field) != getattr(_DEFAULT_GATE, field):
            parts.append(f"{name}={shown[name]}")
    return ",".join(parts)


# -- documents: YAML and JSON files, the store, the HTTP API -------------------------------------


def _kind_of(value: object) -> str:
    return "nothing (an empty document)" if value is None else type(value).__name__


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a mapping, got {_kind_of(value)}")
    return value


def _keys(data: Mapping[str, Any], where: str, allowed: tuple[str, ...], *required: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigurationError(
                f"unknown key {key!r} in {where}; expected {', '.join(allowed)}"
            )
    for key in required:
        if key not in data:
            raise ConfigurationError(f"{where} lacks the key {key!r}")


def _list(value: object, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"{where} must be a list, got {_kind_of(value)}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{where} must be a number, got {value!r}")
    return float(value)


def _integer(value: object, where: str) -> int:
    if not _is_int(value):
        raise ConfigurationError(f"{where} must be an integer, got {value!r}")
    return cast(int, value)


def _share(value: object, where: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, str):
        return _in(where, lambda text: parse_share(text, allow_zero=allow_zero), value)
    number = _number(value, where)
    return _in(
        where, lambda text: _check_share(number, text, allow_zero=allow_zero), _plain(number)
    )


def _duration(value: object, where: str) -> float:
    if isinstance(value, str):
        return _in(where, parse_duration, value)
    seconds = _number(value, where)
    if seconds < 0:
        raise ConfigurationError(f"{where}: bad duration {value!r}: expected {DURATION_SYNTAX}")
    return seconds


def _stage_from_json(value: object, where: str) -> Stage:
    data = _mapping(value, where)
    _keys(data, where, ("kind", "share", "bake", "sample_rate"), "share")
    kind = data.get("kind", "staged")
    if kind not in _KINDS:
        raise ConfigurationError(
            f"{where}.kind: unknown stage kind {kind!r}; expected one of {', '.join(_KINDS)}"
        )
    stage = Stage(kind, _share(data["share"], f"{where}.share"))
    if "bake" in data:
        stage = dataclasses.replace(stage, bake_s=_duration(data["bake"], f"{where}.bake"))
    if "sample_rate" in data:
        if kind != "shadow":
            raise ConfigurationError(f"{where}.sample_rate: only shadow stages take a sample rate")
        rate = _share(data["sample_rate"], f"{where}.sample_rate")
        stage = dataclasses.replace(stage, sample_rate=rate)
    return stage


_GATE_KEYS: dict[str, tuple[str, Callable[[object, str], float]]] = {
    "min_devices": ("min_devices", _integer),
    "min_share": ("min_device_share", lambda value, where: _share(value, where, allow_zero=True)),
    "min_inferences": ("min_inferences", _integer),
    "interval": ("interval_s", _duration),
    "failure_limit": ("failure_limit", _integer),
}


def _gate_from_json(value: object, where: str) -> Gate:
    data = _mapping(value, where)
    _keys(data, where, ("metric", "max", "min", *_GATE_KEYS), "metric")
    if data["metric"] not in _METRICS:
        raise ConfigurationError(f"{where}.metric: {_unknown_metric(data['metric'])}")
    if ("max" in data) == ("min" in data):
        raise ConfigurationError(
            f"{where} needs exactly one of max (passes when metric <= max) "
            "or min (passes when metric >= min)"
        )
    bound = "max" if "max" in data else "min"
    op: Literal["<=", ">="] = "<=" if bound == "max" else ">="
    gate = Gate(data["metric"], op, _number(data[bound], f"{where}.{bound}"))
    values: dict[str, Any] = {
        field: convert(data[key], f"{where}.{key}")
        for key, (field, convert) in _GATE_KEYS.items()
        if key in data
    }
    return _in(where, validate_gate, dataclasses.replace(gate, **values))


def plan_from_json(data: Mapping[str, Any]) -> RolloutPlan:
    """A rollout plan from its JSON (or YAML) mapping, validated like the CLI parsers.

    Keys: ``stages`` (required), ``gates`` (default :data:`~edgefleet.server.rollout.spec.DEFAULT_GATES`, ``[]`` for none),
    ``progress_deadline``.

    Examples
    --------
    >>> plan = plan_from_json({"stages": [{"share": "100%"}],
    ...                        "gates": [{"metric": "p99_ratio", "max": 2}]})
    >>> format_gate(plan.gates[0]), plan.progress_deadline_s
    ('p99_ratio<=2', 3600.0)
    >>> plan_from_json({"stages": [{"share": "100%", "bake_s": 60}]})
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: unknown key 'bake_s' in stages[0]; expected kind, share, bake, sample_rate
    """  # noqa: E501
    data = _mapping(data, "a rollout plan")
    _keys(data, "the plan", ("stages", "gates", "progress_deadline"), "stages")
    stages = _list(data["stages"], "stages")
    plan = RolloutPlan(tuple(_stage_from_json(s, f"stages[{i}]") for i, s in enumerate(stages)))
    if "gates" in data:
        gates = _list(data["gates"], "gates")
        found = tuple(_gate_from_json(g, f"gates[{i}]") for i, g in enumerate(gates))
        plan = dataclasses.replace(plan, gates=found)
    if "progress_deadline" in data:
        deadline = _duration(data["progress_deadline"], "progress_deadline")
        plan = dataclasses.replace(plan, progress_deadline_s=deadline)
    return validate_plan(plan)


def plan_to_json(plan: RolloutPlan) -> dict[str, Any]:
    """The JSON mapping of ``plan``; :func:`plan_from_json` reads it back exactly.

    Examples
    --------
    >>> plan_to_json(RolloutPlan((Stage("staged", 1.0),), gates=()))
    {'stages': [{'kind': 'staged', 'share': 1.0, 'bake': 0.0}], 'gates': [], 'progress_deadline': 3600.0}
    """  # noqa: E501
    stages: list[dict[str, Any]] = []
    for stage in plan.stages:
        stages.append({"kind": stage.kind, "share": stage.share, "bake": stage.bake_s})
        if stage.kind == "shadow":
            stages[-1]["sample_rate"] = stage.sample_rate
    gates = [
        {
            "metric": gate.metric,
            "max" if gate.op == "<=" else "min": gate.threshold,
            "min_devices": gate.min_devices,
            "min_share": gate.min_device_share,
            "min_inferences": gate.min_inferences,
            "interval": gate.interval_s,
            "failure_limit": gate.failure_limit,
        }
        for gate in plan.gates
    ]
    return {"stages": stages, "gates": gates, "progress_deadline": plan.progress_deadline_s}


_EXPERIMENT_KEYS = (
    "share_b",
    "duration",
    "metrics",
    "confidence",
    "auto_promote",
    "min_devices_per_arm",
)


def experiment_from_json(data: Mapping[str, Any]) -> ExperimentPlan:
    """An experiment plan from its JSON mapping (the value of a file's ``experiment`` key).

    Keys: ``share_b`` and ``duration`` (required), ``metrics``, ``confidence`` (``0.95`` or
    ``95%``), ``auto_promote``, ``min_devices_per_arm``.

    Examples
    --------
    >>> experiment_from_json({"share_b": "50%", "duration": "1h", "metrics": ["p99_ms"]})
    ExperimentPlan(share_b=0.5, duration_s=3600.0, metrics=('p99_ms',), confidence=0.95, auto_promote=False, min_devices_per_arm=2)
    """  # noqa: E501
    data = _mapping(data, "an experiment")
    _keys(data, "the experiment", _EXPERIMENT_KEYS, "share_b", "duration")
    plan = ExperimentPlan(
        _share(data["share_b"], "share_b"), _duration(data["duration"], "duration")
    )
    if "metrics" in data:
        metrics = _list(data["metrics"], "metrics")
        for i, metric in enumerate(metrics):
            if not isinstance(metric, str):
                raise ConfigurationError(f"metrics[{i}] must be a metric name, got {metric!r}")
        plan = dataclasses.replace(plan, metrics=tuple(metrics))
    if "confidence" in data:
        plan = dataclasses.replace(plan, confidence=_share(data["confidence"], "confidence"))
    if "auto_promote" in data:
        plan = dataclasses.replace(plan, auto_promote=data["auto_promote"])
    if "min_devices_per_arm" in data:
        least = _integer(data["min_devices_per_arm"], "min_devices_per_arm")
        plan = dataclasses.replace(plan, min_devices_per_arm=least)
    return validate_experiment(plan)


def experiment_to_json(plan: ExperimentPlan) -> dict[str, Any]:
    """The JSON mapping of ``plan``; :func:`experiment_from_json` reads it back exactly.

    Examples
    --------
    >>> experiment_to_json(ExperimentPlan(0.5, 3600.0))["metrics"]
    ['accuracy_estimate', 'p99_ms', 'error_rate']
    """
    return {
        "share_b": plan.share_b,
        "duration": plan.duration_s,
        "metrics": list(plan.metrics),
        "confidence": plan.confidence,
        "auto_promote": plan.auto_promote,
        "min_devices_per_arm": plan.min_devices_per_arm,
    }


def load_plan_data(data: object) -> RolloutPlan | ExperimentPlan:
    """A rollout plan (a mapping with ``stages``) or an experiment (``{experiment: {...}}``).

    Examples
    --------
    >>> load_plan_data({"experiment": {"share_b": 0.1, "duration": 600}}).share_b
    0.1
    >>> load_plan_data([1, 2])
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: a plan must be a mapping with 'stages' (a rollout) or 'experiment' (an A/B experiment), got list
    """  # noqa: E501
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            "a plan must be a mapping with 'stages' (a rollout) or 'experiment' "
            f"(an A/B experiment), got {_kind_of(data)}"
        )
    if "experiment" in data:
        _keys(data, "an experiment plan", ("experiment",))
        experiment = _mapping(data["experiment"], "experiment")
        return _in("experiment", experiment_from_json, experiment)
    if "stages" not in data:
        raise ConfigurationError(
            "a plan needs 'stages' (a rollout) or 'experiment' (an A/B experiment); "
            f"found {', '.join(map(repr, data)) or 'no keys'}"
        )
    return plan_from_json(data)


def load_plan_file(path: Path) -> RolloutPlan | ExperimentPlan:
    r"""A rollout or experiment plan from a ``.yaml``, ``.yml`` or ``.json`` file.

    Errors name the file and the bad part (:func:`load_plan_data`).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "plan.yaml"
    ...     _ = path.write_text("stages:\n  - {kind: canary, share: 5%, bake: 1h}\n"
    ...                         "  - {share: 100%}\n")
    ...     format_stages(load_plan_file(path).stages)
    'canary:5%:1h,100%'
    """
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigurationError(
            f"plan file {path}: unknown suffix {suffix or '(none)'!r}; "
            "expected .yaml, .yml or .json"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read plan file {path}: {exc}") from None
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise ConfigurationError(f"plan file {path} is not valid {kind}: {exc}") from None
    try:
        return load_plan_data(data)
    except ConfigurationError as exc:
        raise ConfigurationError(f"plan file {path}: {exc}") from None
