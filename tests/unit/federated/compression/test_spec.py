"""Codec specs: the CLI text, its canonical form, and errors that name the bad part."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.compression import (
    CodecSpecError,
    DGCCodec,
    Float16Codec,
    Int8Codec,
    TopKCodec,
    from_spec,
    spec_of,
)
from edgefleet.federated.compression.spec import CODECS

CANONICAL = {
    "dense": "dense",
    "fp16": "fp16",
    " FP16 ": "fp16",
    "int8": "int8",
    "int8:chunk=512": "int8:chunk=512",
    "int8:chunk=256": "int8",
    "dense:level=0": "dense:level=0",
    "topk:0.99": "topk:0.99",
    "topk:sparsity=0.99": "topk:0.99",
    "topk:0.99, values=fp32": "topk:0.99,values=fp32",
    "dgc": "dgc:0.999",
    "dgc:0.999": "dgc:0.999",
    "dgc:0.999,momentum=0.9,clip=1.0,warmup=13": "dgc:0.999,momentum=0.9,clip=1.0",
    "dgc:0.999,start=0.9": "dgc:0.999",
    "dgc:0.999,warmup=4,start=0.75": "dgc:0.999,warmup=4,start=0.75",
    "dgc:0.99,clip=none,warmup=2,sample=0.05,seed=3,values=fp32,level=9": (
        "dgc:0.99,warmup=2,sample=0.05,seed=3,values=fp32,level=9"
    ),
}


def test_specs_have_a_canonical_form_that_round_trips() -> None:
    for text, canonical in CANONICAL.items():
        codec = from_spec(text)
        assert spec_of(codec) == canonical, text
        assert from_spec(canonical) == codec
        assert spec_of(from_spec(canonical)) == canonical


def test_the_number_is_the_sparsity() -> None:
    topk = from_spec("topk:0.99")
    dgc = from_spec("dgc:0.999,momentum=0.9,clip=1.0,warmup=4")
    assert isinstance(topk, TopKCodec)
    assert topk.sparsity == 0.99
    assert isinstance(dgc, DGCCodec)
    assert (dgc.sparsity, dgc.momentum, dgc.clip, dgc.warmup) == (0.999, 0.9, 1.0, 4)
    assert isinstance(from_spec("fp16"), Float16Codec)
    assert isinstance(from_spec("int8"), Int8Codec)
    assert set(CODECS) == {"dense", "fp16", "int8", "topk", "dgc"}


@given(
    sparsity=st.floats(0.0, 0.99999),
    momentum=st.floats(0.0, 0.999),
    clip=st.none() | st.floats(1e-6, 1e6),
    warmup=st.integers(0, 100),
    start=st.floats(0.0, 0.99999),
)
def test_any_dgc_codec_round_trips_through_its_spec(
    sparsity: float, momentum: float, clip: float | None, warmup: int, start: float
) -> None:
    codec = DGCCodec(sparsity, momentum=momentum, clip=clip, warmup=warmup, start=start)
    again = from_spec(spec_of(codec))
    assert isinstance(again, DGCCodec)
    assert (again.sparsity, again.momentum, again.clip, again.warmup, again.start) == (
        sparsity,
        momentum,
        clip,
        warmup,
        start,
    )


BAD = {
    "": "is empty",
    ":0.5": "is empty",
    "zstd": "unknown codec 'zstd'.*known: dense, fp16, int8, topk, dgc",
    "topk": "topk needs a sparsity, e.g. 'topk:0.99'",
    "topk:1.5": "topk:1.5.*sparsity is the fraction of values not sent, in \\[0, 1\\), got 1.5",
    "topk:-0.1": "got -0.1",
    "topk:abc": "sparsity='abc' is not a number",
    "topk:nan": "sparsity='nan' is not a number",
    "topk:0.9,0.8": "'0.8' is not KEY=VALUE",
    "topk:0.9,momentum=0.9": "unknown option 'momentum' for topk",
    "topk:0.9,values=fp8": "values='fp8' is not fp16 or fp32",
    "dgc:0.999,mom=0.9": "unknown option 'mom' for dgc.*momentum",
    "dgc:0.999,momentum=1.2": "momentum must be in \\[0, 1\\), got 1.2",
    "dgc:0.999,clip=-1": "clip must be a positive L2 norm, got -1.0",
    "dgc:0.999,warmup=2.5": "warmup='2.5' is not an integer",
    "dgc:0.999,warmup=1,warmup=2": "option 'warmup' given twice",
    "dgc:0.999,start=1": "start must be a sparsity in \\[0, 1\\), got 1.0",
    "dgc:0.999,start=-0.5": "start must be a sparsity in \\[0, 1\\), got -0.5",
    "dgc:0.9,sparsity=0.8": "option 'sparsity' given twice",
    "dense:0.5": "'0.5' is not KEY=VALUE",
    "dense:level=10": "zlib level must be 0..9, got 10",
    "int8:chunk=0": "int8 chunk must be",
}


@pytest.mark.parametrize(("text", "message"), BAD.items())
def test_a_bad_spec_is_a_value_error_naming_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        from_spec(text)
    assert isinstance(caught.value, CodecSpecError)
    assert caught.value.code == "config.invalid"
