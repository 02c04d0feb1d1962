"""Model versions pushed to the registry: one row per (name, version), immutable once stored."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from edgefleet.errors import ConflictError
from edgefleet.server.store import schema
from edgefleet.server.store._base import StoreBase
from edgefleet.server.store.rows import ModelVersionRow

__all__ = ["ModelVersionStore"]


def _row(row: Any) -> ModelVersionRow:
    return ModelVersionRow(
        id=row.id,
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        opset=row.opset,
        inputs=list(row.inputs),
        outputs=list(row.outputs),
        memory_estimate_bytes=row.memory_estimate_bytes,
        golden_sha256=row.golden_sha256,
        calibration=None if row.calibration is None else dict(row.calibration),
        metadata=dict(row.metadata),
        created_at=row.created_at,
    )


class ModelVersionStore(StoreBase):
    """Model versions."""

    def add_model_version(
        self,
        name: str,
        version: str,
        sha256: str,
        size_bytes: int,
        opset: int,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        memory_estimate_bytes: int,
        golden_sha256: str | None,
        calibration: dict[str, Any] | None,
        metadata: dict[str, Any],
        created_at: float,
    ) -> tuple[ModelVersionRow, bool]:
        """Store a model version, idempotently.

        Returns
        -------
        tuple of (ModelVersionRow, bool)
            The stored row and whether this call created it. Pushing the same ``(name,
            version)`` again with the same ``sha256`` returns the existing row and False (the
            other fields of the new call are ignored).

        Raises
        ------
        ConflictError
            ``(name, version)`` is stored already with other bytes (another ``sha256``).
        """
        table = schema.model_versions
        statement = (
            self._insert(table)
            .values(
                name=name,
                version=version,
                sha256=sha256,
                size_bytes=size_bytes,
                opset=opset,
                inputs=list(inputs),
                outputs=list(outputs),
                memory_estimate_bytes=memory_estimate_bytes,
                golden_sha256=golden_sha256,
                calibration=calibration,
                metadata=dict(metadata),
                created_at=created_at,
            )
            .on_conflict_do_nothing(index_elements=[table.c.name, table.c.version])
            .returning(*table.c)
        )
        with self._write() as connection:
            created = connection.execute(statement).first()
            if created is not None:
                return _row(created), True
            existing = _row(connection.execute(self._select(name, version)).one())
        if existing.sha256 != sha256:
            raise ConflictError(
                f"model {name!r} version {version!r} exists already with other bytes "
                f"(sha256 {existing.sha256[:12]}..., pushed {sha256[:12]}...); "
                "push the new file under a new version"
            )
        return existing, False

    @staticmethod
    def _select(name: str, version: str) -> sa.Select[Any]:
        table = schema.model_versions
        return sa.select(table).where(table.c.name == name, table.c.version == version)

    def get_model_version(self, name: str, version: str) -> ModelVersionRow | None:
        """The model version ``name@version``, or None."""
        with self._read() as connection:
            row = connection.execute(self._select(name, version)).first()
        return None if row is None else _row(row)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRow]:
        """Model versions (of ``name``, or of every model), by name, then oldest first."""
        table = schema.model_versions
        query = sa.select(table).order_by(table.c.name, table.c.created_at, table.c.id)
        if name is not None:
            query = query.where(table.c.name == name)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_row(row) for row in rows]

    def latest_model_version(self, name: str) -> ModelVersionRow | None:
        """The most recently pushed version of ``name``, or None."""
        table = schema.model_versions
        query = (
            sa.select(table)
            .where(table.c.name == name)
            .order_by(table.c.created_at.desc(), table.c.id.desc())
            .limit(1)
        )
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _row(row)
