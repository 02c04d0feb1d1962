"""Update codecs and aggregation at ResNet-18 size: edgefleet's sparse codecs versus dense float32.

One update is 11,689,512 float32 values (ResNet-18's parameters). Compared side by side in
one run:

- **dense float32** (the reference): what Flower sends, the array's raw bytes
  (``ndarray.tobytes``); decoding is ``np.frombuffer``; aggregation is the examples-weighted
  sum accumulated in float32, one update at a time, as Flower's FedAvg does;
- **edgefleet** ``dgc:0.999,warmup=0`` and ``topk:0.999``: encode (top 0.1% chosen, indices
  as varint gaps, float16 values, zlib where it pays) and decode to the dense vector, and
  aggregation two ways: every update decoded to its dense vector and folded in with FedAvg
  from ``edgefleet.federated.strategies``; and as the control plane aggregates a round for a
  mean-based strategy, ``edgefleet.federated.streaming.streaming_mean`` over the payloads
  (sparse ones scatter-added from their indices and values) and one FedAvg step. DGC runs
  without warm-up so that every encode is at 99.9% (a device past its first rounds).

500 dense updates are 23 GB, so both sides aggregate streaming: decode one update, fold it in,
drop it (edgefleet: groups of ``--group`` decoded updates go through ``FedAvg.aggregate``
together with the running mean weighted by the examples it stands for; the running mean is a
float32 vector). The 500 payloads cycle through ``--distinct`` different updates (random
normal values), each encoded once: decoding and aggregating work on real payloads every time,
but the run does not spend minutes making 500 different ones. Top-k payloads have the same
wire format and decoder as DGC's, so by default only DGC's go through the aggregation
(``--all-codecs`` adds top-k's).

Per-update encode and decode times are medians over ``--repeats`` calls per side, sides
alternating. Usage: python benchmarks/fl_codec_speed.py [--devices 500] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from edgefleet.federated.compression import from_spec
from edgefleet.federated.strategies import ClientUpdate
from edgefleet.federated.strategies import from_spec as strategy_from_spec
from edgefleet.federated.streaming import streaming_mean

SIZE = 11_689_512
"""ResNet-18's parameter count."""
REFERENCE = "dense float32 (tobytes)"
CODECS = ("dgc:0.999,warmup=0", "topk:0.999")
STREAMING = "streaming_mean (dgc payloads)"
"""The row of the control plane's own aggregation of a round."""

Vector = NDArray[np.float32]


def _updates(count: int, seed: int) -> list[Vector]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(SIZE, dtype=np.float32) * 1e-3) for _ in range(count)]


def _encode(side: str, update: Vector) -> bytes:
    if side == REFERENCE:
        return update.tobytes()
    return from_spec(side).encode(update)  # a fresh codec: one device's state


def _decode(side: str, payload: bytes) -> Vector:
    if side == REFERENCE:
        return np.frombuffer(payload, np.float32)
    return from_spec(side).decode(payload, SIZE)


def per_update(sides: list[str], updates: list[Vector], repeats: int) -> dict[str, Any]:
    """Median encode and decode seconds of one update per side, sides alternating."""
    encode: dict[str, list[float]] = {s: [] for s in sides}
    decode: dict[str, list[float]] = {s: [] for s in sides}
    size: dict[str, int] = {}
    clock = time.perf_counter
    for r in range(repeats):
        update = updates[r % len(updates)]
        for side in sides if r % 2 == 0 else sides[::-1]:
            start = clock()
            payload = _encode(side, update)
            encode[side].append(clock() - start)
            start = clock()
            _decode(side, payload)
            decode[side].append(clock() - start)
            size[side] = len(payload)
    return {
        s: {
            "encode_s": statistics.median(encode[s]),
            "decode_s": statistics.median(decode[s]),
            "payload_bytes": size[s],
        }
        for s in sides
    }


def aggregate_reference(payloads: list[bytes], weights: list[int]) -> tuple[float, Vector]:
    """Dense float32 streaming: frombuffer, ``sum += (n_i / n) * x_i``; seconds and the mean."""
    total = sum(weights)
    start = time.perf_counter()
    mean = np.zeros(SIZE, np.float32)
    for i, n in enumerate(weights):
        x = np.frombuffer(payloads[i % len(payloads)], np.float32)
        mean += x * np.float32(n / total)
    return time.perf_counter() - start, mean


def aggregate_fedavg(
    spec: str, payloads: list[bytes], weights: list[int], group: int
) -> tuple[float, Vector]:
    """Decode + edgefleet FedAvg, streaming in groups; seconds and the mean update."""
    codec = from_spec(spec)
    fedavg = strategy_from_spec("fedavg")
    zeros = np.zeros(SIZE, np.float32)
    start = time.perf_counter()
    running: ClientUpdate | None = None
    for first in range(0, len(weights), group):
        batch = [] if running is None else [running]
        for i in range(first, min(first + group, len(weights))):
            delta = codec.decode(payloads[i % len(payloads)], SIZE)
            batch.append(ClientUpdate(delta, weights[i]))
        mean = fedavg.aggregate(zeros, batch)
        running = ClientUpdate(mean, sum(u.num_examples for u in batch))
        del batch
    assert running is not None
    return time.perf_counter() - start, running.delta


def aggregate_streaming(
    spec: str, payloads: list[bytes], weights: list[int]
) -> tuple[float, Vector]:
    """The control plane's way: ``streaming_mean`` of the payloads, one FedAvg step."""
    codec = from_spec(spec)
    start = time.perf_counter()
    items = ((payloads[i % len(payloads)], n) for i, n in enumerate(weights))
    mean, total = streaming_mean(items, SIZE, codec)
    step = strategy_from_spec("fedavg").aggregate(
        np.zeros(SIZE, np.float32), [ClientUpdate(mean, total)]
    )
    return time.perf_counter() - start, step


def main() -> None:
    """Run the comparison, print the tables and save the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500, help="updates aggregated (500)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct updates cycled (4)")
    parser.add_argument("--repeats", type=int, default=4, help="per-update timings (4)")
    parser.add_argument("--group", type=int, default=20, help="updates per FedAvg call (20)")
    parser.add_argument(
        "--all-codecs",
        action="store_true",
        help="aggregate top-k payloads too (same wire format and decoder as DGC's)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 devices, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.repeats, args.distinct = 20, 2, 2
    print(f"{SIZE:,} float32 values per update; {args.devices} devices per round")
    print("sides run alternately in this one process run (noisy 2-core machine)")
    updates = _updates(args.distinct, seed=0)
    sides = [REFERENCE, *CODECS]
    print("per-update encode/decode ...", flush=True)
    single = per_update(sides, updates, args.repeats)
    weights = np.random.default_rng(1).integers(50, 500, args.devices).tolist()
    pools = {side: [_encode(side, u) for u in updates] for side in sides}
    del updates
    rounds: dict[str, dict[str, float]] = {}
    means: dict[str, Vector] = {}
    order = [REFERENCE, CODECS[0], STREAMING]
    if args.all_codecs:
        order.append(CODECS[1])
    for side in order:
        print(f"aggregating {args.devices} updates: {side} ...", flush=True)
        if side == REFERENCE:
            seconds, means[side] = aggregate_reference(pools[side], weights)
            pool = pools[side]
        elif side in CODECS:
            seconds, means[side] = aggregate_fedavg(side, pools[side], weights, args.group)
            pool = pools[side]
        else:
            seconds, means[side] = aggregate_streaming(CODECS[0], pools[CODECS[0]], weights)
            pool = pools[CODECS[0]]
        uplink = sum(len(pool[i % len(pool)]) for i in range(args.devices))
        rounds[side] = {"aggregate_s": seconds, "uplink_bytes_per_round": uplink}
        print(f"  {seconds:.1f} s", flush=True)
    agree = float(np.max(np.abs(means[CODECS[0]] - means[STREAMING])))
    dense_round = rounds[REFERENCE]
    print()
    head = (
        f"{'one update':<26} {'encode s':>9} {'decode s':>9} {'payload bytes':>14} {'vs dense':>9}"
    )
    print(head)
    print("-" * len(head))
    for side, row in single.items():
        ratio = single[REFERENCE]["payload_bytes"] / row["payload_bytes"]
        print(
            f"{side:<26} {row['encode_s']:>9.3f} {row['decode_s']:>9.3f} "
            f"{row['payload_bytes']:>14,} {ratio:>8.0f}x"
        )
    print()
    head = (
        f"{f'round of {args.devices} devices':<34} {'aggregate s':>11} {'vs dense':>9} "
        f"{'uplink bytes':>15} {'vs dense':>9}"
    )
    print(head)
    print("-" * len(head))
    for side, row in rounds.items():
        print(
            f"{side:<34} {row['aggregate_s']:>11.1f} "
            f"{row['aggregate_s'] / dense_round['aggregate_s']:>8.2f}x "
            f"{row['uplink_bytes_per_round']:>15,} "
            f"{dense_round['uplink_bytes_per_round'] / row['uplink_bytes_per_round']:>8.0f}x"
        )
    print(
        "\naggregate s: decode + fold in of every update (streaming), excluding encoding; "
        "'vs dense' time is a ratio (lower is faster)"
    )
    print(f"streaming vs decode + FedAvg, largest difference of the means: {agree:.2e}")
    path = save(
        "fl_codec_speed_quick" if args.quick else "fl_codec_speed",
        {
            "config": {
                "size": SIZE,
                "devices": args.devices,
                "distinct_updates": args.distinct,
                "repeats": args.repeats,
                "group": args.group,
                "streaming": "decode one, fold in, drop; edgefleet FedAvg in groups",
            },
            "per_update": single,
            "per_round": rounds,
            "streaming_vs_fedavg_max_abs_diff": agree,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
