"""The tables the store queries (SQLAlchemy Core).

This module describes the schema at the newest migration; the migrations in
:mod:`edgefleet.server.migrations` are what create and change it. A contract test compares the
two, so a change here without a revision fails.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "audit_log",
    "deployments",
    "desired_states",
    "devices",
    "enroll_tokens",
    "events",
    "fl_jobs",
    "fl_rounds",
    "fl_updates",
    "locks",
    "metadata",
    "model_versions",
    "operator_tokens",
    "release_counters",
    "releases",
    "rollout_events",
    "rollouts",
    "settings",
    "telemetry_windows",
    "tuf_metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names are fixed so that later revisions can refer to them on both dialects."""

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Surrogate keys: 64-bit on PostgreSQL; SQLite only auto-increments an INTEGER primary key."""

TIME: sa.Double[float] = sa.Double()
"""Float Unix seconds."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

operator_tokens = sa.Table(
    "operator_tokens",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)

enroll_tokens = sa.Table(
    "enroll_tokens",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("labels", sa.JSON(), nullable=False),
    sa.Column("uses", sa.Integer(), nullable=True),
    sa.Column("remaining", sa.Integer(), nullable=True),
    sa.Column("expires_at", TIME, nullable=True),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("revoked_at", TIME, nullable=True),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("credential_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("labels", sa.JSON(), nullable=False),
    sa.Column("inventory", sa.JSON(), nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("enrolled_at", TIME, nullable=False),
    sa.Column("last_seen_at", TIME, nullable=False),
    sa.Column("telemetry_dropped", sa.BigInteger(), nullable=False),
    sa.Column("desired_version", sa.BigInteger(), nullable=False),
    sa.Column("decommissioned_at", TIME, nullable=True),
)
"""Enrolled devices. A decommissioned one keeps its row (and history) but no usable credential."""

desired_states = sa.Table(
    "desired_states",
    metadata,
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.device_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("model", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("issued_at", TIME, nullable=False),
    sa.Column("expires_at", TIME, nullable=False),
    sa.Column("shadow", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("fl", sa.JSON(none_as_null=True), nullable=True),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
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
    sa.UniqueConstraint("name", "version"),
)

release_counters = sa.Table(
    "release_counters",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("last_release", sa.BigInteger(), nullable=False),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("release", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("length", sa.BigInteger(), nullable=False),
    sa.Column("custom", sa.JSON(), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.UniqueConstraint("name", "release"),
    sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
    sa.Index(None, "name", "version"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.device_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("at", TIME, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("release", sa.BigInteger(), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.UniqueConstraint("device_id", "event_id"),
    sa.Index(None, "device_id", "at"),
    sa.Index(None, "at"),
)

telemetry_windows = sa.Table(
    "telemetry_windows",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.device_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("window_id", sa.String(64), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("ended_at", TIME, nullable=False),
    sa.Column("snapshot", sa.JSON(), nullable=False),
    sa.Column("swaps", sa.Integer(), nullable=False),
    sa.Column("rollbacks", sa.Integer(), nullable=False),
    sa.Column("received_at", TIME, nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="active"),
    sa.Column("shadow", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("device_id", "window_id"),
    sa.Index(None, "device_id", "started_at"),
    sa.Index(None, "model", "version", "started_at"),
)

tuf_metadata = sa.Table(
    "tuf_metadata",
    metadata,
    sa.Column("filename", sa.String(255), primary_key=True),
    sa.Column("body", sa.LargeBinary(), nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", TIME, nullable=False),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("candidate", sa.JSON(), nullable=False),
    sa.Column("previous", sa.JSON(), nullable=False),
    sa.Column("selector", sa.JSON(), nullable=False),
    sa.Column("plan", sa.JSON(), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("stage", sa.Integer(), nullable=False),
    sa.Column("stage_started_at", TIME, nullable=False),
    sa.Column("status", sa.JSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("updated_at", TIME, nullable=False),
    sa.Index(None, "state"),
)
"""Rollouts and A/B experiments. ``revision`` grows with every transition (compare-and-set)."""

rollout_events = sa.Table(
    "rollout_events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "rollout_id",
        sa.String(64),
        sa.ForeignKey("rollouts.rollout_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("at", TIME, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Index(None, "rollout_id", "at"),
)

fl_jobs = sa.Table(
    "fl_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("base_version", sa.String(200), nullable=False),
    sa.Column("task", sa.String(200), nullable=False),
    sa.Column("selector", sa.JSON(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("round", sa.Integer(), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("strategy_state", sa.JSON(), nullable=False),
    sa.Column("privacy_state", sa.JSON(), nullable=False),
    sa.Column("result_version", sa.String(200), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("updated_at", TIME, nullable=False),
    sa.Index(None, "state"),
)
"""Federated jobs. ``model_sha256`` names the artifact of the current global parameters."""

fl_rounds = sa.Table(
    "fl_rounds",
    metadata,
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("fl_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("round", sa.Integer(), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("opened_at", TIME, nullable=False),
    sa.Column("deadline", TIME, nullable=False),
    sa.Column("closed_at", TIME, nullable=True),
    sa.Column("model_hash", sa.String(16), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("result", sa.JSON(), nullable=False),
)
"""One row per round: its global model (artifact), deadline, and once closed what came of it."""

fl_updates = sa.Table(
    "fl_updates",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("round", sa.Integer(), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("num_examples", sa.BigInteger(), nullable=False),
    sa.Column("bytes_up", sa.BigInteger(), nullable=False),
    sa.Column("bytes_down", sa.BigInteger(), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=True),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("updated_at", TIME, nullable=False),
    sa.ForeignKeyConstraint(
        ["job_id", "round"], ["fl_rounds.job_id", "fl_rounds.round"], ondelete="CASCADE"
    ),
    sa.UniqueConstraint("job_id", "round", "device_id"),
)
"""A device's part in a round: ``assigned``, then ``accepted`` or ``rejected`` (with a reason).

Updates that arrive from devices not selected, or after the round closed, are refused and
counted on the round instead (no row: the device had no part in it).
"""

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("release", sa.BigInteger(), nullable=False),
    sa.Column("selector", sa.JSON(), nullable=False),
    sa.Column("devices", sa.JSON(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Index(None, "created_at"),
)
"""Every deployment an operator made: what, to which selector, which devices it reached then."""

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("at", TIME, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("outcome", sa.String(500), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Index(None, "at"),
)
"""Operator actions and the server's automatic decisions: who, when, on what, with what result."""
