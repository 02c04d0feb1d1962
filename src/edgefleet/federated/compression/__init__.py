"""Update codecs: compress what devices send (and the global model they receive) on the wire.

========================  =====================================================================
``dense``                 float32, exact (the baseline)
``fp16``                  float16: half the bytes, relative error 2**-11
``int8``                  int8 with a float32 scale per chunk of 256: a quarter of the bytes
``topk:S``                the largest ``1 - S`` of the values, the rest carried to later rounds
``dgc:S``                 Deep Gradient Compression: top-k plus momentum correction, clipping,
                          sparsity warm-up and a sampled threshold
========================  =====================================================================

``S`` is always the sparsity, the fraction of values held back. Every codec encodes one flat
float32 vector to bytes in the :mod:`~edgefleet.federated.compression.wire` format and states
its error (``error_bound``); the top-k and DGC codecs keep per-device state that
``state_bytes()`` / ``load_state()`` carry across restarts. ``encode_downlink`` sends a new
global model as a delta against the one a device holds.

Examples
--------
>>> import numpy as np
>>> device = from_spec("topk:0.999")
>>> update = np.random.default_rng(0).normal(size=1_000_000).astype(np.float32)
>>> payload = device.encode(update)
>>> len(payload) < update.nbytes / 100
True
>>> server_side = decode_update(payload, update.size)
>>> int(np.count_nonzero(server_side))
1000
"""

from __future__ import annotations

from edgefleet.federated.compression.base import (
    Codec,
    CodecSpecError,
    PayloadError,
    encode_for_round,
)
from edgefleet.federated.compression.dense import DenseCodec
from edgefleet.federated.compression.dgc import (
    DGCCodec,
    sampled_threshold,
    select_top_k,
    warmup_sparsity,
)
from edgefleet.federated.compression.downlink import (
    BaseMismatchError,
    Downlink,
    apply_downlink,
    downlink_for,
    encode_downlink,
    model_hash,
)
from edgefleet.federated.compression.quantize import Float16Codec, Int8Codec
from edgefleet.federated.compression.spec import CODECS, from_spec, spec_of
from edgefleet.federated.compression.topk import TopKCodec, kept_count, top_k_indices
from edgefleet.federated.compression.wire import decode as decode_update
from edgefleet.federated.compression.wire import read_header

__all__ = [
    "CODECS",
    "BaseMismatchError",
    "Codec",
    "CodecSpecError",
    "DGCCodec",
    "DenseCodec",
    "Downlink",
    "Float16Codec",
    "Int8Codec",
    "PayloadError",
    "TopKCodec",
    "apply_downlink",
    "decode_update",
    "downlink_for",
    "encode_downlink",
    "encode_for_round",
    "from_spec",
    "kept_count",
    "model_hash",
    "read_header",
    "sampled_threshold",
    "select_top_k",
    "spec_of",
    "top_k_indices",
    "warmup_sparsity",
]
