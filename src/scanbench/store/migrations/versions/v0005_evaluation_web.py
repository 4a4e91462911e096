"""The data model of evaluation and the web pages, designed once (issues 12 and 13):
device class attributes (field strength, PET axial FOV, country of manufacture) and
staffed hours; lifecycle events with the reliability kinds (downtime as a start/end
pair), cost, a user-marked new baseline and an import id; telemetry samples; device
costs; spec provenance and spec assignments by device class; versioned scorecards;
alerts and their notifications.

Old lifecycle kinds are renamed: service -> unplanned_service, decommission ->
decommissioning, downtime (with ended_at) -> downtime_start (+ downtime_end).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _lifecycle_kinds_up() -> None:
    conn = op.get_bind()
    ev = sa.table(
        "lifecycle_event",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("device_id", sa.Integer),
        sa.column("occurred_at", sa.DateTime),
        sa.column("ended_at", sa.DateTime),
        sa.column("summary", sa.Text),
        sa.column("details", sa.JSON),
        sa.column("source", sa.String),
        sa.column("user_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    for old, new in (("service", "unplanned_service"), ("decommission", "decommissioning")):
        conn.execute(ev.update().where(ev.c.kind == old).values(kind=new))
    rows = conn.execute(sa.select(ev).where(ev.c.kind == "downtime")).mappings().all()
    for r in rows:
        conn.execute(ev.update().where(ev.c.id == r["id"]).values(kind="downtime_start"))
        if r["ended_at"] is not None:
            conn.execute(
                ev.insert().values(
                    kind="downtime_end",
                    device_id=r["device_id"],
                    occurred_at=r["ended_at"],
                    summary=r["summary"],
                    details={"ends": r["id"]},
                    source=r["source"],
                    user_id=r["user_id"],
                    created_at=r["created_at"],
                )
            )


def _lifecycle_kinds_down() -> None:
    conn = op.get_bind()
    ev = sa.table("lifecycle_event", sa.column("kind", sa.String))
    for old, new in (
        ("service", "unplanned_service"),
        ("service", "planned_service"),
        ("decommission", "decommissioning"),
        ("downtime", "downtime_start"),
    ):
        conn.execute(ev.update().where(ev.c.kind == new).values(kind=old))
    conn.execute(ev.delete().where(ev.c.kind == "downtime_end"))


def upgrade() -> None:
    op.create_table(
        "notification_target",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_notification_target_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_target")),
    )
    op.create_table(
        "spec_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spec_name", sa.String(length=120), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("manufacturer", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("field_strength_min_t", sa.Float(), nullable=True),
        sa.Column("field_strength_max_t", sa.Float(), nullable=True),
        sa.Column("axial_fov_min_cm", sa.Float(), nullable=True),
        sa.Column("axial_fov_max_cm", sa.Float(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("valid_until", sa.DateTime(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_spec_assignment_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_spec_assignment_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_spec_assignment_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spec_assignment")),
    )
    with op.batch_alter_table("spec_assignment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spec_assignment_spec_name"), ["spec_name"], unique=False
        )

    op.create_table(
        "telemetry_sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_telemetry_sample_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_sample")),
        sa.UniqueConstraint(
            "device_id", "channel", "at", name="uq_telemetry_sample_device_channel_at"
        ),
    )
    op.create_table(
        "device_cost",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_on", sa.Date(), nullable=False),
        sa.Column("end_on", sa.Date(), nullable=True),
        sa.Column("life_years", sa.Float(), nullable=True),
        sa.Column("residual", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("lifecycle_event_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_device_cost_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lifecycle_event_id"],
            ["lifecycle_event.id"],
            name=op.f("fk_device_cost_lifecycle_event_id_lifecycle_event"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_device_cost_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_cost")),
    )
    with op.batch_alter_table("device_cost", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_cost_device_start", ["device_id", "start_on"], unique=False
        )

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("analysis", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("labels_key", sa.String(length=400), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("first_at", sa.DateTime(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("limit_source", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("ack_user_id", sa.Integer(), nullable=True),
        sa.Column("ack_at", sa.DateTime(), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.Column("closing_result_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ack_user_id"], ["user_account.id"], name=op.f("fk_alert_ack_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["closing_result_id"],
            ["result.id"],
            name=op.f("fk_alert_closing_result_id_result"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_alert_device_id_device"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["result.id"],
            name=op.f("fk_alert_result_id_result"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_key")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_device_state", ["device_id", "state"], unique=False)

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("digest_day", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
            name=op.f("fk_notification_alert_id_alert"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["notification_target.id"],
            name=op.f("fk_notification_target_id_notification_target"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("key", name=op.f("uq_notification_key")),
    )
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("field_strength_t", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("axial_fov_cm", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("country_of_manufacture", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("staffed_hours", sa.JSON(), nullable=False, server_default="{}")
        )

    _lifecycle_kinds_up()

    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("planned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("new_baseline", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("cost", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(
            "uq_lifecycle_event_device_external", ["device_id", "external_id"]
        )
        batch_op.drop_column("ended_at")

    with op.batch_alter_table("scorecard", schema=None) as batch_op:
        batch_op.add_column(sa.Column("compliance", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("inputs_hash", sa.String(length=64), nullable=True))
        batch_op.alter_column(
            "status",
            existing_type=sa.VARCHAR(length=16),
            type_=sa.String(length=24),
            existing_nullable=False,
        )
        batch_op.create_unique_constraint(
            "uq_scorecard_device_spec_inputs", ["device_id", "spec_id", "inputs_hash"]
        )

    with op.batch_alter_table("spec", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("extends", sa.String(length=120), nullable=True))
        batch_op.add_column(
            sa.Column("origin", sa.String(length=300), nullable=False, server_default="")
        )
        # the shipped specs' versions are sentences (up to 112 characters)
        batch_op.alter_column(
            "version",
            existing_type=sa.String(length=32),
            type_=sa.String(length=300),
            existing_nullable=False,
        )

    # indexes asked for by the fleet page (newest result per device and analysis) and
    # the device page / alerts (one labelled measurement series in time order)
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.create_index(
            "ix_result_device_analysis_acquired",
            ["device_id", "analysis", "acquired_at"],
            unique=False,
        )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measurement_series",
            ["device_id", "analysis", "name", "labels_key", "acquired_at"],
            unique=False,
        )
    # the dose and workflow statistics over a period for every visible device
    with op.batch_alter_table("dose_event", schema=None) as batch_op:
        batch_op.create_index("ix_dose_event_kind_time", ["kind", "occurred_at"], unique=False)
    with op.batch_alter_table("exam_timing", schema=None) as batch_op:
        batch_op.create_index("ix_exam_timing_time", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exam_timing", schema=None) as batch_op:
        batch_op.drop_index("ix_exam_timing_time")
    with op.batch_alter_table("dose_event", schema=None) as batch_op:
        batch_op.drop_index("ix_dose_event_kind_time")
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_index("ix_measurement_series")
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.drop_index("ix_result_device_analysis_acquired")
    with op.batch_alter_table("spec", schema=None) as batch_op:
        batch_op.alter_column(
            "version",
            existing_type=sa.String(length=300),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
        batch_op.drop_column("origin")
        batch_op.drop_column("extends")
        batch_op.drop_column("sha256")

    with op.batch_alter_table("scorecard", schema=None) as batch_op:
        batch_op.drop_constraint("uq_scorecard_device_spec_inputs", type_="unique")
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=24),
            type_=sa.VARCHAR(length=16),
            existing_nullable=False,
        )
        batch_op.drop_column("inputs_hash")
        batch_op.drop_column("compliance")

    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(), nullable=True))
        batch_op.drop_constraint("uq_lifecycle_event_device_external", type_="unique")
        batch_op.drop_column("external_id")
        batch_op.drop_column("currency")
        batch_op.drop_column("cost")
        batch_op.drop_column("new_baseline")
        batch_op.drop_column("planned")

    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("staffed_hours")
        batch_op.drop_column("country_of_manufacture")
        batch_op.drop_column("axial_fov_cm")
        batch_op.drop_column("field_strength_t")

    op.drop_table("notification")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_device_state")

    op.drop_table("alert")
    with op.batch_alter_table("device_cost", schema=None) as batch_op:
        batch_op.drop_index("ix_device_cost_device_start")

    op.drop_table("device_cost")
    op.drop_table("telemetry_sample")
    with op.batch_alter_table("spec_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spec_assignment_spec_name"))

    op.drop_table("spec_assignment")
    op.drop_table("notification_target")

    _lifecycle_kinds_down()
