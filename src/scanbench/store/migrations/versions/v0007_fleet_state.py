"""Pre-aggregated facts for the web application at national scale (issue 12,
bench/web.py): the fleet state of each device (``device_state``, filled for existing
devices by this migration), a version counter per kind of fact (``fact_version``) and
statistics kept with the version they were computed at (``stats_cache``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "device_state",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("failing_tests", sa.Integer(), nullable=False),
        sa.Column("alerts_failing", sa.Integer(), nullable=False),
        sa.Column("alerts_drifting", sa.Integer(), nullable=False),
        sa.Column("overdue_count", sa.Integer(), nullable=False),
        sa.Column("latest_at", sa.DateTime(), nullable=True),
        sa.Column("tests", sa.JSON(), nullable=False),
        sa.Column("alert_messages", sa.JSON(), nullable=False),
        sa.Column("overdue", sa.JSON(), nullable=False),
        sa.Column("due", sa.JSON(), nullable=False),
        sa.Column("overdue_as_of", sa.DateTime(), nullable=True),
        sa.Column("search", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"],
                                name=op.f("fk_device_state_device_id_device"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_state")),
    )
    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_state_rank"), ["rank"], unique=False)
    op.create_table(
        "fact_version",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_fact_version")),
    )
    op.create_table(
        "stats_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_stats_cache")),
    )
    # The existing devices' states, computed by the same code that keeps them.
    from sqlalchemy.orm import Session

    from scanbench.store import fleet_state

    with Session(bind=op.get_bind()) as session:
        fleet_state.rebuild(session)
        session.flush()


def downgrade() -> None:
    op.drop_table("stats_cache")
    op.drop_table("fact_version")
    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_state_rank"))
    op.drop_table("device_state")
