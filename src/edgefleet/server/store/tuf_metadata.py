"""TUF metadata files, kept as bytes in the database so that server replicas share them."""

from __future__ import annotations

import sqlalchemy as sa

from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase

__all__ = ["MetadataStore"]


class MetadataStore(StoreBase):
    """TUF metadata bytes by file name (``root.json``, ``3.targets.json``, ...)."""

    def put_metadata(self, filename: str, body: bytes) -> None:
        """Store ``body`` as ``filename``, replacing what was stored under that name."""
        table = schema.tuf_metadata
        upsert = self._insert(table).values(filename=filename, body=bytes(body))
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.filename], set_={"body": upsert.excluded.body}
        )
        with self._write() as connection:
            connection.execute(statement)

    def get_metadata(self, filename: str) -> bytes | None:
        """The bytes stored as ``filename``, or None."""
        table = schema.tuf_metadata
        with self._read() as connection:
            body = connection.execute(
                sa.select(table.c.body).where(table.c.filename == filename)
            ).scalar()
        return None if body is None else bytes(body)

    def list_metadata(self) -> list[str]:
        """The stored file names, sorted."""
        table = schema.tuf_metadata
        with self._read() as connection:
            names = connection.execute(sa.select(table.c.filename).order_by(table.c.filename))
            return [str(name) for name in names.scalars()]
