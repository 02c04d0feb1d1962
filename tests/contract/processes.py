"""Run store calls in separate processes that start them at the same moment.

Each worker opens its own store (as a server replica would), waits at a barrier shared by all
workers, then makes its call; the results come back in worker order. Workers are started with
``forkserver`` (preloading the store) so that they start fast without inheriting the test
process's connections or threads.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from edgefleet.server.store import Store, open_store

TIMEOUT_S = 60.0

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["edgefleet.server.store", "tests.contract.processes"])

Work = Callable[..., Any]


def race(url: str, work: Work, args: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Call ``work(store, *args[i])`` in ``len(args)`` processes at once; return the results.

    Raises
    ------
    AssertionError
        A worker raised (its traceback is in the message) or did not finish in time.
    """
    barrier = _context.Barrier(len(args))
    results: multiprocessing.Queue[tuple[int, bool, Any]] = _context.Queue()
    workers = [
        _context.Process(target=_worker, args=(url, work, i, a, barrier, results), daemon=True)
        for i, a in enumerate(args)
    ]
    for worker in workers:
        worker.start()
    collected: dict[int, Any] = {}
    failures: list[str] = []
    try:
        _collect(workers, results, collected, failures)
    finally:
        for worker in workers:
            worker.join(timeout=TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    assert not failures, "\n".join(failures)
    return [collected[i] for i in range(len(workers))]


def _collect(
    workers: list[Any],
    results: multiprocessing.Queue[tuple[int, bool, Any]],
    collected: dict[int, Any],
    failures: list[str],
) -> None:
    """Gather one result per worker; stop early when a worker died without sending one."""
    deadline = time.monotonic() + TIMEOUT_S
    reported: set[int] = set()
    while len(reported) < len(workers):
        try:
            index, ok, value = results.get(timeout=0.2)
        except queue.Empty:
            dead = [
                i for i, w in enumerate(workers) if i not in reported and w.exitcode is not None
            ]
            if dead and results.empty():
                failures.append(f"workers {dead} exited without a result")
                return
            if time.monotonic() > deadline:
                failures.append(f"a worker gave no result within {TIMEOUT_S} s")
                return
            continue
        reported.add(index)
        if ok:
            collected[index] = value
        else:
            failures.append(f"worker {index}:\n{value}")


def _worker(
    url: str,
    work: Work,
    index: int,
    args: tuple[Any, ...],
    barrier: Any,
    results: multiprocessing.Queue[tuple[int, bool, Any]],
) -> None:
    try:
        with open_store(url) as store:
            barrier.wait(timeout=TIMEOUT_S)
            results.put((index, True, work(store, *args)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


# Work done in the workers (module level, so that it can be sent to them by reference).


def consume_token(store: Store, token_hash: str, now: float) -> bool:
    return store.consume_enroll_token(token_hash, now) is not None


def add_releases(store: Store, name: str, version: str, count: int) -> list[int]:
    return [
        store.add_release(name, version, f"models/{name}.onnx", "a" * 64, 1, {}, 0.0).release
        for _ in range(count)
    ]


def take_lock(store: Store, name: str, owner: str, lease_s: float, now: float) -> bool:
    return store.try_lock(name, owner, lease_s, now)


def migrate(store: Store) -> str | None:
    store.migrate()
    return store.schema_revision()
