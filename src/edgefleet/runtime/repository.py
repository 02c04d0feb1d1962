"""Named models that can be replaced while requests are in flight (hot swap)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from edgefleet.errors import ModelNotFoundError, ModelUnavailableError
from edgefleet.runtime.model import load
from edgefleet.runtime.servable import Servable

__all__ = ["ModelRepository", "Tap"]

log = logging.getLogger(__name__)

_RETRIES = 5

Tap = Callable[[Servable, Mapping[str, NDArray[Any]], dict[str, NDArray[Any]]], None]
"""``tap(servable, feeds, outputs)``: sees each call a servable answered, on the caller's thread."""


class ModelRepository:
    """Holds servables by name and swaps them atomically between two inferences.

    A swap never makes a request wait for a load: the new model is loaded first (by the caller
    or by :meth:`load`), then one reference assignment puts it behind the name, then the old one
    is drained (calls already running on it finish) and closed. A call that picked up the old
    model just as it closed is retried on the new one, so no request fails because of a swap.

    Examples
    --------
    >>> repo = ModelRepository()
    >>> repo.names()
    []
    >>> repo.get("digits")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ModelNotFoundError: no model named 'digits' (serving: none)
    """

    def __init__(self) -> None:
        self._models: dict[str, Servable] = {}
        self._taps: dict[str, Tap] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Names being served, sorted."""
        return sorted(self._models)

    def get(self, name: str, version: str | None = None) -> Servable:
        """The servable behind ``name`` (and ``version``, when given)."""
        servable = self._models.get(name)
        if servable is None:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFoundError(f"no model named {name!r} (serving: {known})")
        if version is not None and version != servable.version:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version!r} (serving version {servable.version})"
            )
        return servable

    def add(self, servable: Servable) -> None:
        """Serve ``servable`` under its name; the name must be free."""
        with self._lock:
            if servable.name in self._models:
                raise ValueError(f"a model named {servable.name!r} is already served")
            self._models[servable.name] = servable

    def swap(self, new: Servable, *, drain_timeout: float = 30.0) -> Servable | None:
        """Put ``new`` behind its name; drain and close the previous one, which is returned."""
        with self._lock:
            old = self._models.get(new.name)
            self._models[new.name] = new
        if old is not None and old is not new:
            old.close(drain_timeout)
        return old

    def load(self, path: str | Path, **options: Any) -> Servable:
        """Load a model file and serve it, replacing any model of the same name."""
        model = load(path, **options)
        self.swap(model)
        return model

    def remove(self, name: str, *, drain_timeout: float = 30.0) -> None:
        """Stop serving ``name``; running calls finish first."""
        with self._lock:
            old = self._models.pop(name, None)
        if old is None:
            raise ModelNotFoundError(f"no model named {name!r}")
        old.close(drain_timeout)

    def set_tap(self, name: str, tap: Tap | None) -> None:
        """Let ``tap`` see every successful :meth:`predict` on ``name`` (``None`` removes it).

        The tap runs on the request's thread after the answer was computed, so it must only
        hand work off (e.g. to a bounded queue); whatever it raises is logged and ignored, and
        the caller gets its answer unchanged. The tap stays across swaps of the name.
        """
        with self._lock:
            if tap is None:
                self._taps.pop(name, None)
            else:
                self._taps[name] = tap

    def predict(
        self, name: str, feeds: Mapping[str, NDArray[Any]], version: str | None = None
    ) -> dict[str, NDArray[Any]]:
        """Run the model now behind ``name``; a call that races a swap is retried."""
        return self.answer(name, feeds, version)[1]

    def answer(
        self, name: str, feeds: Mapping[str, NDArray[Any]], version: str | None = None
    ) -> tuple[Servable, dict[str, NDArray[Any]]]:
        """:meth:`predict`, and the servable that answered.

        A swap may have happened since the caller last looked the model up: label the answer
        with this servable's version.
        """
        for _ in range(_RETRIES):
            servable = self.get(name, version)
            try:
                outputs = servable.predict(feeds)
            except ModelUnavailableError:
                if self._models.get(name) is servable:
                    raise  # closed without a replacement: a real outage, not a swap
                continue
            tap = self._taps.get(name)
            if tap is not None:
                try:
                    tap(servable, feeds, outputs)
                except Exception:  # an observer never changes an answer
                    log.exception("tap on %r failed", name)
            return servable, outputs
        raise ModelUnavailableError(f"model {name!r} kept changing during the call; try again")

    def close(self, *, drain_timeout: float = 30.0) -> None:
        """Close every servable."""
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for servable in models:
            servable.close(drain_timeout)
