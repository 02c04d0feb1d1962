"""Optional extras: what each provides, and one guard that turns a missing one into a hint.

``pip install edgefleet`` is what a device needs. The control plane, training, Ray and the
privacy accountant come with extras. A command that needs one runs its work inside
:func:`extras_needed`: it checks first that the extra's modules are importable (without
importing them), and turns a failed import of one of those modules (listed in :data:`EXTRAS`
for the extras the command needs) during the command into a
:class:`~edgefleet.errors.MissingExtraError` (exit 2) that names the extra to install, instead
of a traceback. Any other ``ImportError`` is not the extra's to explain and propagates as it is
(a bug, or a broken environment the hint would hide).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from edgefleet.errors import MissingExtraError

__all__ = ["EXTRAS", "extras_needed", "missing_extra_hint", "missing_modules", "require_extras"]

EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "server": (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "multipart",
        "scipy",
        "onnx",
    ),
    "train": ("torch", "sklearn", "onnx"),
    "ray": ("ray",),
    "privacy": ("dp_accounting",),
}
"""The top-level modules each extra of pyproject.toml installs (a test keeps them in step)."""


def missing_modules(*extras: str) -> dict[str, list[str]]:
    """The modules of each of ``extras`` that cannot be imported here (none: an empty dict).

    Nothing is imported: only the import system's finders are asked.

    Examples
    --------
    >>> missing_modules()
    {}
    """
    found: dict[str, list[str]] = {}
    for extra in extras:
        absent = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
        if absent:
            found[extra] = absent
    return found


def require_extras(command: str, *extras: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extras`` is importable."""
    missing = missing_modules(*extras)
    if missing:
        modules = sorted({m for absent in missing.values() for m in absent})
        raise MissingExtraError.of(command, tuple(missing), modules)


@contextmanager
def extras_needed(command: str, *extras: str) -> Iterator[None]:
    """Run the body of ``command``, which needs ``extras``, or say which extra to install.

    :func:`require_extras` first, then :func:`missing_extra_hint` around the body.

    Raises
    ------
    MissingExtraError
        Before the body runs when a module of ``extras`` is absent, or when the body fails to
        import a third-party module.
    """
    require_extras(command, *extras)
    with missing_extra_hint(command, *extras):
        yield


@contextmanager
def missing_extra_hint(command: str, *extras: str) -> Iterator[None]:
    """Turn a failed import of a module of ``extras`` in the body into :class:`MissingExtraError`.

    Also an ``ImportError`` raised from one (``raise ImportError(hint) from exc``). Only the
    modules :data:`EXTRAS` lists for ``extras`` (and their submodules) count: the failed import
    of any other module, edgefleet's own included, and other errors pass through unchanged.

    Examples
    --------
    >>> import sys
    >>> sys.modules["dp_accounting"] = None  # what a bare install looks like to the import
    >>> try:
    ...     with missing_extra_hint("edgefleet fl simulate", "privacy"):
    ...         import dp_accounting
    ... finally:
    ...     del sys.modules["dp_accounting"]
    Traceback (most recent call last):
    edgefleet.errors.MissingExtraError: edgefleet fl simulate needs the 'privacy' extra, not \
installed here (no module dp_accounting): pip install 'edgefleet[privacy]'

    A module that no extra of the command installs is not the extra's fault:

    >>> with missing_extra_hint("edgefleet fl simulate", "train"):
    ...     import module_that_is_not_there
    Traceback (most recent call last):
    ModuleNotFoundError: No module named 'module_that_is_not_there'
    """
    provided = {module for extra in extras for module in EXTRAS[extra]}
    try:
        yield
    except ImportError as exc:
        name = _missing_module(exc)
        if name is None or name not in provided:
            raise
        raise MissingExtraError.of(command, extras, [name]) from None


def _missing_module(exc: BaseException | None) -> str | None:
    """The third-party module whose absence caused ``exc`` (following ``raise ... from``)."""
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            top = exc.name.partition(".")[0]
            return None if top == "edgefleet" else top
        exc = exc.__cause__ or exc.__context__
    return None
