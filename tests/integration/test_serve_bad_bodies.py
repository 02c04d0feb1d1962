"""Hostile request bodies against a real server on loopback: each is a 400 naming the problem."""

from __future__ import annotations

import http.client
import json

import pytest

from edgefleet.runtime.oip import HTTPServer, InferenceService
from edgefleet.runtime.oip.bounded_json import MAX_JSON_DEPTH


def post(server: tuple[HTTPServer, InferenceService], body: bytes) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=30)
    try:
        conn.request("POST", "/v2/models/digits/infer", body=body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def tensor(shape: list[int], data: object, name: str = "input") -> bytes:
    return json.dumps(
        {"inputs": [{"name": name, "datatype": "FP32", "shape": shape, "data": data}]}
    ).encode()


def test_a_shape_of_rank_65_is_a_400_naming_the_rank(
    server: tuple[HTTPServer, InferenceService],
) -> None:
    status, body = post(server, tensor([1] * 65, [0.0]))
    assert status == 400
    assert body == {
        "error": "input 'input': shape has rank 65; at most 64 dimensions are supported"
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="a-bare-array"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="objects"),
        pytest.param(tensor([1], "@").replace(b'"@"', b"[" * 100_000 + b"]" * 100_000), id="data"),
        pytest.param(b"[" * 100_000, id="unclosed"),
    ],
)
def test_json_nested_100000_levels_deep_is_a_400(
    server: tuple[HTTPServer, InferenceService], body: bytes
) -> None:
    status, payload = post(server, body)
    assert status == 400
    assert list(payload) == ["error"]
    assert f"at most {MAX_JSON_DEPTH} are accepted" in payload["error"]


def test_brackets_inside_strings_do_not_count_as_nesting(
    server: tuple[HTTPServer, InferenceService],
) -> None:
    body = json.loads(tensor([1, 1, 8, 8], [0.0] * 64))
    body["id"] = "[" * 10_000 + '\\"{' * 10_000
    status, payload = post(server, json.dumps(body).encode())
    assert status == 200, payload
    assert payload["id"] == body["id"]


def test_nesting_up_to_the_limit_reaches_the_usual_checks(
    server: tuple[HTTPServer, InferenceService],
) -> None:
    data: object = 0.0
    for _ in range(MAX_JSON_DEPTH - 3):  # the body, "inputs" and the tensor hold the rest
        data = [data]
    status, payload = post(server, tensor([1, 1, 8, 8], data))
    assert status == 400
    assert "input 'input'" in payload["error"]


def test_a_wrong_input_name_names_the_name_the_request_gave(
    server: tuple[HTTPServer, InferenceService],
) -> None:
    status, payload = post(server, tensor([1, 1, 8, 8], [0.0] * 64, name="image"))
    assert status == 400
    assert payload["error"] == (
        "model 'digits' has no input(s) 'image' and needs 'input'; expected 'input'"
    )
