"""Fleet lifecycle and audit: decommissions, token revocation, deployments, the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Add the lifecycle columns and the deployments and audit tables."""
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("decommissioned_at", TIME, nullable=True))
    with op.batch_alter_table("enroll_tokens") as batch:
        batch.add_column(sa.Column("revoked_at", TIME, nullable=True))
    op.create_table(
        "deployments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("release", sa.BigInteger(), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index("ix_deployments_created_at", "deployments", ["created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(500), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_deployments_created_at", table_name="deployments")
    op.drop_table("deployments")
    with op.batch_alter_table("enroll_tokens") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("decommissioned_at")
