"""A content-keyed on-disk cache for models built from code."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "edgefleet" / "models"


def cached_model(
    kind: str,
    params: dict[str, Any],
    build: Callable[[], onnx.ModelProto],
    cache_dir: Path | None,
) -> Path:
    """Return the path of a built model, building and caching it on first use.

    The file name holds a hash of ``kind`` and ``params``, so a change of builder parameters (or
    of the builder's own ``version`` entry in ``params``) builds a new file. Files are written to
    a temporary name and renamed, so a reader never sees a partial model.
    """
    directory = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    key = json.dumps({"kind": kind, **params}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = directory / f"{kind}-{digest}.onnx"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    model = build()
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{kind}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
