"""``edgefleet server init``: a data dir with database, keys, TUF metadata, operator token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.secret_files import write_secret
from edgefleet.protocol.signing import SigningKey
from edgefleet.server.app import DIRECTOR_KEY, expiry_settings
from edgefleet.server.registry.keys import RepositoryKeys
from edgefleet.server.registry.tuf_repo import TufRepository
from edgefleet.server.settings import CONFIG_FILE, ServerSettings
from edgefleet.server.store import open_store
from edgefleet.server.tokens import hash_token, new_token

__all__ = ["OPERATOR_TOKEN_FILE", "InitResult", "initialize"]

OPERATOR_TOKEN_FILE = "operator-token"


@dataclass(frozen=True)
class InitResult:
    """What init created; ``operator_token`` is shown once."""

    data_dir: Path
    database_url: str
    root_key_path: Path
    root_key_online: bool
    operator_token: str


def initialize(
    data_dir: Path, *, root_key: Path | None = None, database_url: str | None = None
) -> InitResult:
    """Create ``data_dir`` for ``edgefleet server``.

    Raises
    ------
    ConfigurationError
        If ``data_dir`` already holds a server, or ``root_key`` already exists.
    """
    data_dir = data_dir.resolve()
    if (data_dir / CONFIG_FILE).exists():
        raise ConfigurationError(f"{data_dir} is already initialised ({CONFIG_FILE} exists)")
    root_key_path = (root_key or data_dir / "keys" / "root.key").resolve()
    if root_key_path.exists():
        raise ConfigurationError(f"root key {root_key_path} already exists; refusing to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(data_dir=data_dir, database_url=database_url)
    settings.keys_dir.mkdir(mode=0o700, exist_ok=True)
    settings.artifacts_dir.mkdir(exist_ok=True)
    keys = RepositoryKeys.generate(settings.keys_dir, root_key_path)
    SigningKey.generate().save(settings.keys_dir / DIRECTOR_KEY)
    token = new_token("operator")
    store = open_store(settings.sqlalchemy_url)
    try:
        store.migrate()
        TufRepository.initialize(store, keys, expiry=expiry_settings(settings), now=time.time())
        store.create_operator_token(hash_token(token), "init", time.time())
    finally:
        store.close()
    write_secret(data_dir / OPERATOR_TOKEN_FILE, token + "\n")
    config = {"root_key_path": str(root_key_path)}
    if database_url:
        config["database_url"] = database_url
    write_secret(data_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=True))
    return InitResult(
        data_dir=data_dir,
        database_url=settings.sqlalchemy_url,
        root_key_path=root_key_path,
        root_key_online=RepositoryKeys.root_key_online(settings.keys_dir)
        or root_key_path.is_relative_to(data_dir),
        operator_token=token,
    )
