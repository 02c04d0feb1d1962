"""The spool keeps telemetry through kills and corruption, within its budget, counting drops."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.agent.spool import Spool, SpoolBatch
from edgefleet.errors import ConfigurationError, StoreError
from edgefleet.protocol.v1 import Event, TelemetryWindow


def window(i: int | str, pad: int = 400) -> TelemetryWindow:
    return TelemetryWindow(
        window_id=f"w-{i:>08}",
        model="digits",
        version="3",
        started_at=1000.0 + (0 if isinstance(i, str) else i),  # one size for i < 1000
        ended_at=2000.0,
        snapshot={"count": 1, "pad": "x" * pad},
        swaps=0,
        rollbacks=0,
    )


def event(i: int) -> Event:
    return Event(
        event_id=f"e-{i:08d}", at=1000.0 + i, kind="verified", detail="ok", ok=True, release=0
    )


def size_of(item: TelemetryWindow | Event) -> int:
    return len(item.model_dump_json().encode())


def ids(batch: SpoolBatch) -> list[str]:
    return [w.window_id for w in batch.windows] + [e.event_id for e in batch.events]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db") as opened:
        yield opened


# -- storing and acknowledging ---------------------------------------------------------------


def test_windows_and_events_come_back_oldest_first(spool: Spool) -> None:
    for i in range(3):
        spool.add_window(window(i))
        spool.add_event(event(i))
    batch = spool.pending()
    assert batch.windows == [window(0), window(1), window(2)]
    assert batch.events == [event(0), event(1), event(2)]
    assert len(batch.window_rowids) == len(batch.event_rowids) == 3
    assert spool.pending() == batch  # pending does not consume
    spool.ack(batch)
    assert ids(spool.pending()) == []
    assert spool.size_bytes() == 0


def test_batches_respect_their_limits(spool: Spool) -> None:
    for i in range(10):
        spool.add_window(window(i))
        spool.add_event(event(i))
    batch = spool.pending(max_windows=4, max_events=0)
    assert ids(batch) == [window(i).window_id for i in range(4)]
    spool.ack(batch)
    assert spool.pending(max_windows=2, max_events=1).windows == [window(4), window(5)]
    with pytest.raises(ConfigurationError, match="batch limits"):
        spool.pending(max_windows=-1)


def test_acknowledging_deletes_only_what_was_read(spool: Spool) -> None:
    spool.add_window(window(0))
    first = spool.pending()
    spool.add_window(window(1))
    spool.ack(first)
    spool.ack(first)  # a retried acknowledgement deletes nothing more
    assert spool.pending().windows == [window(1)]
    spool.ack(spool.pending())
    spool.add_window(window(2))  # row ids are never reused, even after the table emptied
    spool.ack(first)
    assert spool.pending().windows == [window(2)]


def test_size_counts_the_stored_json_payloads(spool: Spool) -> None:
    spool.add_window(window(0))
    spool.add_event(event(0))
    assert spool.size_bytes() == size_of(window(0)) + size_of(event(0))


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", budget_bytes=3 * size_of(window(0))) as spool:
        for i in range(5):
            spool.add_window(window(i))
        spool.add_event(event(0))
    with Spool(tmp_path / "spool.db", budget_bytes=3 * size_of(window(0))) as reopened:
        assert ids(reopened.pending()) == [window(3).window_id, window(4).window_id, "e-00000000"]
        assert reopened.counters() == {"dropped_windows": 3, "dropped_events": 0, "recoveries": 0}


# -- the budget ------------------------------------------------------------------------------


def test_the_oldest_windows_are_dropped_over_budget_and_counted(tmp_path: Path) -> None:
    budget = 5 * size_of(window(0))
    with Spool(tmp_path / "spool.db", budget_bytes=budget) as spool:
        totals = []
        for i in range(12):
            spool.add_window(window(i))
            assert spool.size_bytes() <= budget
            totals.append(spool.dropped_total)
        assert spool.pending().windows == [window(i) for i in range(7, 12)]
        assert spool.dropped_total == 7
        assert totals == sorted(totals)  # monotonic
        spool.ack(spool.pending())
        assert spool.dropped_total == 7  # acknowledging is not dropping
    with Spool(tmp_path / "spool.db", budget_bytes=budget) as reopened:
        assert reopened.dropped_total == 7


def test_windows_go_before_any_event(tmp_path: Path) -> None:
    budget = 2 * size_of(window(0)) + 2 * size_of(event(0))
    with Spool(tmp_path / "spool.db", budget_bytes=budget) as spool:
        spool.add_event(event(0))
        spool.add_event(event(1))
        for i in range(4):
            spool.add_window(window(i))
        assert ids(spool.pending()) == ["w-00000002", "w-00000003", "e-00000000", "e-00000001"]
        for i in range(2, 2 + 2 * size_of(window(0)) // size_of(event(0)) + 1):
            spool.add_event(event(i))
        batch = spool.pending()
        assert batch.windows == []  # every window went first, then the oldest events
        assert batch.events[-1] == event(i)
        assert spool.counters()["dropped_windows"] == 4
        assert spool.counters()["dropped_events"] >= 1


def test_an_item_larger_than_the_budget_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", budget_bytes=1000) as spool:
        spool.add_window(window(0, pad=10))
        with pytest.raises(ConfigurationError, match=r"window of \d+ bytes cannot fit .* 1000"):
            spool.add_window(window(1, pad=2000))
        assert spool.pending().windows == [window(0, pad=10)]  # nothing was evicted for it
        assert spool.dropped_total == 0


@pytest.mark.parametrize("budget", [0, -1, True, 1.5, "16MiB"])
def test_bad_budgets_are_refused(tmp_path: Path, budget: object) -> None:
    with pytest.raises(ConfigurationError, match="positive byte count"):
        Spool(tmp_path / "spool.db", budget_bytes=budget)  # type: ignore[arg-type]


# -- durability ------------------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from edgefleet.agent.spool import Spool
from edgefleet.protocol.v1 import TelemetryWindow

spool = Spool(Path(sys.argv[1]), budget_bytes=int(sys.argv[2]))
i = 0
while True:
    spool.add_window(TelemetryWindow(
        window_id=f"w-{i:08d}", model="m", version="1", started_at=i, ended_at=i + 1,
        snapshot={"pad": "x" * 400},
    ))
    print(i, flush=True)  # printed only after the commit returned
    i += 1
"""


def kill_writer_after(path: Path, commits: int, budget: int) -> int:
    """Run a writer process, SIGKILL it after ``commits`` commits; return the last it printed.

    The writer may commit (and print) a few more windows between the line that triggers the
    kill and the kill itself; the lines it printed before dying are read too, so the result
    is the last commit the writer reported, with at most one more in flight.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(budget)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = -1
    try:
        for line in proc.stdout:
            last = int(line)
            if last >= commits:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        for line in proc.stdout:  # printed before the kill landed
            last = int(line)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return last


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_killed_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    last = kill_writer_after(path, 150, 16 * 2**20)
    assert integrity(path) == "ok"
    with Spool(path) as spool:
        assert spool.recovered_from is None
        numbers = [int(w.window_id[2:]) for w in spool.pending(max_windows=10_000).windows]
        # everything printed is there; at most the one commit in flight besides
        assert numbers[: last + 1] == list(range(last + 1))
        assert len(numbers) in (last + 1, last + 2)
        spool.add_window(window("after"))  # and the spool goes on working


def test_a_writer_killed_while_evicting_keeps_rows_and_counts_consistent(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    budget = 20 * 520
    last = kill_writer_after(path, 200, budget)
    assert integrity(path) == "ok"
    with Spool(path, budget_bytes=budget) as spool:
        numbers = [int(w.window_id[2:]) for w in spool.pending(max_windows=10_000).windows]
        assert numbers == list(range(numbers[0], numbers[-1] + 1))  # the newest, contiguous
        assert numbers[-1] in (last, last + 1)
        # each add, its evictions and the counter committed together
        assert spool.dropped_total == numbers[0]
        assert spool.size_bytes() <= budget


# -- threads ---------------------------------------------------------------------------------


def test_two_writers_and_an_uploader_share_a_spool(spool: Spool) -> None:
    uploaded: list[str] = []
    writing = threading.Event()
    writing.set()

    def write(prefix: str) -> None:
        for i in range(150):
            spool.add_window(window(f"{prefix}{i:04d}"))
            if i % 10 == 0:
                spool.add_event(event(i))

    def upload() -> None:
        while True:
            done = not writing.is_set()
            batch = spool.pending(max_windows=17, max_events=5)
            uploaded.extend(w.window_id for w in batch.windows)
            spool.ack(batch)
            if done and not batch.windows and not batch.events:
                return

    writers = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    uploader = threading.Thread(target=upload)
    for t in [*writers, uploader]:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    uploader.join(timeout=60)
    expected = {window(f"{p}{i:04d}").window_id for p in "ab" for i in range(150)}
    assert len(uploaded) == len(set(uploaded)) == 300
    assert set(uploaded) == expected
    for p in "ab":  # each writer's windows arrive in the order written
        mine = [u for u in uploaded if u.startswith(f"w-{p}")]
        assert mine == sorted(mine)
    assert spool.size_bytes() == 0


# -- corruption and bad files ----------------------------------------------------------------


def test_a_garbage_file_is_moved_aside_and_a_fresh_spool_counts_the_loss(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    budget = 2 * size_of(window(0))
    with Spool(path, budget_bytes=budget) as spool:
        for i in range(5):
            spool.add_window(window(i))
    path.write_bytes(b"\x00not a database at all" * 500)
    for extra in ("spool.db-wal", "spool.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    with Spool(path, budget_bytes=budget) as recovered:
        aside = recovered.recovered_from
        assert aside is not None
        assert re.fullmatch(r"spool\.db\.corrupt-\d+", aside.name)
        assert aside.read_bytes().startswith(b"\x00not a database")
        assert recovered.counters() == {"dropped_windows": 3, "dropped_events": 0, "recoveries": 1}
        [notice] = recovered.pending().events
        assert notice.kind == "telemetry_dropped"
        assert not notice.ok
        assert "could not be counted" in notice.detail
        assert aside.name in notice.detail
        recovered.add_window(window(9))
        assert recovered.pending().windows == [window(9)]


def test_a_damaged_page_is_found_and_the_lost_rows_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        for i in range(60):
            spool.add_window(window(i))
        spool.add_event(event(0))
    data = bytearray(path.read_bytes())
    last_page = len(data) - 4096
    data[last_page + 100 : last_page + 4000] = b"\xff" * 3900
    path.write_bytes(bytes(data))
    with Spool(path) as recovered:
        assert recovered.recovered_from is not None
        [notice] = recovered.pending().events
        assert "integrity check failed" in notice.detail or "malformed" in notice.detail
        lost = re.search(r"(\d+) pending windows and (\d+) pending events were lost", notice.detail)
        assert lost is not None, notice.detail  # what the damaged file still lets count
        assert (int(lost[1]), int(lost[2])) == (60, 1)
        assert recovered.counters() == {"dropped_windows": 60, "dropped_events": 1, "recoveries": 1}


def test_damage_found_while_running_is_repaired_on_the_spot(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        for i in range(60):
            spool.add_window(window(i))
        other = sqlite3.connect(path, isolation_level=None)  # another writer, as a disk fault
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(path, "r+b") as handle:
            handle.seek(path.stat().st_size - 4000)
            handle.write(b"\xff" * 3900)
        other.execute("INSERT INTO counters (name, value) VALUES ('touched', 1)")
        other.close()
        batch = spool.pending(max_windows=1000)  # trips over the damage, repairs, retries
        assert spool.recovered_from is not None
        assert batch.windows == []
        [notice] = batch.events
        assert notice.kind == "telemetry_dropped"
        assert "malformed" in notice.detail
        assert spool.counters()["recoveries"] == 1
        assert spool.dropped_total >= 1
        spool.add_window(window(100))
        assert spool.pending().windows == [window(100)]


def test_drop_counts_outlive_a_lost_database(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, budget_bytes=size_of(window(0))) as spool:
        for i in range(4):
            spool.add_window(window(i))
        assert spool.dropped_total == 3
    path.unlink()
    with Spool(path, budget_bytes=size_of(window(0))) as fresh:
        assert fresh.dropped_total == 3  # never goes back


def test_rows_that_no_longer_parse_are_dropped_and_counted(spool: Spool, tmp_path: Path) -> None:
    spool.add_window(window(0))
    conn = sqlite3.connect(tmp_path / "spool.db")
    conn.execute("INSERT INTO windows (payload, size) VALUES (?, 4)", (b'{"x"',))
    conn.commit()
    conn.close()
    spool.add_window(window(1))
    assert spool.pending().windows == [window(0), window(1)]
    assert spool.counters()["dropped_windows"] == 1


def test_a_path_that_cannot_hold_a_database_is_named(tmp_path: Path) -> None:
    (tmp_path / "spool.db").mkdir()
    with pytest.raises(ConfigurationError, match="cannot open the spool"):
        Spool(tmp_path / "spool.db")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="cannot open the spool"):
        Spool(tmp_path / "file" / "spool.db")


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    with Spool(tmp_path / "data" / "agent" / "spool.db") as spool:
        spool.add_event(event(1))
    assert (tmp_path / "data" / "agent" / "spool.db").is_file()


def test_a_closed_spool_refuses_calls(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        spool.add_window(window(0))
    with pytest.raises(StoreError, match="closed"):
        _ = spool.dropped_total
