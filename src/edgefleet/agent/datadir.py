"""One agent per data dir: an exclusive kernel lock on ``<data dir>/agent.lock``.

Two agents on one data dir would each believe the other's files are theirs: the second one
takes the first one's run marker for a crash, restores the previous model into ``state.json``
and reports a rollback that never happened. So the agent locks its data dir before it reads or
writes anything in it, and a second agent stops at once with :class:`DataDirInUseError`, which
names the process holding the lock.

The lock is :func:`fcntl.flock` on an open file: the kernel drops it when the holder's process
ends in any way (``kill -9`` included), so a dead agent never blocks the next start, and a
stale lock file is harmless (its content is only a hint for the error message: the PID of the
holder). The data dir is checked first (a regular file, or a path that cannot be created or
read, is a :class:`~edgefleet.errors.ConfigurationError` naming it). A start that fails after
taking the lock (the serve port is taken) leaves the data dir as it found it: a data dir it
created is removed again; in one that existed, what it added is removed (what was there stays)
and its permissions are restored. Only the lock file may remain.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp()) / "agent"
>>> lock = DataDirLock.acquire(folder)
>>> (folder / "agent.lock").read_text().strip() == str(os.getpid())
True
>>> DataDirLock.acquire(folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
edgefleet.errors.DataDirInUseError: data dir ... is in use by another agent (pid ...); ...
>>> lock.release()
>>> DataDirLock.acquire(folder).release()
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from pathlib import Path

from edgefleet.errors import ConfigurationError, DataDirInUseError

__all__ = ["LOCK_NAME", "DataDirInUseError", "DataDirLock"]

LOCK_NAME = "agent.lock"


def _in_use(data_dir: Path, holder: int | None) -> DataDirInUseError:
    who = f"pid {holder}" if holder is not None else "pid unknown"
    return DataDirInUseError(
        f"data dir {str(data_dir)!r} is in use by another agent ({who}); stop it first, "
        "or give this agent its own --data-dir",
        holder=holder,
    )


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and each ancestor that does not exist yet, innermost first."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def _checked(data_dir: Path) -> list[Path]:
    """Check ``data_dir`` and create it if missing; return the directories created."""
    shown = str(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigurationError(f"data dir {shown!r} exists and is not a directory")
    created = _missing_parents(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove(created)
        raise ConfigurationError(
            f"cannot create data dir {shown!r}: {exc.strerror or exc}"
        ) from exc
    try:
        os.listdir(data_dir)
    except OSError as exc:
        _remove(created)
        raise ConfigurationError(f"cannot read data dir {shown!r}: {exc.strerror or exc}") from exc
    return created


def _remove(created: list[Path]) -> None:
    for folder in created:  # innermost first; a folder someone filled meanwhile stays
        with contextlib.suppress(OSError):
            folder.rmdir()


def _holder(handle: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(handle, 32, 0).decode("ascii").strip())
    return None


class DataDirLock:
    """The held lock of one data dir; :meth:`acquire` to take it, :meth:`release` to drop it.

    Attributes
    ----------
    data_dir
        The locked directory.
    created
        Directories this start created (innermost first), removed by :meth:`release` when asked
        to undo a failed start.
    found
        When the data dir existed: the names in it and its permission bits before this start,
        which :meth:`release` restores when asked to undo a failed start.
    """

    def __init__(
        self,
        data_dir: Path,
        handle: int,
        created: list[Path],
        found: tuple[frozenset[str], int] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.created = created
        self.found = found
        self._handle: int | None = handle

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Check ``data_dir`` (created if missing) and lock it, without waiting.

        Raises
        ------
        DataDirInUseError
            Another process holds the lock.
        ConfigurationError
            ``data_dir`` is not a directory, or cannot be created, read or locked.
        """
        created = _checked(data_dir)
        found = None
        if not created:  # what a failed start must leave as it was
            with contextlib.suppress(OSError):
                found = (frozenset(os.listdir(data_dir)), stat.S_IMODE(data_dir.stat().st_mode))
        path = data_dir / LOCK_NAME
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            _remove(created)
            raise ConfigurationError(
                f"cannot open the lock file {str(path)!r}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(handle)
            os.close(handle)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _in_use(data_dir, holder) from None
            if created:
                path.unlink(missing_ok=True)
            _remove(created)
            raise ConfigurationError(
                f"cannot lock data dir {str(data_dir)!r}: {exc.strerror or exc}"
            ) from exc
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(data_dir, handle, created, found)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._handle is not None

    def release(self, *, undo_created: bool = False) -> None:
        """Drop the lock (idempotent).

        With ``undo_created`` (a failed start), the data dir is left as this start found it: if
        this start created it, it is removed with what was written there; if it existed, every
        entry this start added to it is removed (what was there before stays) and its
        permissions are restored. The lock file stays: removing a file others may be waiting
        to lock could let two agents hold locks on two different files. This happens while the
        lock is still held, so no other agent is starting on the data dir meanwhile.
        """
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if undo_created and self.created:
            shutil.rmtree(self.created[0], ignore_errors=True)
            _remove(self.created[1:])
        elif undo_created and self.found is not None:
            self._restore(*self.found)
        os.close(handle)  # the kernel drops the lock with the last descriptor

    def _restore(self, names: frozenset[str], mode: int) -> None:
        """Remove what a failed start added to the existing data dir; restore its mode."""
        with contextlib.suppress(OSError):
            for name in set(os.listdir(self.data_dir)) - names - {LOCK_NAME}:
                entry = self.data_dir / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
            self.data_dir.chmod(mode)
