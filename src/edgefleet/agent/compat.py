"""Can this device run a model? Opset, execution providers and memory, checked before loading.

The registry publishes a model's needs in the custom field ``requirements`` of its TUF target:
``{"execution_providers": [...], "memory_bytes": int}``. A non-empty provider list means *any
one of these*; an empty list means the CPU will do. The agent checks them, with the model's
opset, before it loads the file, and reports every reason at once.

Examples
--------
>>> check_compatibility(
...     {"execution_providers": [], "memory_bytes": 2**20},
...     opset=17,
...     max_supported_opset=21,
...     available_providers=["CPUExecutionProvider"],
...     memory_available_bytes=2**30,
... )
>>> compatibility_problems(
...     {"execution_providers": ["CUDAExecutionProvider"], "memory_bytes": 2**31},
...     opset=23,
...     max_supported_opset=21,
...     available_providers=["CPUExecutionProvider"],
...     memory_available_bytes=2**30,
... )  # doctest: +NORMALIZE_WHITESPACE
['model opset 23 is newer than this ONNX Runtime supports (up to 21)',
 'needs one of the execution providers CUDAExecutionProvider (this device has
  CPUExecutionProvider)',
 'needs an estimated 2048.0 MiB of memory but 1024.0 MiB is available']
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import onnxruntime as ort

from edgefleet.errors import CompatibilityError
from edgefleet.runtime.onnx_file import identity_model

__all__ = ["check_compatibility", "compatibility_problems", "max_supported_opset"]

_KNOWN = ("execution_providers", "memory_bytes")
_MiB = 2**20
_PROBE_FLOOR = 7
_PROBE_CEILING = 256  # far past any opset: ai.onnx gains about two a year

log = logging.getLogger(__name__)


@functools.cache
def max_supported_opset() -> int:
    """The newest default-domain (``ai.onnx``) opset the installed ONNX Runtime accepts.

    ONNX Runtime publishes no such number, so it is asked: one-node ``Identity`` models stamped
    with different opsets are offered to a session, and a binary search between opset 7 and
    :data:`_PROBE_CEILING` finds the newest it accepts (acceptance is monotonic: a runtime
    refuses opsets past the newest it knows). Runs once per process (a few milliseconds).
    Returns 0, refusing every model, should even opset 7 be refused.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3  # opsets still "under development" only warn

    def accepted(opset: int) -> bool:
        try:
            ort.InferenceSession(identity_model(opset), options, providers=["CPUExecutionProvider"])
        except Exception:  # a refusal
            return False
        return True

    low, high = _PROBE_FLOOR, _PROBE_CEILING  # low accepted (checked below), high refused
    if not accepted(low):
        log.warning("ONNX Runtime refuses even opset %d; no model is compatible", low)
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        if accepted(middle):
            low = middle
        else:
            high = middle
    return low


def compatibility_problems(
    requirements: Mapping[str, Any],
    *,
    opset: int,
    max_supported_opset: int,
    available_providers: Sequence[str],
    memory_available_bytes: int,
) -> list[str]:
    """Every reason this device cannot run the model; empty when it can.

    Unknown requirement keys are reasons too: an agent must not run a model whose needs it
    does not understand (the registry may learn new requirements before this agent does).
    """
    raw: object = requirements  # JSON from the registry: check what it really is
    if not isinstance(raw, Mapping):
        return [f"requirements must be a mapping, got {type(raw).__name__}"]
    problems = [
        f"unknown requirement {key!r} (this agent checks {', '.join(_KNOWN)})"
        for key in sorted(map(str, requirements))
        if key not in _KNOWN
    ]
    if opset > max_supported_opset:
        problems.append(
            f"model opset {opset} is newer than this ONNX Runtime supports "
            f"(up to {max_supported_opset})"
        )
    wanted = requirements.get("execution_providers") or []
    if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
        problems.append(f"execution_providers must be a list of names, got {wanted!r}")
    elif wanted and not set(wanted) & set(available_providers):
        problems.append(
            f"needs one of the execution providers {', '.join(wanted)} (this device has "
            f"{', '.join(available_providers) or 'none'})"
        )
    memory = requirements.get("memory_bytes", 0)
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
        problems.append(f"memory_bytes must be a non-negative integer, got {memory!r}")
    elif memory > memory_available_bytes:
        problems.append(
            f"needs an estimated {memory / _MiB:.1f} MiB of memory but "
            f"{memory_available_bytes / _MiB:.1f} MiB is available"
        )
    return problems


def check_compatibility(
    requirements: Mapping[str, Any],
    *,
    opset: int,
    max_supported_opset: int,
    available_providers: Sequence[str],
    memory_available_bytes: int,
) -> None:
    """Refuse a model this device cannot run, naming every reason.

    Parameters
    ----------
    requirements
        The TUF target's custom ``requirements``: ``execution_providers`` (any one of them
        must be available; ``[]`` or absent: no need) and ``memory_bytes`` (the registry's
        estimate; absent: 0).
    opset
        The model's default-domain opset.
    max_supported_opset
        What the installed ONNX Runtime accepts (:func:`max_supported_opset`).
    available_providers
        ``onnxruntime.get_available_providers()`` on this device.
    memory_available_bytes
        Memory available now. An unknown amount must be passed as 0, which refuses every
        model with a memory estimate: missing data never passes a check.

    Raises
    ------
    CompatibilityError
        With every reason, separated by ``"; "``.
    """
    problems = compatibility_problems(
        requirements,
        opset=opset,
        max_supported_opset=max_supported_opset,
        available_providers=available_providers,
        memory_available_bytes=memory_available_bytes,
    )
    if problems:
        raise CompatibilityError("model is incompatible with this device: " + "; ".join(problems))
