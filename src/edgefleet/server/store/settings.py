"""Server-wide key/value settings (state several server processes must agree on)."""

from __future__ import annotations

import sqlalchemy as sa

from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase

__all__ = ["SettingStore"]


class SettingStore(StoreBase):
    """Settings."""

    def get_setting(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        table = schema.settings
        with self._read() as connection:
            value = connection.execute(sa.select(table.c.value).where(table.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing what was stored."""
        table = schema.settings
        upsert = self._insert(table).values(key=key, value=value)
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.key], set_={"value": upsert.excluded.value}
        )
        with self._write() as connection:
            connection.execute(statement)
