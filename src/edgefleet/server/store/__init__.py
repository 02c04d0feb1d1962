"""The control plane's store: SQLAlchemy Core on a SQLite file or PostgreSQL.

:func:`open_store` opens it; :meth:`Store.migrate` applies the alembic migrations shipped in
:mod:`edgefleet.server.migrations`. Every read returns the frozen rows of
:mod:`edgefleet.server.store.rows`. Timestamps are float Unix seconds chosen by the caller
(``now``), so that tests and server replicas control the clock.
"""

from __future__ import annotations

from edgefleet.server.store.rows import (
    DesiredStateRow,
    DeviceRow,
    EnrollTokenRow,
    EventRow,
    FLJobRow,
    FLRoundRow,
    FLUpdateRow,
    HeartbeatRow,
    ModelVersionRow,
    OperatorTokenRow,
    ReleaseRow,
    RolloutEventRow,
    RolloutRow,
    TelemetryBatchRow,
    TelemetryRow,
)
from edgefleet.server.store.store import Store, open_store

__all__ = [
    "DesiredStateRow",
    "DeviceRow",
    "EnrollTokenRow",
    "EventRow",
    "FLJobRow",
    "FLRoundRow",
    "FLUpdateRow",
    "HeartbeatRow",
    "ModelVersionRow",
    "OperatorTokenRow",
    "ReleaseRow",
    "RolloutEventRow",
    "RolloutRow",
    "Store",
    "TelemetryBatchRow",
    "TelemetryRow",
    "open_store",
]
