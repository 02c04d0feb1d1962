"""Every error code has one exit code, the client knows every code, and the docs agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgefleet.cli import exit_codes
from edgefleet.cli.exit_codes import BY_ERROR, EXIT_ERROR, EXIT_UNREACHABLE, exit_code_for
from edgefleet.cli.operator_client import error_from_response
from edgefleet.errors import (
    EdgefleetError,
    MeterError,
    MissingExtraError,
    UplinkError,
    error_class,
    error_classes,
)

DOCS = Path(__file__).parents[3] / "docs" / "cli.md"
SERVER_CODES = [cls for cls in error_classes() if cls is not MissingExtraError]


def test_error_codes_are_unique_and_the_docstring_tree_lists_every_one() -> None:
    import edgefleet.errors

    codes = [cls.code for cls in error_classes()]
    assert len(codes) == len(set(codes))
    tree = edgefleet.errors.__doc__ or ""
    for cls in error_classes()[1:]:  # the root heads the tree's "code" column
        assert re.search(rf"{cls.__name__}\s+{re.escape(cls.code)}\b", tree), cls


@pytest.mark.parametrize("cls", SERVER_CODES, ids=lambda c: c.code)
def test_the_client_rebuilds_every_server_error_code_as_its_own_class(
    cls: type[EdgefleetError],
) -> None:
    body = json.dumps({"error": "what went wrong", "code": cls.code}).encode()
    error = error_from_response(400, body)
    assert type(error) is cls
    assert str(error) == "what went wrong (HTTP 400)"
    assert error_class(cls.code) is cls


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.code)
def test_only_an_unreachable_server_exits_as_unreachable(cls: type[EdgefleetError]) -> None:
    code = exit_code_for(cls("x"))
    assert (code == EXIT_UNREACHABLE) == issubclass(cls, UplinkError)
    if cls not in (EdgefleetError, MeterError):
        assert code != EXIT_ERROR, f"{cls.code} reads as an unexpected error"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, "resource.not_found"), (409, "resource.conflict"), (503, "agent.uplink")],
)
def test_answers_without_a_known_code_fall_back_to_their_http_status(
    status: int, expected: str
) -> None:
    error = error_from_response(status, b'{"error": "from a newer server", "code": "new.code"}')
    assert error.code == expected


def test_a_server_side_missing_extra_is_not_a_hint_to_install_anything_here() -> None:
    body = json.dumps({"error": "x", "code": MissingExtraError.code}).encode()
    assert type(error_from_response(400, body)) is not MissingExtraError


def test_every_exit_code_is_in_the_docs_table_with_its_number() -> None:
    documented = dict(re.findall(r"^\| (\d+) \| `(EXIT_[A-Z_]+)` \|", DOCS.read_text(), re.M))
    defined = {
        str(getattr(exit_codes, name)): name for name in dir(exit_codes) if name.startswith("EXIT_")
    }
    assert documented == defined
    assert set(BY_ERROR.values()) <= {int(n) for n in defined}


def test_the_agents_own_errors_take_their_codes_from_the_one_table() -> None:
    from edgefleet.agent.enrollment import EnrollmentRefusedError
    from edgefleet.cli.exit_codes import EXIT_ADDRESS, EXIT_AUTH, EXIT_DATA_DIR_IN_USE
    from edgefleet.errors import BindError, DataDirInUseError

    assert exit_code_for(DataDirInUseError("in use by pid 7")) == EXIT_DATA_DIR_IN_USE == 8
    assert exit_code_for(BindError("cannot listen on 127.0.0.1:1")) == EXIT_ADDRESS
    assert exit_code_for(EnrollmentRefusedError("token used up")) == EXIT_AUTH


def test_edgefleet_agent_exits_with_the_tables_code_for_any_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from edgefleet.agent.daemon import Agent
    from edgefleet.cli.exit_codes import EXIT_VERIFICATION
    from edgefleet.cli.main import app
    from edgefleet.errors import VerificationError

    def run(self: Agent) -> None:
        raise VerificationError("root metadata signature does not verify")

    monkeypatch.setattr(Agent, "run", run)
    result = CliRunner().invoke(
        app,
        [
            "agent",
            "--server",
            "http://127.0.0.1:9",
            "--enroll-token",
            "t" * 16,
            "--data-dir",
            str(tmp_path / "agent"),
        ],
    )
    assert result.exit_code == EXIT_VERIFICATION, result.output
    assert "signature does not verify" in result.output
