"""The first schema: every table of the store.

Tokens, devices, desired states, model versions, releases, events, telemetry, TUF metadata,
settings and locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME: sa.Double[float] = sa.Double()


def _device_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["device_id"], ["devices.device_id"], name=name, ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every table of the store."""
    op.create_table(
        "operator_tokens",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operator_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_operator_tokens_token_hash"),
    )
    op.create_table(
        "enroll_tokens",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_enroll_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_enroll_tokens_token_hash"),
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("credential_hash", sa.String(128), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("inventory", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=False),
        sa.Column("telemetry_dropped", sa.BigInteger(), nullable=False),
        sa.Column("desired_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
        sa.UniqueConstraint("credential_hash", name="uq_devices_credential_hash"),
    )
    op.create_table(
        "desired_states",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("issued_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_desired_states"),
        _device_fk("fk_desired_states_device_id_devices"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("opset", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("memory_estimate_bytes", sa.BigInteger(), nullable=False),
        sa.Column("golden_sha256", sa.String(64), nullable=True),
        sa.Column("calibration", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )
    op.create_table(
        "release_counters",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("last_release", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_release_counters"),
    )
    op.create_table(
        "releases",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("release", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("name", "release", name="uq_releases_name_release"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_releases_name_version_model_versions",
        ),
    )
    op.create_index("ix_releases_name_version", "releases", ["name", "version"])
    op.create_table(
        "events",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("release", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("device_id", "event_id", name="uq_events_device_id_event_id"),
        _device_fk("fk_events_device_id_devices"),
    )
    op.create_index("ix_events_device_id_at", "events", ["device_id", "at"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "telemetry_windows",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("window_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("swaps", sa.Integer(), nullable=False),
        sa.Column("rollbacks", sa.Integer(), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry_windows"),
        sa.UniqueConstraint(
            "device_id", "window_id", name="uq_telemetry_windows_device_id_window_id"
        ),
        _device_fk("fk_telemetry_windows_device_id_devices"),
    )
    op.create_index(
        "ix_telemetry_windows_device_id_started_at",
        "telemetry_windows",
        ["device_id", "started_at"],
    )
    op.create_index(
        "ix_telemetry_windows_model_version_started_at",
        "telemetry_windows",
        ["model", "version", "started_at"],
    )
    op.create_table(
        "tuf_metadata",
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("filename", name="pk_tuf_metadata"),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )


def downgrade() -> None:
    """Drop every table of the store."""
    for table in (
        "locks",
        "settings",
        "tuf_metadata",
        "telemetry_windows",
        "events",
        "releases",
        "release_counters",
        "model_versions",
        "desired_states",
        "devices",
        "enroll_tokens",
        "operator_tokens",
    ):
        op.drop_table(table)
