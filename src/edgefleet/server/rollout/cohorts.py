"""Which devices a rollout stage or an A/B arm takes: deterministic, stratified by hardware class.

Every device gets a :func:`rank` in ``[0, 1)`` from SHA-256 of the rollout id and its device id,
so the same rollout orders the same devices the same way in every process, after every restart,
on every replica. Within each hardware class (:func:`hardware_class`) devices are ordered by
rank, and a stage of share ``s`` takes the first :func:`stage_size` ``= ceil(s * n)`` devices of
each class of ``n``: every class is represented in every stage with a share above zero, so a
model that only misbehaves on one kind of hardware is caught at the first stage.

What stays true as the fleet changes:

* a device's rank depends on the rollout id and its own id only; other devices never change it;
* in each class, the members of a stage are a prefix of the rank order, and the devices of one
  class never affect the stage of another class's devices;
* adding a device to a class of ``n`` never shrinks a stage's size in that class, but it may
  shift a boundary by one: when the newcomer ranks before the last member of a stage whose
  size stays ``ceil(s * n) = ceil(s * (n + 1))``, that last member drops to a later stage
  (at most one device per stage, always the stage's last by rank); when the size grows, the
  device just past the boundary may move into it.

Rollouts recompute the stages from the devices their selector matches at each evaluation: with
an unchanged fleet that is the same cohort in every process and after every restart; a device
enrolled mid-rollout can move one device per stage and class across a boundary, as above.

Examples
--------
>>> classes = {f"cam-{i}": "x86" for i in range(10)} | {"orin-1": "orin", "orin-2": "orin"}
>>> stages = assign_stages("rollout-1", classes, [0.1, 0.5, 1.0])
>>> sorted(device for device, stage in stages.items() if stage == 0)
['cam-0', 'orin-1']
>>> sum(stage <= 1 for stage in stages.values())
6
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "UNKNOWN_CLASS",
    "assign_arms",
    "assign_stages",
    "hardware_class",
    "rank",
    "stage_size",
]

UNKNOWN_CLASS = "unknown"
"""The class of a device without an ``hw`` label whose inventory says nothing about it."""

Arm = Literal["a", "b"]


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def hardware_class(labels: Mapping[str, str], inventory: Mapping[str, Any]) -> str:
    """The hardware class a device is stratified by.

    The ``hw`` label when it is set; otherwise ``arch/cpu_model/<n>cpu`` from the inventory,
    with ``+gpu`` when CUDA is among its execution providers. Missing or empty fields read
    ``unknown``; a device whose inventory says nothing is :data:`UNKNOWN_CLASS`.

    Examples
    --------
    >>> hardware_class({"hw": "orin-nx"}, {"arch": "aarch64"})
    'orin-nx'
    >>> hardware_class({}, {"arch": "x86_64", "cpu_model": "Intel  Xeon", "cpu_count": 8,
    ...                     "execution_providers": ["CUDAExecutionProvider"]})
    'x86_64/Intel Xeon/8cpu+gpu'
    >>> hardware_class({}, {"arch": "aarch64"}), hardware_class({}, {})
    ('aarch64/unknown/unknown', 'unknown')
    """
    label = _text(labels.get("hw"))
    if label:
        return label
    count = inventory.get("cpu_count")
    parts = [
        _text(inventory.get("arch")),
        _text(inventory.get("cpu_model")),
        f"{count}cpu"
        if isinstance(count, int) and not isinstance(count, bool) and count > 0
        else "",
    ]
    base = "/".join(part or UNKNOWN_CLASS for part in parts) if any(parts) else UNKNOWN_CLASS
    providers = inventory.get("execution_providers")
    gpu = isinstance(providers, list | tuple) and "CUDAExecutionProvider" in providers
    return base + "+gpu" if gpu else base


def rank(rollout_id: str, device_id: str) -> float:
    """A device's place in a rollout's order, in ``[0, 1)``, from SHA-256 of both ids.

    Stable across processes, restarts and machines (never Python's salted ``hash()``), and
    independent between rollouts: the first devices of one rollout are not those of the next.

    Examples
    --------
    >>> rank("rollout-1", "cam-1")
    0.6675485560465335
    >>> rank("rollout-2", "cam-1") != rank("rollout-1", "cam-1")
    True
    """
    key = f"{len(rollout_id)}:{rollout_id}:{device_id}".encode()
    top = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 11
    return top / 2**53


def stage_size(share: float, n: int) -> int:
    """How many of a class's ``n`` devices a stage of ``share`` takes: ``ceil(share * n)``.

    Floating-point noise below ``1e-9`` is ignored, so ``0.3 * 10`` gives 3, not 4; any share
    above zero takes at least one device.

    Examples
    --------
    >>> stage_size(0.05, 3), stage_size(0.3, 10), stage_size(0.0, 10), stage_size(1.0, 7)
    (1, 3, 0, 7)
    """
    if not 0 <= share <= 1:
        raise ValueError(f"a share must lie in [0, 1], got {share!r}")
    size = math.ceil(round(share * n, 9))
    return max(size, 1) if share > 0 and n > 0 else size


def _ranked_classes(rollout_id: str, classes: Mapping[str, str]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for device in sorted(classes):
        members.setdefault(classes[device], []).append(device)
    for devices in members.values():
        devices.sort(key=lambda device: (rank(rollout_id, device), device))
    return members


def assign_stages(
    rollout_id: str, classes: Mapping[str, str], shares: Sequence[float]
) -> dict[str, int]:
    """The first stage of each device, stratified by hardware class.

    Parameters
    ----------
    rollout_id
        Seeds the order; another rollout orders the same devices differently.
    classes
        Device id -> hardware class (:func:`hardware_class`).
    shares
        Cumulative stage shares, non-decreasing in ``[0, 1]`` (a rollout's serving stages;
        shadow stages are assigned by a call of their own).

    Returns
    -------
    dict[str, int]
        Device id -> index of the first stage containing it, ``len(shares)`` if none. Stage
        ``i`` holds the first :func:`stage_size` ``(shares[i], n)`` devices of every class of
        ``n`` by :func:`rank`.

    Examples
    --------
    >>> assign_stages("r", {"a": "x86", "b": "x86", "c": "arm"}, [0.5, 1.0])
    {'a': 1, 'b': 0, 'c': 0}
    """
    if any(not 0 <= share <= 1 for share in shares) or any(
        later < earlier for earlier, later in itertools.pairwise(shares)
    ):
        raise ValueError(f"stage shares must be non-decreasing in [0, 1], got {list(shares)}")
    first: dict[str, int] = {}
    for devices in _ranked_classes(rollout_id, classes).values():
        sizes = [stage_size(share, len(devices)) for share in shares]
        for position, device in enumerate(devices):
            first[device] = bisect.bisect_right(sizes, position)
    return {device: first[device] for device in sorted(first)}


def assign_arms(rollout_id: str, classes: Mapping[str, str], share_b: float) -> dict[str, Arm]:
    """Split devices into arms A and B, stratified by hardware class.

    Arm B gets ``round(share_b * N)`` of the ``N`` devices (at least one and at most
    ``N - 1`` when ``0 < share_b < 1`` and ``N >= 2``, so both arms exist), spread over the
    classes in proportion to their sizes: each class of ``n`` gives ``floor(share_b * n)`` or
    ``ceil(share_b * n)`` devices, the remainders going to the classes with the largest
    fractional parts. Within a class, B takes the first devices by :func:`rank`.

    Examples
    --------
    >>> classes = {f"cam-{i}": "x86" for i in range(4)} | {"orin-1": "orin", "orin-2": "orin"}
    >>> arms = assign_arms("experiment-1", classes, 0.5)
    >>> sorted(device for device, arm in arms.items() if arm == "b")
    ['cam-0', 'cam-2', 'orin-1']
    """
    if not 0 <= share_b <= 1:
        raise ValueError(f"share_b must lie in [0, 1], got {share_b!r}")
    ranked = _ranked_classes(rollout_id, classes)
    total = len(classes)
    target = math.floor(round(share_b * total, 9) + 0.5)
    if 0 < share_b < 1 and total >= 2:
        target = min(max(target, 1), total - 1)
    ideal = {name: round(share_b * len(devices), 9) for name, devices in ranked.items()}
    counts = {name: math.floor(value) for name, value in ideal.items()}
    order = sorted(
        ranked, key=lambda name: (counts[name] - ideal[name], rank(rollout_id, f"class:{name}"))
    )
    while sum(counts.values()) < target:  # one more device from the largest remainders first
        for name in order:
            if sum(counts.values()) < target and counts[name] < len(ranked[name]):
                counts[name] += 1
    while sum(counts.values()) > target:  # only after clamping to leave arm A a device
        for name in reversed(order):
            if sum(counts.values()) > target and counts[name] > 0:
                counts[name] -= 1
    arms: dict[str, Arm] = {}
    for name, devices in ranked.items():
        for position, device in enumerate(devices):
            arms[device] = "b" if position < counts[name] else "a"
    return {device: arms[device] for device in sorted(arms)}
