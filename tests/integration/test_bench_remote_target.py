"""Remote benchmark targets against endpoints that describe their models differently."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefleet.bench.queries import random_queries
from edgefleet.bench.targets import RemoteTarget
from edgefleet.errors import TargetError
from edgefleet.runtime import load
from edgefleet.runtime.dtypes import from_numpy
from edgefleet.runtime.oip import HTTPServer
from edgefleet.runtime.oip.codec import decode_request, encode_response
from edgefleet.runtime.oip.http import Request, Response
from edgefleet.runtime.oip.status import error_body


@contextmanager
def endpoint(digits_path: Path, inputs: list[dict[str, Any]]) -> Iterator[str]:
    """A minimal OIP endpoint over the real digits model that publishes ``inputs`` as metadata.

    Some servers (MLServer's custom models, for one) publish no tensor metadata at all; this
    endpoint lets the test choose what is published while inference stays real.
    """
    model = load(digits_path, intra_op_threads=1)

    def handle(request: Request) -> Response:
        if request.method == "GET":
            meta = {"name": "digits", "versions": ["1"], "platform": "x", "inputs": inputs}
            return Response(200, json.dumps(meta).encode())
        length = request.headers.get("inference-header-content-length")
        decoded = decode_request(request.body, None if length is None else int(length))
        outputs = model.predict(decoded.inputs)
        tensors = [(name, from_numpy(a.dtype), a, False) for name, a in outputs.items()]
        body, _ = encode_response("digits", "1", decoded.id, tensors)
        return Response(200, body)

    server = HTTPServer(handle, "127.0.0.1", 0, error_body=error_body)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown(5)
        thread.join(5)
        model.close()


def test_an_endpoint_without_input_metadata_is_measured_unchecked(digits_path: Path) -> None:
    model = load(digits_path)
    with endpoint(digits_path, []) as url:
        target = RemoteTarget(url, "digits", model.inputs, binary=False)
        target.prepare(random_queries(model.inputs, count=2))
        session = target.session()
        probabilities = session.run(1)["probabilities"]
        session.close()
    model.close()
    assert probabilities.shape == (1, 10)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("published", "message"),
    [
        ([{"name": "input", "datatype": "FP64", "shape": [-1, 1, 8, 8]}], "is FP64, the local"),
        ([{"name": "input", "datatype": "FP32", "shape": [-1, 3, 8, 8]}], "has shape"),
        ([{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}], "has no input 'input'"),
    ],
)
def test_an_endpoint_that_describes_another_model_is_refused(
    digits_path: Path, published: list[dict[str, Any]], message: str
) -> None:
    model = load(digits_path)
    with endpoint(digits_path, published) as url, pytest.raises(TargetError, match=message):
        RemoteTarget(url, "digits", model.inputs)
    model.close()
