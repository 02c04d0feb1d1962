"""Model artifacts on the control plane: validation on push and a content-addressed store.

:func:`inspect_model` refuses anything a device could not run (not ONNX, corrupt, truncated,
empty, too large, or refused by ONNX Runtime) before a byte is stored, and describes what it
accepted as a :class:`ModelInfo`. :class:`ArtifactStore` keeps files under
``root/sha256/<hex>``, written atomically. Golden inputs (:func:`make_golden`) and calibration
(:func:`fit_calibration`) live in their own modules and are re-exported here.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import onnx
from onnx import TensorProto

from edgefleet.errors import ModelLoadError, NotFoundError, PayloadTooLargeError
from edgefleet.runtime import load
from edgefleet.server.registry.calibrate import fit_calibration
from edgefleet.server.registry.golden import make_golden

__all__ = [
    "MEMORY_FACTOR",
    "SESSION_OVERHEAD_BYTES",
    "ArtifactStore",
    "ModelInfo",
    "fit_calibration",
    "inspect_model",
    "make_golden",
]

MEMORY_FACTOR = 2
"""Weights are counted this many times: the session's copy plus pre-packed/optimised ones."""
SESSION_OVERHEAD_BYTES = 16 * 2**20
"""What an ONNX Runtime session costs before any weight: arenas, kernels, thread pools."""
_CHUNK = 2**20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`inspect_model` found in an accepted model file.

    ``inputs`` and ``outputs`` are Open Inference Protocol tensor metadata:
    ``{"name": ..., "datatype": "FP32", "shape": [-1, 1, 8, 8]}`` with ``-1`` for dynamic
    dimensions.
    """

    sha256: str
    size_bytes: int
    opset: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    memory_estimate_bytes: int
    producer: str


def inspect_model(path: Path, *, max_bytes: int) -> ModelInfo:
    """Validate an uploaded model file and describe it.

    The size is checked before anything is read. The bytes must parse as an ONNX ``ModelProto``
    with a graph, and ONNX Runtime (CPU) must create a session from the file, exactly as a
    device would. Models with external data files are refused (only the one file is pushed).

    The memory estimate is ``MEMORY_FACTOR`` (2) times the bytes of the weights (initializers,
    sparse initializers and ``Constant`` node tensors, counted from their shapes and element
    types), plus the declared inputs and outputs at batch size 1, plus a fixed
    ``SESSION_OVERHEAD_BYTES`` (16 MiB) for the session itself. Activations of large inputs
    are not modelled; devices compare the estimate with their available memory.

    Raises
    ------
    PayloadTooLargeError
        The file is larger than ``max_bytes``.
    ModelLoadError
        The file is missing, empty, not ONNX, corrupt or truncated, or ONNX Runtime cannot
        load it; the message says which.
    """
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"model file {path.name} is {size} bytes; the limit is {max_bytes} bytes"
        )
    if size == 0:
        raise ModelLoadError(f"model file {path.name} is empty")
    data = path.read_bytes()
    proto = _parse(data, path.name)
    model = load(
        path,
        providers=["CPUExecutionProvider"],
        graph_optimization="disable",
        intra_op_threads=1,
        inter_op_threads=1,
        confidence=None,
        warmup=False,
    )
    try:
        inputs = [s.to_dict() for s in model.inputs]
        outputs = [s.to_dict() for s in model.outputs]
        opset = model.opset
    finally:
        model.close()
    weights = _weight_bytes(proto)
    io_bytes = sum(_io_bytes(t) for t in [*proto.graph.input, *proto.graph.output])
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
    return ModelInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=size,
        opset=opset,
        inputs=inputs,
        outputs=outputs,
        memory_estimate_bytes=MEMORY_FACTOR * weights + io_bytes + SESSION_OVERHEAD_BYTES,
        producer=producer,
    )


def _parse(data: bytes, name: str) -> onnx.ModelProto:
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:
        raise ModelLoadError(
            f"{name} is not an ONNX model (corrupt or truncated protobuf): {exc}"
        ) from exc
    if proto.ir_version <= 0 or not proto.graph.output:
        raise ModelLoadError(
            f"{name} is not an ONNX model: it has no IR version or no graph outputs"
        )
    for tensor in proto.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise ModelLoadError(
                f"{name} keeps weights in external data files ({tensor.name!r}); "
                "push a self-contained model"
            )
    return proto


def _tensor_bytes(tensor: TensorProto) -> int:
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except Exception:  # an exotic element type (int4, float8): its serialised size will do
        return int(tensor.ByteSize())
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def _weight_bytes(proto: onnx.ModelProto) -> int:
    graph = proto.graph
    tensors: list[TensorProto] = list(graph.initializer)
    tensors += [
        attr.t
        for node in graph.node
        if node.op_type == "Constant"
        for attr in node.attribute
        if attr.name == "value"
    ]
    sparse = sum(int(s.ByteSize()) for s in graph.sparse_initializer)
    return sum(_tensor_bytes(t) for t in tensors) + sparse


def _io_bytes(value: onnx.ValueInfoProto) -> int:
    tensor = value.type.tensor_type
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    except Exception:
        itemsize = 8
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim
    ]
    return int(np.prod(dims, dtype=np.int64)) * itemsize


class ArtifactStore:
    """Files stored under ``root/sha256/<hex digest>``, written atomically.

    Several server processes may share ``root``: a file is written to a temporary name in
    the same folder, fsynced and renamed, so a reader sees a whole file or none, and storing
    the same bytes twice is harmless. Files are created readable by the server's user only.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = ArtifactStore(Path(tmp))
    ...     sha, path = store.put_bytes(b"weights")
    ...     (sha[:12], path.read_bytes(), store.exists(sha), store.exists("0" * 64))
    ('9a129038d9a0', b'weights', True, False)
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dir = self.root / "sha256"

    def put(self, src: Path) -> tuple[str, Path]:
        """Copy the file at ``src`` into the store; return its SHA-256 and stored path."""
        with open(src, "rb") as handle:
            return self._write(iter(lambda: handle.read(_CHUNK), b""))

    def put_bytes(self, data: bytes) -> tuple[str, Path]:
        """Store ``data``; return its SHA-256 and stored path."""
        view = memoryview(data)
        return self._write(view[i : i + _CHUNK] for i in range(0, len(view), _CHUNK))

    def _write(self, chunks: Iterable[bytes | memoryview]) -> tuple[str, Path]:
        self._dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self._dir / sha
            if final.is_file():
                os.unlink(tmp)  # idempotent: the same bytes are already there
            else:
                os.replace(tmp, final)
                _fsync_dir(self._dir)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, final

    def path(self, sha256: str) -> Path:
        """The stored file for ``sha256`` (64 hex digits).

        Raises
        ------
        NotFoundError
            ``sha256`` is not a hex SHA-256 digest (so it can never name another path), or no
            such artifact is stored.
        """
        path = self._dir / _checked(sha256)
        if not path.is_file():
            raise NotFoundError(f"no artifact with SHA-256 {sha256}")
        return path

    def exists(self, sha256: str) -> bool:
        """Whether an artifact with this digest is stored (``False`` for a malformed digest)."""
        try:
            self.path(sha256)
        except NotFoundError:
            return False
        return True

    def open(self, sha256: str) -> IO[bytes]:
        """Open the artifact for reading (binary)."""
        return open(self.path(sha256), "rb")

    def read_range(self, sha256: str, start: int, stop: int | None = None) -> bytes:
        """Bytes ``[start, stop)`` of the artifact (to its end when ``stop`` is ``None``)."""
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"bad byte range [{start}, {stop})")
        with self.open(sha256) as handle:
            handle.seek(start)
            return handle.read(-1 if stop is None else stop - start)


def _checked(sha256: str) -> str:
    digest = sha256.lower() if isinstance(sha256, str) else ""
    if not _SHA256.fullmatch(digest):
        raise NotFoundError(f"no artifact {sha256!r}: not a SHA-256 hex digest (64 hex digits)")
    return digest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
