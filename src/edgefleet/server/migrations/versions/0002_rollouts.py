"""Rollouts: plans and their state, a timeline of events; shadow telemetry; shadow desired states.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the rollout tables; add the shadow columns."""
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("rollout_id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "rollout_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.rollout_id"],
            name="fk_rollout_events_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_events"),
    )
    op.create_index("ix_rollout_events_rollout_id_at", "rollout_events", ["rollout_id", "at"])
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("shadow", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("desired_states") as batch:
        batch.add_column(sa.Column("shadow", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    with op.batch_alter_table("desired_states") as batch:
        batch.drop_column("shadow")
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.drop_column("shadow")
        batch.drop_column("role")
    op.drop_index("ix_rollout_events_rollout_id_at", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ix_rollouts_state", table_name="rollouts")
    op.drop_table("rollouts")
