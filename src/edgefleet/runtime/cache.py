"""A cache of loaded models with a memory budget, unloading the least recently used."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from edgefleet.errors import ConfigurationError
from edgefleet.runtime.model import Model, load

__all__ = ["ModelCache"]


class ModelCache:
    """Loads models on demand and keeps them while their estimated memory fits ``budget_bytes``.

    When a load would exceed the budget, the least recently used models are closed (running
    calls on them finish first). The model just loaded is always kept, even alone over budget.
    Ask the cache for a model on every use rather than keeping references: an evicted model
    refuses new calls.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ConfigurationError(f"model cache budget must be positive, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[tuple[Any, ...], Model] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def used_bytes(self) -> int:
        """Estimated memory of the models held."""
        return sum(m.memory_estimate_bytes for m in self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, path: str | Path, **options: Any) -> Model:
        """The model at ``path`` loaded with ``options``, from the cache or freshly loaded."""
        resolved = Path(path).resolve()
        try:
            stamp = resolved.stat().st_mtime_ns
        except OSError:
            stamp = None  # load() reports the missing file
        key = (str(resolved), stamp, tuple(sorted((k, repr(v)) for k, v in options.items())))
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                self.hits += 1
                return model
        model = load(resolved, **options)
        evicted = []
        with self._lock:
            self.misses += 1
            self._models[key] = model
            while len(self._models) > 1 and self.used_bytes > self.budget_bytes:
                _, old = self._models.popitem(last=False)
                evicted.append(old)
                self.evictions += 1
        for old in evicted:
            old.close()
        return model

    def clear(self) -> None:
        """Close and forget every model."""
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for model in models:
            model.close()
