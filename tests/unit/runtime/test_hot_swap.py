from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from edgefleet.errors import ModelNotFoundError, ModelUnavailableError
from edgefleet.runtime import ModelRepository, load


def test_hundred_swaps_under_load_fail_no_request(
    digits_path: Path, one_digit: NDArray[np.float32]
) -> None:
    """Several threads hammer predict while the model behind the name is replaced 100 times."""
    repo = ModelRepository()
    repo.add(load(digits_path, name="digits", version="0", intra_op_threads=1))
    errors: list[BaseException] = []
    versions_seen: set[str] = set()
    done = threading.Event()
    calls = [0] * 4

    def hammer(i: int) -> None:
        while not done.is_set():
            try:
                out = repo.predict("digits", {"input": one_digit})
                assert out["probabilities"].shape == (1, 10)
                versions_seen.add(repo.get("digits").version)
                calls[i] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # Loading happens here, before the swap, so no request waits for it.
    replacements = [
        load(digits_path, name="digits", version=str(v), intra_op_threads=1) for v in range(1, 101)
    ]
    old_models: list[Any] = []
    for new in replacements:
        old = repo.swap(new)
        assert old is not None
        old_models.append(old)
    done.set()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(calls) > 100
    assert repo.get("digits").version == "100"
    assert all(m.closed and m.in_flight == 0 for m in old_models)
    assert len(versions_seen) > 1


def test_calls_on_a_closed_model_without_replacement_fail(
    digits_path: Path, one_digit: NDArray[np.float32]
) -> None:
    repo = ModelRepository()
    model = load(digits_path, name="digits")
    repo.add(model)
    model.close()
    with pytest.raises(ModelUnavailableError):
        repo.predict("digits", {"input": one_digit})


def test_unknown_name_and_version_are_reported(digits_path: Path) -> None:
    repo = ModelRepository()
    repo.add(load(digits_path, name="digits", version="3"))
    with pytest.raises(ModelNotFoundError, match="serving: digits"):
        repo.get("other")
    with pytest.raises(ModelNotFoundError, match="no version '4'"):
        repo.get("digits", "4")
    with pytest.raises(ValueError, match="already served"):
        repo.add(load(digits_path, name="digits"))


def test_drain_waits_for_running_calls(digits_path: Path, one_digit: NDArray[np.float32]) -> None:
    model = load(digits_path)
    model._inflight.append(None)  # a call that is still running
    closer = threading.Thread(target=model.close)
    closer.start()
    closer.join(timeout=0.2)
    assert closer.is_alive()  # still draining
    model._inflight.pop()
    closer.join(timeout=5)
    assert not closer.is_alive()


def test_load_replaces_and_remove_drains(digits_path: Path, one_digit: NDArray[np.float32]) -> None:
    repo = ModelRepository()
    first = repo.load(digits_path, name="digits", version="1")
    second = repo.load(digits_path, name="digits", version="2")
    assert first.closed
    assert repo.get("digits") is second
    repo.remove("digits")
    assert second.closed
    assert repo.names() == []
    with pytest.raises(ModelNotFoundError):
        repo.remove("digits")


def test_answer_names_the_servable_that_ran_the_call(
    digits_path: Path, one_digit: NDArray[np.float32]
) -> None:
    """A caller that looked the model up before a swap labels the answer with what ran it."""
    repo = ModelRepository()
    repo.add(load(digits_path, name="digits", version="1"))
    looked_up = repo.get("digits")
    old = repo.swap(load(digits_path, name="digits", version="2"))
    assert old is looked_up
    ran: list[str] = []
    repo.set_tap("digits", lambda servable, feeds, outputs: ran.append(servable.version))
    servable, outputs = repo.answer("digits", {"input": one_digit})
    assert (servable.version, ran) == ("2", ["2"])
    assert outputs["probabilities"].shape == (1, 10)
    repo.close()
