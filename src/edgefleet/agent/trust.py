"""What the agent trusts: the pinned TUF root, the director keys, and the releases it accepted.

Layout of the trust directory::

    root.json                  TUF root pinned at enrolment (the Updater's bootstrap)
    desired_state_keys.json    {keyid: Ed25519 public key hex} that sign desired states
    state.json                 highest accepted desired-state version and release per model
    tuf/                       TUF metadata cache (python-tuf's Updater owns it)

One :class:`AgentTrust` per trust directory and process: python-tuf supports one updater per
metadata directory at a time, and the methods here serialise on one lock.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.ngclient.updater import Updater

from edgefleet.agent._files import write_atomic
from edgefleet.agent.budget import DownloadBudget
from edgefleet.agent.download import EventCallback, HttpxFetcher, fetch_target
from edgefleet.errors import (
    ConfigurationError,
    DowngradeError,
    ExpiredError,
    UplinkError,
    VerificationError,
)
from edgefleet.protocol.signing import keyid_of, verify_desired_state
from edgefleet.protocol.v1 import DesiredModel, DesiredState, SignedDesiredState

__all__ = ["AgentTrust", "VerifiedModel"]

_ROOT, _KEYS, _STATE, _CACHE = "root.json", "desired_state_keys.json", "state.json", "tuf"


@dataclass(frozen=True)
class VerifiedModel:
    """A model file that TUF metadata vouches for, ready for compatibility and smoke tests.

    Attributes
    ----------
    path
        ``models/<sha256>.onnx``.
    target
        Its TUF target path.
    sha256, release, custom
        From the signed targets metadata.
    golden_path
        ``models/<sha256>.npz`` with the golden inputs, when the target names one.
    """

    path: Path
    target: str
    sha256: str
    release: int
    custom: dict[str, Any]
    golden_path: Path | None


@contextmanager
def _mapped(what: str, fetcher: HttpxFetcher) -> Iterator[None]:
    """Turn python-tuf and httpx failures into edgefleet errors naming ``what`` and the file."""

    def why(exc: Exception) -> str:
        last = fetcher.last_url
        return f"{exc}; last file fetched: {last.rpartition('/tuf/')[2]}" if last else str(exc)

    try:
        yield
    except tuf_errors.ExpiredMetadataError as exc:
        raise ExpiredError(f"{what}: TUF metadata expired ({exc}): stale server or freeze") from exc
    except tuf_errors.BadVersionNumberError as exc:
        raise VerificationError(f"{what}: TUF metadata rollback refused ({why(exc)})") from exc
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise VerificationError(f"{what}: TUF length or hash mismatch ({why(exc)})") from exc
    except tuf_errors.UnsignedMetadataError as exc:
        raise VerificationError(f"{what}: TUF metadata not validly signed ({why(exc)})") from exc
    except tuf_errors.RepositoryError as exc:
        raise VerificationError(f"{what}: TUF metadata refused ({why(exc)})") from exc
    except tuf_errors.DownloadLengthMismatchError as exc:
        raise VerificationError(f"{what}: TUF metadata longer than allowed ({why(exc)})") from exc
    except tuf_errors.DownloadHTTPError as exc:
        raise UplinkError(f"{what}: server answered HTTP {exc.status_code} ({why(exc)})") from exc
    except tuf_errors.DownloadError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise UplinkError(f"{what}: {exc}{cause}") from exc
    except httpx.HTTPError as exc:
        raise UplinkError(f"{what}: {type(exc).__name__}: {exc}") from exc


class AgentTrust:
    """Verifies desired states and fetches the models they name, through TUF.

    Parameters
    ----------
    trust_dir
        The trust directory, set up by :meth:`bootstrap` at enrolment.
    models_dir
        Where verified files go (``<sha256>.onnx``, ``<sha256>.npz``).
    downloads_dir
        Partial downloads (``<sha256>.part``); same filesystem as ``models_dir``.
    base_url
        The device API, e.g. ``https://host:8443/api/device/v1``.
    client
        Carries the device's credential and TLS settings; used for all HTTP.
    budget
        Counts and caps the model bytes downloaded per UTC day (TUF metadata is not counted).

    Raises
    ------
    ConfigurationError
        The trust directory holds no pinned root (the device is not enrolled).
    """

    def __init__(
        self,
        trust_dir: Path,
        models_dir: Path,
        downloads_dir: Path,
        base_url: str,
        client: httpx.Client,
        budget: DownloadBudget | None = None,
    ) -> None:
        self._dir = Path(trust_dir)
        self._budget = budget
        self._models = Path(models_dir)
        self._downloads = Path(downloads_dir)
        self._base = base_url.rstrip("/")
        self._client = client
        self._lock = threading.RLock()
        if not (self._dir / _ROOT).is_file() or not (self._dir / _KEYS).is_file():
            raise ConfigurationError(f"{self._dir} holds no pinned TUF root; enrol first")
        for directory in (self._models, self._downloads, self._dir / _CACHE):
            directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def bootstrap(
        trust_dir: Path, tuf_root: dict[str, Any], desired_state_keys: dict[str, str]
    ) -> None:
        """Pin the trust anchors received at enrolment; forget any earlier trust state.

        Raises
        ------
        VerificationError
            ``tuf_root`` is not a self-signed TUF root, or a key id does not match its key.
        """
        try:
            root_md: Metadata[Root] = Metadata.from_dict(json.loads(json.dumps(tuf_root)))
            if not isinstance(root_md.signed, Root):
                raise ValueError("not root metadata")
            root_md.verify_delegate(Root.type, root_md)
        except Exception as exc:
            raise VerificationError(f"enrolment TUF root refused: {exc}") from exc
        for keyid, public_hex in desired_state_keys.items():
            try:
                ok = len(bytes.fromhex(public_hex)) == 32 and keyid_of(public_hex) == keyid
            except ValueError:
                ok = False
            if not ok:
                raise VerificationError(f"desired-state key {keyid[:12]} does not match its id")
        trust_dir = Path(trust_dir)
        trust_dir.mkdir(parents=True, exist_ok=True)
        cache = trust_dir / _CACHE
        if cache.exists():
            shutil.rmtree(cache)
        write_atomic(trust_dir / _ROOT, json.dumps(tuf_root).encode())
        write_atomic(trust_dir / _KEYS, json.dumps(desired_state_keys, sort_keys=True).encode())
        write_atomic(trust_dir / _STATE, b'{"desired_state_version": 0, "releases": {}}')

    # -- persisted state -------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self._dir / _STATE).read_bytes())
        except FileNotFoundError:
            return {"desired_state_version": 0, "releases": {}}
        except ValueError as exc:
            raise ConfigurationError(f"{self._dir / _STATE} is corrupt: {exc}") from exc
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        write_atomic(self._dir / _STATE, json.dumps(state, sort_keys=True).encode())

    def desired_state_version(self) -> int:
        """The highest desired-state version accepted so far (0 before the first)."""
        with self._lock:
            return int(self._state().get("desired_state_version", 0))

    def highest_release(self, name: str) -> int:
        """The highest release of model ``name`` accepted so far (0 when none)."""
        with self._lock:
            return int(self._state().get("releases", {}).get(name, 0))

    def accept_release(self, name: str, release: int) -> None:
        """Record that ``release`` of ``name`` was activated; lower releases are refused after."""
        with self._lock:
            state = self._state()
            releases = state.setdefault("releases", {})
            if release > int(releases.get(name, 0)):
                releases[name] = release
                self._save_state(state)

    # -- verification ----------------------------------------------------------------------

    def verify_desired_state(
        self, signed: SignedDesiredState, device_id: str, now: float | None = None
    ) -> DesiredState:
        """Check a desired state's signature, device, expiry and version; remember the version.

        Raises
        ------
        VerificationError
            Unsigned, badly signed, another device's, or older than one accepted before.
        ExpiredError
            The state has expired.
        """
        with self._lock:
            keys: dict[str, str] = json.loads((self._dir / _KEYS).read_bytes())
            state = self._state()
            last = int(state.get("desired_state_version", 0))
            desired = verify_desired_state(
                signed,
                keys,
                device_id=device_id,
                last_version=last,
                now=time.time() if now is None else now,
            )
            if desired.version > last:
                state["desired_state_version"] = desired.version
                self._save_state(state)
            return desired

    def fetch_model(
        self, desired: DesiredModel, on_event: EventCallback | None = None
    ) -> VerifiedModel:
        """Refresh TUF metadata, check ``desired`` against it, and download what it names.

        Raises
        ------
        VerificationError
            The target is absent or differs from the desired state, or its bytes fail checks.
        DowngradeError
            Its release is lower than one this device accepted for the model.
        ExpiredError
            TUF metadata has expired.
        BudgetSpentError
            Today's download budget is spent (the partial download resumes the next day).
        UplinkError
            The server could not be reached (a partial download resumes next time).
        """
        fetcher = HttpxFetcher(self._client)
        with self._lock, _mapped(f"model {desired.name} release {desired.release}", fetcher):
            updater = Updater(
                str(self._dir / _CACHE),
                f"{self._base}/tuf/metadata/",
                target_base_url=f"{self._base}/tuf/targets/",
                fetcher=fetcher,
                bootstrap=(self._dir / _ROOT).read_bytes(),
            )
            updater.refresh()
            info = self._checked_target(updater, desired)
            custom: dict[str, Any] = dict(info.custom or {})
            path = self._fetch(info, "onnx", on_event)
            golden = custom.get("golden")
            golden_path = None
            if golden:
                golden_info = updater.get_targetinfo(str(golden))
                if golden_info is None:
                    raise VerificationError(
                        f"golden target {golden} named by {info.path} is not in TUF targets"
                    )
                golden_path = self._fetch(golden_info, "npz", on_event)
            return VerifiedModel(
                path, info.path, desired.sha256, desired.release, custom, golden_path
            )

    def _checked_target(self, updater: Updater, desired: DesiredModel) -> TargetFile:
        info = updater.get_targetinfo(desired.target)
        if info is None:
            raise VerificationError(f"target {desired.target} is not in the signed TUF targets")
        tuf_sha = info.hashes.get("sha256")
        if tuf_sha != desired.sha256 or info.length != desired.length:
            raise VerificationError(
                f"desired state and TUF targets disagree about {desired.target}: "
                f"sha256 {desired.sha256[:12]}/{desired.length} bytes vs "
                f"{str(tuf_sha)[:12]}/{info.length} bytes (mix-and-match)"
            )
        custom = info.custom if isinstance(info.custom, dict) else {}
        release = custom.get("release")
        if release != desired.release:
            raise VerificationError(
                f"{desired.target}: signed release {release} differs from the desired state's "
                f"release {desired.release}"
            )
        model = custom.get("model")
        if model is not None and model != desired.name:
            raise VerificationError(
                f"{desired.target} is signed for model {model!r}, not {desired.name!r}"
            )
        highest = self.highest_release(desired.name)
        if desired.release < highest:
            raise DowngradeError(
                f"{desired.name} release {desired.release} is older than release {highest} "
                "accepted before (forced downgrade refused)"
            )
        return info

    def _fetch(self, info: TargetFile, suffix: str, on_event: EventCallback | None) -> Path:
        sha256 = info.hashes["sha256"]
        directory, sep, basename = info.path.rpartition("/")
        url = f"{self._base}/tuf/targets/{quote(f'{directory}{sep}{sha256}.{basename}')}"
        dest = self._models / f"{sha256}.{suffix}"
        return fetch_target(self._client, url, info, self._downloads, dest, on_event, self._budget)
