"""Random bearer secrets and their stored form.

Every secret is 32 random bytes (``secrets.token_urlsafe``) behind a prefix that says what it
is (``efo_`` operator, ``efd_`` device, ``efe_`` enrolment). The database keeps only the
SHA-256 of a secret: secrets have 256 bits of entropy, so a fast hash is enough (a slow password
hash protects guessable secrets, which these are not), and a leaked database reveals no usable
credential.

>>> token = new_token("operator")
>>> token.startswith("efo_") and len(token) > 40
True
>>> hash_token(token) == hash_token(token)
True
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

__all__ = ["TokenKind", "hash_token", "new_token", "token_kind"]

TokenKind = Literal["operator", "device", "enroll"]
_PREFIX: dict[TokenKind, str] = {"operator": "efo_", "device": "efd_", "enroll": "efe_"}


def new_token(kind: TokenKind) -> str:
    """A fresh random secret of ``kind``."""
    return _PREFIX[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of ``token`` (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_kind(token: str) -> TokenKind | None:
    """What kind of secret ``token`` claims to be, from its prefix (None if none)."""
    for kind, prefix in _PREFIX.items():
        if token.startswith(prefix):
            return kind
    return None
