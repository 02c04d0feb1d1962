from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.secret_files import write_secret


def test_a_secret_is_written_to_a_new_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "director.key"
    write_secret(path, b"\x00key bytes")
    write_secret(tmp_path / "token", "efo_text\n")
    assert path.read_bytes() == b"\x00key bytes"
    assert (tmp_path / "token").read_text() == "efo_text\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    write_secret(path, b"first")
    with pytest.raises(ConfigurationError, match=r"key file .*root.key exists"):
        write_secret(path, b"second", "key file")
    assert path.read_bytes() == b"first"
