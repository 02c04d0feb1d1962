"""Federated learning math: aggregation strategies, update codecs, local training hooks.

Pure functions and small classes over numpy vectors; no transport, no persistence. The server
and the agent (and the simulator) call them; this package never imports either.

Aggregation strategies live in :mod:`edgefleet.federated.strategies`; their spec parser is
re-exported here as ``strategy_from_spec`` / ``strategy_spec_of``. Update codecs live in
:mod:`edgefleet.federated.compression`; theirs are ``codec_from_spec`` / ``codec_spec_of``.
Local training hooks (:class:`Task`, found by :func:`load_task`) live in
:mod:`edgefleet.federated.task`, the digits example in :mod:`edgefleet.federated.tasks`.
"""

from __future__ import annotations

from edgefleet.federated.compression import (
    CODECS,
    BaseMismatchError,
    Codec,
    CodecSpecError,
    DenseCodec,
    DGCCodec,
    Downlink,
    Float16Codec,
    Int8Codec,
    PayloadError,
    TopKCodec,
    apply_downlink,
    decode_update,
    downlink_for,
    encode_downlink,
    encode_for_round,
    model_hash,
)
from edgefleet.federated.compression import from_spec as codec_from_spec
from edgefleet.federated.compression import spec_of as codec_spec_of
from edgefleet.federated.params import Layout, Params, Vector, flatten, layout_of, unflatten
from edgefleet.federated.privacy import (
    GaussianMechanism,
    PrivacyAccountant,
    PrivacySpec,
    PrivacySpecError,
    clip_update,
    private_mean,
    privatize_update,
)
from edgefleet.federated.privacy import from_spec as privacy_from_spec
from edgefleet.federated.strategies import (
    STRATEGIES,
    ClientUpdate,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Median,
    Strategy,
    TrimmedMean,
    proximal_gradient,
    proximal_term,
)
from edgefleet.federated.strategies import from_spec as strategy_from_spec
from edgefleet.federated.strategies import spec_of as strategy_spec_of
from edgefleet.federated.task import (
    Dataset,
    Task,
    TaskSpecError,
    TrainConfig,
    get_params,
    load_task,
    set_params,
)

__all__ = [
    "CODECS",
    "STRATEGIES",
    "BaseMismatchError",
    "ClientUpdate",
    "Codec",
    "CodecSpecError",
    "DGCCodec",
    "Dataset",
    "DenseCodec",
    "Downlink",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "Float16Codec",
    "GaussianMechanism",
    "Int8Codec",
    "Layout",
    "Median",
    "Params",
    "PayloadError",
    "PrivacyAccountant",
    "PrivacySpec",
    "PrivacySpecError",
    "Strategy",
    "Task",
    "TaskSpecError",
    "TopKCodec",
    "TrainConfig",
    "TrimmedMean",
    "Vector",
    "apply_downlink",
    "clip_update",
    "codec_from_spec",
    "codec_spec_of",
    "decode_update",
    "downlink_for",
    "encode_downlink",
    "encode_for_round",
    "flatten",
    "get_params",
    "layout_of",
    "load_task",
    "model_hash",
    "privacy_from_spec",
    "private_mean",
    "privatize_update",
    "proximal_gradient",
    "proximal_term",
    "set_params",
    "strategy_from_spec",
    "strategy_spec_of",
    "unflatten",
]
