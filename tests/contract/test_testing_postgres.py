from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.testing import postgres
from edgefleet.testing.postgres import PostgresNotFoundError, find_postgres_bin


def test_missing_postgresql_binaries_fail_loudly_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "_SEARCH_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    with pytest.raises(PostgresNotFoundError, match="make postgres"):
        postgres.start_postgres()


def test_the_newest_debian_postgresql_is_found_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for version in ("9.6", "15", "16"):
        folder = tmp_path / "postgresql" / version / "bin"
        folder.mkdir(parents=True)
        (folder / "initdb").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(postgres, "_SEARCH_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    assert find_postgres_bin() == tmp_path / "postgresql" / "16" / "bin"


def test_the_session_server_serves_sqlalchemy_urls(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
