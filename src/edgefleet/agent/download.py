"""HTTP for the agent's verified updates: a TUF fetcher over httpx and resumable target downloads.

Target files are written to ``downloads/<sha256>.part``; an interrupted download continues with
``Range: bytes=<n>-`` on the next attempt. Only a file whose length and hashes match the TUF
targets metadata is fsynced and renamed into its final place, so a partial or unverified file
never appears there. The downloads and models directories must be on the same filesystem.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from tuf.api.exceptions import (
    DownloadError,
    DownloadHTTPError,
    LengthOrHashMismatchError,
    SlowRetrievalError,
)
from tuf.api.metadata import TargetFile
from tuf.ngclient.fetcher import FetcherInterface

from edgefleet.agent._files import fsync_dir
from edgefleet.agent.budget import DownloadBudget
from edgefleet.errors import UplinkError, VerificationError

__all__ = ["EventCallback", "HttpxFetcher", "fetch_target"]

EventCallback = Callable[[str, str], None]
"""``on_event(kind, detail)``: ``download_started``, ``download_finished`` or ``verified``."""

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class HttpxFetcher(FetcherInterface):
    """TUF's network seam over an :class:`httpx.Client` (auth header and TLS come with it).

    Parameters
    ----------
    client
        The client; it is not closed here.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self.last_url: str | None = None
        """The URL fetched most recently: names the file when verification then fails."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        try:
            response = self._client.send(self._client.build_request("GET", url), stream=True)
        except httpx.TimeoutException as exc:
            raise SlowRetrievalError(f"timed out fetching {url}") from exc
        if response.status_code >= 400:
            response.close()
            raise DownloadHTTPError(
                f"GET {url} answered HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response)

    @staticmethod
    def _chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.TimeoutException as exc:
            raise SlowRetrievalError(f"timed out reading {url}") from exc
        except httpx.HTTPError as exc:
            raise DownloadError(f"reading {url} failed: {exc}") from exc
        finally:
            response.close()


def _matches(path: Path, info: TargetFile) -> bool:
    try:
        with open(path, "rb") as f:
            info.verify_length_and_hashes(f)
    except (OSError, LengthOrHashMismatchError):
        return False
    return True


def _receive(
    client: httpx.Client,
    url: str,
    part: Path,
    info: TargetFile,
    offset: int,
    budget: DownloadBudget | None = None,
) -> int | None:
    """GET ``url`` into ``part`` from ``offset``; the bytes now in ``part``, None if 416.

    With a ``budget``, at most its remaining bytes are asked for (``Range`` with an end) and
    written, and what was written is counted in it.
    """
    allowed = budget.remaining() if budget is not None else None
    if allowed == 0:
        return offset
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    if allowed is not None and offset + allowed < info.length:
        headers = {"Range": f"bytes={offset}-{offset + allowed - 1}"}
    ranged = bool(headers)
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:
            part.unlink(missing_ok=True)  # our prefix matches nothing the server has
            return None
        if response.status_code == 206 and ranged:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if match is None or int(match.group(1)) != offset:
                raise UplinkError(
                    f"GET {url}: asked for bytes from {offset}, got range "
                    f"{response.headers.get('content-range')!r}"
                )
            mode = "ab"
        elif response.status_code == 200:
            mode, offset = "wb", 0  # the server ignored the range: start again
        else:
            raise UplinkError(f"GET {url} answered HTTP {response.status_code}")
        stop_at = info.length if allowed is None else min(info.length, offset + allowed)
        written = 0
        with open(part, mode) as f:
            try:
                for chunk in response.iter_bytes():
                    if offset + len(chunk) > stop_at:
                        keep = chunk[: stop_at - offset]
                        f.write(keep)
                        written += len(keep)
                        over = stop_at == info.length  # the server sent more than declared
                        offset = info.length + 1 if over else stop_at
                        break
                    f.write(chunk)
                    written += len(chunk)
                    offset += len(chunk)
            finally:
                f.flush()
                os.fsync(f.fileno())
                if budget is not None:
                    budget.spend(written)
    if offset > info.length:
        part.unlink(missing_ok=True)
        raise VerificationError(
            f"target {info.path}: the server sent more than the {info.length} bytes "
            "TUF declares; download discarded"
        )
    return offset


def fetch_target(
    client: httpx.Client,
    url: str,
    info: TargetFile,
    downloads_dir: Path,
    dest: Path,
    on_event: EventCallback | None = None,
    budget: DownloadBudget | None = None,
) -> Path:
    """Make ``dest`` a verified copy of the target ``info`` describes; return ``dest``.

    Reuses ``dest`` when it already verifies; otherwise downloads (resuming a partial file in
    ``downloads_dir``), verifies length and hashes, fsyncs and renames into ``dest``. With a
    ``budget``, the download never goes past what is left of today's budget.

    Raises
    ------
    VerificationError
        The bytes do not match the TUF targets metadata (the partial file is discarded).
    BudgetSpentError
        Today's download budget is spent (the partial file is kept for the next day).
    UplinkError
        The server could not be reached or answered with an error; a partial file is kept and
        the next call resumes it.
    """

    def emit(kind: str, detail: str) -> None:
        if on_event is not None:
            on_event(kind, detail)

    sha256 = info.hashes["sha256"]
    if dest.exists() and _matches(dest, info):
        emit("verified", f"{info.path}: sha256 {sha256[:12]} already on disk")
        return dest
    downloads_dir.mkdir(parents=True, exist_ok=True)
    part = downloads_dir / f"{sha256}.part"
    offset = part.stat().st_size if part.exists() else 0
    if offset > info.length:
        part.unlink()
        offset = 0
    if offset < info.length:
        if budget is not None and budget.remaining() == 0:
            raise budget.spent_error(f"downloading {info.path} (at byte {offset})")
        start = f" from byte {offset}" if offset else ""
        emit("download_started", f"{info.path}: {info.length} bytes{start}")
        try:
            got = _receive(client, url, part, info, offset, budget)
            if got is None:
                emit("download_started", f"{info.path}: server refused the range; from byte 0")
                got = _receive(client, url, part, info, 0, budget)
            offset = got or 0
        except httpx.HTTPError as exc:
            raise UplinkError(
                f"downloading {info.path} failed ({type(exc).__name__}: {exc}); "
                "the partial file is kept and resumed next time"
            ) from exc
        if offset < info.length and budget is not None and budget.remaining() == 0:
            raise budget.spent_error(f"downloading {info.path} (at byte {offset})")
        if offset < info.length:
            raise UplinkError(
                f"downloading {info.path} stopped after {offset} of {info.length} bytes; "
                "it resumes next time"
            )
        emit("download_finished", f"{info.path}: {info.length} bytes")
    _install(part, dest, info)
    emit("verified", f"{info.path}: length and sha256 {sha256[:12]} match TUF targets")
    return dest


def _install(part: Path, dest: Path, info: TargetFile) -> None:
    if not _matches(part, info):
        part.unlink(missing_ok=True)
        raise VerificationError(
            f"target {info.path}: downloaded bytes do not match the length and hashes in TUF "
            "targets metadata; download discarded"
        )
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    with contextlib.suppress(OSError):
        fsync_dir(dest.parent)
