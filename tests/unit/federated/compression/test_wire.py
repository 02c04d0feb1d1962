"""The wire format: varints, the header, and a ValueError for every malformed payload."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.compression import PayloadError, from_spec, read_header
from edgefleet.federated.compression.varint import decode_varints, encode_varints
from edgefleet.federated.compression.wire import (
    DGC,
    HEADER_SIZE,
    TOPK,
    decode,
    encode_dense,
    encode_sparse,
    read,
)

HEADER = struct.Struct("<2sBBBBBBQQII")
SECTION = struct.Struct("<BQ")


def planes(values: np.ndarray) -> list[bytes]:
    raw = values.view(np.uint8).reshape(-1, values.dtype.itemsize)
    return [raw[:, i].tobytes() for i in range(values.dtype.itemsize)]


def build(
    sections: list[bytes],
    *,
    magic: bytes = b"EF",
    version: int = 1,
    codec: int = TOPK,
    kind: int = 1,
    vtype: int = 1,
    compressor: int = 1,
    reserved: int = 0,
    size: int = 10,
    count: int = 2,
    chunk: int = 0,
    crc: int | None = None,
    compress: bool = False,
    trailer: bytes = b"",
) -> bytes:
    """A payload written field by field from the format's description, valid unless told."""
    if crc is None:
        crc = 0
        for raw in sections:
            crc = zlib.crc32(raw, crc)
    head = HEADER.pack(
        magic, version, codec, kind, vtype, compressor, reserved, size, count, chunk, crc
    )
    body = b""
    for raw in sections:
        data = zlib.compress(raw) if compress else raw
        body += SECTION.pack(1 if compress else 0, len(data)) + data
    return head + body + trailer


FP16 = planes(np.array([0.5, -2.0], "<f2"))
GAPS = bytes([1, 4])  # indices 1 and 5


def sparse(**fields: object) -> bytes:
    sections = fields.pop("sections", [GAPS, *FP16])
    return build(sections, **fields)  # type: ignore[arg-type]


def test_the_hand_built_payload_is_valid() -> None:
    out = decode(sparse(), 10)
    assert out.tolist() == [0, 0.5, 0, 0, 0, -2.0, 0, 0, 0, 0]
    assert decode(sparse(compress=True), 10).tolist() == out.tolist()
    assert HEADER_SIZE == 32


@given(st.lists(st.integers(0, 2**42 - 1), max_size=50))
def test_varints_round_trip(values: list[int]) -> None:
    data = encode_varints(values)
    assert decode_varints(data, len(values)).tolist() == values
    assert len(data) == sum(max(1, (v.bit_length() + 6) // 7) for v in values)


@given(
    st.lists(st.integers(0, 10**6 - 1), unique=True, max_size=200),
    st.sampled_from(["fp16", "fp32"]),
)
def test_sparse_payloads_round_trip(indices: list[int], values_type: str) -> None:
    idx = np.array(sorted(indices), np.int64)
    values = np.linspace(-1, 1, idx.size).astype(np.float32)
    payload = encode_sparse(idx, values, 10**6, codec_id=DGC, value_type=values_type)  # type: ignore[arg-type]
    message = read(payload, 10**6)
    assert message.indices is not None
    assert message.indices.tolist() == idx.tolist()
    assert np.allclose(message.values.astype(np.float32), values, atol=1e-3)
    assert message.header.codec_id == DGC


def test_the_header_says_what_made_the_payload() -> None:
    payload = from_spec("int8:chunk=4").encode(np.arange(10, dtype=np.float32))
    header = read_header(payload)
    assert (header.codec_id, header.size, header.count, header.chunk) == (3, 10, 10, 4)


MALFORMED = {
    "bad magic": (sparse(magic=b"XX"), "does not start with"),
    "newer version": (sparse(version=2), "unsupported wire version 2"),
    "unknown codec id": (sparse(codec=99), "unknown codec id 99"),
    "unknown kind": (sparse(kind=7), "unknown payload kind 7"),
    "unknown value type": (sparse(vtype=9), "unknown value type 9"),
    "unknown compressor": (sparse(compressor=3), "unknown compressor 3"),
    "reserved byte set": (sparse(reserved=1), "reserved"),
    "count above size": (sparse(count=11), "declared count 11 exceeds the vector size 10"),
    "dense count differs": (
        build(planes(np.ones(10, "<f4")), kind=0, vtype=0, count=9),
        "declares 9 values for a size of 10",
    ),
    "int8 without chunk": (build([], kind=2, vtype=2, count=10), "int8 payload"),
    "index past the end": (sparse(sections=[bytes([1, 9]), *FP16]), "past the end"),
    "index repeated": (sparse(sections=[bytes([1, 0]), *FP16]), "not strictly increasing"),
    "too few varints": (sparse(sections=[bytes([1, 0x84]), *FP16]), "complete varints"),
    "overlong varint": (
        sparse(sections=[bytes([0x81, 0x80, 1, 4]), *FP16], size=200),
        "more than 2 bytes",
    ),
    "non-canonical varint": (
        build([bytes([0x81, 0x00, 4]), *planes(np.ones(2, "<f2"))], size=200),
        "non-canonical",
    ),
    "NaN value": (sparse(sections=[GAPS, *planes(np.array([np.nan, 1], "<f2"))]), "value 0"),
    "infinite value": (
        build([GAPS, *planes(np.array([1, np.inf], "<f4"))], vtype=0),
        "finite values only",
    ),
    "NaN scale": (
        build(
            [*planes(np.array([np.nan], "<f4")), bytes(3)],
            kind=2,
            vtype=2,
            size=3,
            count=3,
            chunk=4,
        ),
        "scale 0",
    ),
    "negative scale": (
        build(
            [*planes(np.array([-1.0], "<f4")), bytes(3)], kind=2, vtype=2, size=3, count=3, chunk=4
        ),
        "negative scale",
    ),
    "huge scale": (
        build(
            [*planes(np.array([3e38], "<f4")), bytes(3)], kind=2, vtype=2, size=3, count=3, chunk=4
        ),
        "overflows float32",
    ),
    "wrong CRC": (sparse(crc=12345), "CRC-32"),
    "garbage after the sections": (sparse(trailer=b"\x00"), "1 bytes of garbage"),
    "unknown section method": (
        sparse()[:HEADER_SIZE] + b"\x07" + sparse()[HEADER_SIZE + 1 :],
        "unknown method 7",
    ),
    "section longer than the payload": (
        sparse()[:HEADER_SIZE] + SECTION.pack(0, 1000) + GAPS,
        "declares 1000 bytes",
    ),
    "section shorter than declared count": (
        sparse(sections=[GAPS, b"\x00", b"\x01"]),
        "section 1 is 1 bytes",
    ),
    "corrupt zlib": (
        sparse(compress=True)[:-3] + b"\xff\xff\xff",
        "corrupt|truncated|garbage|CRC",
    ),
}


@pytest.mark.parametrize(("payload", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_payload_is_a_value_error_saying_what_is_wrong(
    payload: bytes, message: str
) -> None:
    size = HEADER.unpack_from(payload)[7]
    with pytest.raises(ValueError, match=message) as caught:
        decode(payload, size)
    assert isinstance(caught.value, PayloadError)


def test_every_truncation_is_a_value_error() -> None:
    rng = np.random.default_rng(0)
    for spec in ("dense", "fp16", "int8:chunk=8", "topk:0.9"):
        payload = from_spec(spec).encode(rng.normal(size=100).astype(np.float32))
        for cut in range(len(payload)):
            with pytest.raises(PayloadError):
                decode(payload[:cut], 100)


def test_every_flipped_byte_is_a_value_error_or_harmless() -> None:
    # A flipped bit either breaks a check or lands where the header allows the change (for
    # example a stored section's method byte flipped to "compressed" fails inflation).
    payload = from_spec("topk:0.9").encode(np.linspace(-1, 1, 100, dtype=np.float32))
    original = decode(payload, 100)
    for at in range(len(payload)):
        corrupt = bytearray(payload)
        corrupt[at] ^= 0x10
        try:
            out = decode(bytes(corrupt), 100)
        except ValueError:
            continue
        assert np.array_equal(out, original), f"byte {at} changed the update undetected"


def test_the_declared_size_must_be_the_expected_one() -> None:
    with pytest.raises(PayloadError, match="vector of 10 values, expected 11"):
        decode(sparse(), 11)


def test_a_codec_refuses_another_codecs_payload() -> None:
    with pytest.raises(PayloadError, match="made by codec 'topk', expected 'dgc'"):
        from_spec("dgc:0.9").decode(sparse(), 10)


def test_a_decompression_bomb_is_stopped_at_the_declared_size() -> None:
    # 2 values declared, but the index section inflates to 100 MB of zeros.
    bomb = zlib.compress(bytes(100_000_000), 9)
    payload = sparse()[:HEADER_SIZE] + SECTION.pack(1, len(bomb)) + bomb
    assert len(payload) < 200_000
    with pytest.raises(PayloadError, match="inflates past the 2 bytes its header allows"):
        decode(payload, 10)


def test_a_dense_bomb_is_stopped_too() -> None:
    bomb = zlib.compress(bytes(50_000_000), 9)
    payload = build([b""] * 4, kind=0, vtype=0, size=10, count=10)[:HEADER_SIZE]
    payload += SECTION.pack(1, len(bomb)) + bomb
    with pytest.raises(PayloadError, match="inflates past the 10 bytes"):
        decode(payload, 10)


def test_incompressible_sections_are_stored_and_the_rest_compressed() -> None:
    x = np.random.default_rng(0).normal(size=100_000).astype(np.float32)
    payload = encode_dense(x)
    methods = []
    position = HEADER_SIZE
    for _ in range(4):
        method, length = SECTION.unpack_from(payload, position)
        methods.append(method)
        position += SECTION.size + length
    assert methods == [0, 0, 0, 1]  # mantissa planes stored, the sign/exponent plane deflated
    assert len(payload) < 0.9 * x.nbytes
