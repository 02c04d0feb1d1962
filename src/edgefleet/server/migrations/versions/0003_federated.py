"""Federated learning: jobs, rounds, each device's part in a round; FL assignments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the federated tables; add the FL assignment to desired states."""
    op.create_table(
        "fl_jobs",
        sa.Column("job_id", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("job_id", name="pk_fl_jobs"),
    )
    op.create_index("ix_fl_jobs_state", "fl_jobs", ["state"])
    op.create_table(
        "fl_rounds",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("closed_at", TIME, nullable=True),
        sa.Column("model_hash", sa.String(16), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["fl_jobs.job_id"], name="fk_fl_rounds_job_id_fl_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "round", name="pk_fl_rounds"),
    )
    op.create_table(
        "fl_updates",
        sa.Column("id", ID, autoincrement=True, nullable=False),
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
            ["job_id", "round"],
            ["fl_rounds.job_id", "fl_rounds.round"],
            name="fk_fl_updates_job_id_round_fl_rounds",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fl_updates"),
        sa.UniqueConstraint(
            "job_id", "round", "device_id", name="uq_fl_updates_job_id_round_device_id"
        ),
    )
    with op.batch_alter_table("desired_states") as batch:
        batch.add_column(sa.Column("fl", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    with op.batch_alter_table("desired_states") as batch:
        batch.drop_column("fl")
    op.drop_table("fl_updates")
    op.drop_table("fl_rounds")
    op.drop_index("ix_fl_jobs_state", table_name="fl_jobs")
    op.drop_table("fl_jobs")
