"""Read an ``.npz`` file a user handed over (calibration or query data), never unpickling.

:func:`read_npz` looks at the file's first bytes before NumPy does, so a file that is not an
``.npz`` is named as such ("a single .npy array", "not an .npz file") instead of NumPy's
fallback to pickle, whose message suggests ``allow_pickle``: object arrays are refused with a
message that says what to save instead.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError

__all__ = ["read_npz"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive
_NPY_MAGIC = b"\x93NUMPY"


def read_npz(
    path: Path, *, what: str, keys: tuple[str, ...], shown: str | None = None
) -> dict[str, NDArray[Any]]:
    """The arrays ``keys`` of the ``.npz`` file at ``path``.

    Parameters
    ----------
    path
        The file.
    what
        What the file is for, at the start of every message ("calibration data").
    keys
        The arrays to read; each must be present.
    shown
        The file's name in messages (the name the user gave, when ``path`` is a copy);
        default ``path`` itself.

    Raises
    ------
    ConfigurationError
        The file is missing or unreadable, is not an ``.npz`` (a ``.npy``, text, a pickle),
        is a damaged archive, lacks one of ``keys``, or one of them holds Python objects.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "labels.csv").write_text("x,y")
    3
    >>> read_npz(folder / "labels.csv", what="calibration data", keys=("x", "y"))
    Traceback (most recent call last):
    edgefleet.errors.ConfigurationError: calibration data ... is not an .npz file (np.savez \
writes a zip archive; this file is not one): it needs the arrays 'x' and 'y'
    >>> np.savez(folder / "ok.npz", x=np.zeros((2, 3)), y=np.array([0, 1]))
    >>> sorted(read_npz(folder / "ok.npz", what="calibration data", keys=("x", "y")))
    ['x', 'y']
    """
    name = shown if shown is not None else str(path)
    needs = " and ".join(repr(k) for k in keys)
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {name} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"{what} {name} cannot be read: {exc.strerror or exc}") from None
    if head.startswith(_NPY_MAGIC):
        raise ConfigurationError(
            f"{what} {name} is a single .npy array (np.save); it must be an .npz "
            f"(np.savez) with the arrays {needs}"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise ConfigurationError(
            f"{what} {name} is not an .npz file (np.savez writes a zip archive; this file is "
            f"not one): it needs the arrays {needs}"
        )
    try:
        # numpy opens a path itself and leaves it open when the archive is damaged; a handle
        # of ours is closed whatever numpy raises.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise ConfigurationError(
                    f"{what} {name} has no {' or '.join(map(repr, missing))}; it needs the "
                    f"arrays {needs}, found {sorted(archive.files)}"
                )
            arrays: dict[str, NDArray[Any]] = {}
            for key in keys:
                try:
                    arrays[key] = np.asarray(archive[key])
                except ValueError:
                    raise ConfigurationError(
                        f"{what} {name}: array {key!r} holds Python objects; save numbers "
                        "(or strings) instead, e.g. np.asarray(values, dtype=np.float32)"
                    ) from None
            return arrays
    except ConfigurationError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(f"{what} {name} is a damaged .npz archive: {exc}") from None
