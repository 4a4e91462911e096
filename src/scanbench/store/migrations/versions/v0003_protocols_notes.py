"""Protocols for automatic analysis (versioned rows; a result names the version it
used), results that supersede earlier ones, a series job's inputs (the series it
analyses together, whether they wait for partners, the protocols used), measurement
notes (why a value was refused or not judged) and measurement statuses up to 24
characters (``outside_unconfirmed``: PostgreSQL enforces the length).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "protocol",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("manufacturer", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("analysis", sa.String(length=120), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"],
                                name=op.f("fk_protocol_device_id_device")),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_protocol_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol")),
        sa.UniqueConstraint("name", "version", name="uq_protocol_name_version"),
    )
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_result_protocol_id_protocol"), "protocol",
                                    ["protocol_id"], ["id"])
        batch_op.create_foreign_key(op.f("fk_result_supersedes_id_result"), "result",
                                    ["supersedes_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_result_supersedes_id"), ["supersedes_id"],
                              unique=False)
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=False,
                                      server_default=sa.text("'{}'")))
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.alter_column("status", existing_type=sa.String(length=8),
                              type_=sa.String(length=24), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.String(length=24),
                              type_=sa.String(length=8), existing_nullable=False)
        batch_op.drop_column("note")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("params")
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_supersedes_id"))
        batch_op.drop_constraint(op.f("fk_result_supersedes_id_result"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_result_protocol_id_protocol"), type_="foreignkey")
        batch_op.drop_column("supersedes_id")
        batch_op.drop_column("protocol_id")
    op.drop_table("protocol")
