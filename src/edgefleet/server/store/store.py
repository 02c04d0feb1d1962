"""The control plane's store: :func:`open_store` and :class:`Store`."""

from __future__ import annotations

from types import TracebackType

from alembic.util.exc import CommandError
from sqlalchemy import exc

from edgefleet.errors import StoreError
from edgefleet.server.store import _migrate
from edgefleet.server.store._engine import create_store_engine, describe_error
from edgefleet.server.store.audit import AuditStore
from edgefleet.server.store.desired_states import DesiredStateStore
from edgefleet.server.store.devices import DeviceStore
from edgefleet.server.store.events import EventStore
from edgefleet.server.store.fl_jobs import FLStore
from edgefleet.server.store.fl_regional import FLRegionalStore
from edgefleet.server.store.locks import LockStore
from edgefleet.server.store.model_versions import ModelVersionStore
from edgefleet.server.store.releases import ReleaseStore
from edgefleet.server.store.rollouts import RolloutStore
from edgefleet.server.store.settings import SettingStore
from edgefleet.server.store.telemetry import TelemetryStore
from edgefleet.server.store.tokens import TokenStore
from edgefleet.server.store.tuf_metadata import MetadataStore

__all__ = ["Store", "open_store"]


class Store(
    TokenStore,
    DeviceStore,
    DesiredStateStore,
    ModelVersionStore,
    ReleaseStore,
    RolloutStore,
    FLStore,
    FLRegionalStore,
    EventStore,
    TelemetryStore,
    MetadataStore,
    SettingStore,
    LockStore,
    AuditStore,
):
    """Everything the control plane keeps in its database (SQLite file or PostgreSQL).

    Thread-safe: every method checks a connection out of the engine's pool for one
    transaction. Several processes may share one database. Reads return frozen rows from
    :mod:`edgefleet.server.store.rows`. Unexpected database failures raise
    :class:`edgefleet.errors.StoreError`.

    Create it with :func:`open_store`; call :meth:`migrate` before first use.
    """

    def migrate(self) -> None:
        """Bring the schema up to the newest revision (alembic ``upgrade head``).

        Safe to call from several processes at once, and cheap when there is nothing to do.

        Raises
        ------
        StoreError
            A migration failed (the database is left at the revision it had).
        """
        try:
            _migrate.upgrade(self._writer)
        except (exc.SQLAlchemyError, CommandError) as error:
            detail = describe_error(error, self._engine.url)
            if "Can't locate revision" in detail:
                detail += " (was the database migrated by a newer edgefleet?)"
            raise StoreError(f"cannot migrate {self.url}: {detail}") from error

    def schema_revision(self) -> str | None:
        """The alembic revision of the database (None before :meth:`migrate`)."""
        try:
            return _migrate.current_revision(self._engine)
        except exc.SQLAlchemyError as error:
            raise self._store_error(error) from error

    @staticmethod
    def head_revision() -> str:
        """The newest revision this version of edgefleet ships."""
        return _migrate.head_revision()

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


def open_store(url: str) -> Store:
    """Open the store at ``url`` and check that the database can be reached.

    Parameters
    ----------
    url
        ``sqlite:///PATH`` (a file; its folder must exist) or
        ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE`` (``postgresql://`` is read
        as psycopg 3).

    Returns
    -------
    Store
        Open; run :meth:`Store.migrate` before the first use of a new database.

    Raises
    ------
    StoreError
        The URL is malformed or unsupported, or the database cannot be reached. The message
        names the URL with its password masked.

    Examples
    --------
    >>> import tempfile, time
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with open_store(f"sqlite:///{folder}/edgefleet.db") as store:
    ...         store.migrate()
    ...         store.set_setting("greeting", "hello")
    ...         store.get_setting("greeting")
    'hello'
    """
    return Store(create_store_engine(url))
