"""Pushed models are validated before storage; artifacts are stored by content, atomically."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefleet.errors import ModelLoadError, NotFoundError, PayloadTooLargeError
from edgefleet.server.registry.artifacts import (
    MEMORY_FACTOR,
    SESSION_OVERHEAD_BYTES,
    ArtifactStore,
    inspect_model,
)

MB = 2**20


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def save(tmp_path: Path, name: str, model: onnx.ModelProto) -> Path:
    return write(tmp_path, name, model.SerializeToString())


def tiny(op: str = "Identity", opset: int = 17, domain: str = "") -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], domain=domain)],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="unit-test"
    )
    model.ir_version = 8
    return model


# -- inspect_model: what an accepted model looks like ---------------------------------------


def test_describes_the_digits_classifier(digits_path: Path) -> None:
    info = inspect_model(digits_path, max_bytes=10 * MB)
    assert info.sha256 == hashlib.sha256(digits_path.read_bytes()).hexdigest()
    assert info.size_bytes == digits_path.stat().st_size
    assert info.opset == 17
    assert info.inputs == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert info.outputs == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert info.producer == "edgefleet"


def test_memory_estimate_counts_weights_twice_plus_io_and_session_overhead(
    tmp_path: Path,
) -> None:
    weights = numpy_helper.from_array(np.ones((256, 1024), dtype=np.float32), "w")  # 1 MiB
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1024])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = inspect_model(save(tmp_path, "matmul.onnx", model), max_bytes=10 * MB)
    io_bytes = (256 + 1024) * 4  # inputs and outputs at batch size 1
    assert info.memory_estimate_bytes == MEMORY_FACTOR * MB + io_bytes + SESSION_OVERHEAD_BYTES


def test_constant_nodes_count_as_weights(tmp_path: Path) -> None:
    value = numpy_helper.from_array(np.ones((4,), dtype=np.float32), "c")
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=value),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        "const",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = inspect_model(save(tmp_path, "const.onnx", model), max_bytes=MB)
    assert info.memory_estimate_bytes == MEMORY_FACTOR * 16 + 32 + SESSION_OVERHEAD_BYTES


def test_dynamic_dimensions_are_minus_one_and_every_datatype_is_named(echo_path: Path) -> None:
    info = inspect_model(echo_path, max_bytes=MB)
    by_name = {t["name"]: t for t in info.inputs}
    assert by_name["x_FP16"] == {"name": "x_FP16", "datatype": "FP16", "shape": [-1]}
    assert by_name["x_BYTES"]["datatype"] == "BYTES"
    assert by_name["fixed"]["shape"] == [2, 3]
    assert len(info.outputs) == len(info.inputs)


# -- inspect_model: what is refused ---------------------------------------------------------


def test_an_oversized_file_is_refused_before_it_is_read(
    digits_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(self: Path) -> bytes:
        raise AssertionError("an oversized file must not be read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    size = digits_path.stat().st_size
    with pytest.raises(PayloadTooLargeError, match=f"{size} bytes; the limit is {size - 1}"):
        inspect_model(digits_path, max_bytes=size - 1)


def test_a_file_exactly_at_the_limit_is_accepted(digits_path: Path) -> None:
    assert inspect_model(digits_path, max_bytes=digits_path.stat().st_size).opset == 17


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not an ONNX model"),
        (b"name,value\nlatency,12\n" * 20, "not an ONNX model"),
        (b"\x08\x07", "no IR version or no graph outputs"),  # a valid protobuf, not a model
    ],
    ids=["empty", "png", "text", "protobuf-without-graph"],
)
def test_files_that_are_not_models_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        inspect_model(write(tmp_path, "upload.onnx", content), max_bytes=MB)


def test_a_truncated_model_is_refused(tmp_path: Path, digits_path: Path) -> None:
    data = digits_path.read_bytes()
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        inspect_model(write(tmp_path, "half.onnx", data[: len(data) // 2]), max_bytes=MB)


def test_a_corrupted_model_is_refused(tmp_path: Path, digits_path: Path) -> None:
    data = bytearray(digits_path.read_bytes())
    data[100:160] = b"\xff" * 60
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        inspect_model(write(tmp_path, "flipped.onnx", bytes(data)), max_bytes=MB)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        inspect_model(tmp_path / "nope.onnx", max_bytes=MB)


@pytest.mark.parametrize(
    "model",
    [tiny(op="NoSuchOperator"), tiny(opset=99), tiny(op="Foo", domain="com.example")],
    ids=["unknown-operator", "future-opset", "custom-domain-without-kernels"],
)
def test_a_model_onnx_runtime_cannot_load_is_refused(
    tmp_path: Path, model: onnx.ModelProto
) -> None:
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        inspect_model(save(tmp_path, "bad.onnx", model), max_bytes=MB)


def test_weights_in_external_files_are_refused(tmp_path: Path) -> None:
    model = tiny()
    weights = numpy_helper.from_array(np.ones((4,), dtype=np.float32), "w")
    model.graph.initializer.append(weights)
    onnx.save_model(
        model,
        str(tmp_path / "external.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    with pytest.raises(ModelLoadError, match="external data"):
        inspect_model(tmp_path / "external.onnx", max_bytes=MB)


# -- ArtifactStore ---------------------------------------------------------------------------


def test_put_stores_by_sha256_and_is_idempotent(tmp_path: Path, digits_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    sha, path = store.put(digits_path)
    assert sha == hashlib.sha256(digits_path.read_bytes()).hexdigest()
    assert path == tmp_path / "artifacts" / "sha256" / sha
    assert path.read_bytes() == digits_path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert store.put(digits_path) == (sha, path)
    assert path.stat().st_mtime_ns == mtime  # the stored file was not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [sha]  # no temporary files left


def test_put_bytes_matches_put(tmp_path: Path, digits_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.put_bytes(digits_path.read_bytes()) == store.put(digits_path)
    sha, path = store.put_bytes(b"")
    assert sha == hashlib.sha256(b"").hexdigest()
    assert path.read_bytes() == b""


def test_a_large_file_is_hashed_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * MB + 17)
    src = write(tmp_path, "big.bin", data)
    store = ArtifactStore(tmp_path / "store")
    sha, path = store.put(src)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data) == (sha, path)
    assert store.read_range(sha, MB - 3, MB + 5) == data[MB - 3 : MB + 5]
    assert store.read_range(sha, len(data) - 2) == data[-2:]


def test_stored_files_are_private_to_the_server_user(tmp_path: Path) -> None:
    _, path = ArtifactStore(tmp_path).put_bytes(b"model")
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_path_and_exists(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha, path = store.put_bytes(b"abc")
    assert store.path(sha) == path
    assert store.path(sha.upper()) == path
    assert store.exists(sha)
    absent = "0" * 64
    assert not store.exists(absent)
    with pytest.raises(NotFoundError, match=absent):
        store.path(absent)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "../" * 21 + "x",  # 64 characters, still not hex
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "a" * 64 + "\n",
        "",
        "/" + "a" * 63,
    ],
)
def test_anything_but_a_hex_digest_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret").write_text("do not serve")
    store = ArtifactStore(tmp_path / "store")
    store.put_bytes(b"x")
    with pytest.raises(NotFoundError, match="not a SHA-256 hex digest"):
        store.path(name)
    assert not store.exists(name)


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "store")
    store.put_bytes(b"first")
    with pytest.raises(FileNotFoundError):
        store.put(tmp_path / "missing.onnx")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        store.put_bytes(b"second")
    assert len(list((tmp_path / "store" / "sha256").iterdir())) == 1


def test_bad_ranges_are_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha, _ = store.put_bytes(b"0123456789")
    assert store.read_range(sha, 2, 5) == b"234"
    assert store.read_range(sha, 8, 100) == b"89"
    with pytest.raises(ValueError, match="bad byte range"):
        store.read_range(sha, 5, 2)
    with pytest.raises(ValueError, match="bad byte range"):
        store.read_range(sha, -1)


def test_concurrent_puts_of_the_same_bytes_agree(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data = os.urandom(MB)
    results: list[tuple[str, Path]] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.put_bytes(data))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert results[0][1].read_bytes() == data
    assert len(list((tmp_path / "sha256").iterdir())) == 1
