"""Initial schema: sites, devices and aliases, the DICOM hierarchy, results and
measurements, dose events, exam timings, lifecycle events, specs, scorecards, users,
roles, audit entries, jobs. UTC instants are plain DateTime columns holding naive UTC
(models.UTCDateTime converts); a migration never imports the live models.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 16:19:37.113877
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_uid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_state", ["state"], unique=False)

    op.create_table(
        "role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role")),
        sa.UniqueConstraint("name", name=op.f("uq_role_name")),
    )
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("name", name=op.f("uq_site_name")),
    )
    op.create_table(
        "spec",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spec")),
        sa.UniqueConstraint("name", "version", name="uq_spec_name_version"),
    )
    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_key", sa.String(length=400), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("manufacturer", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("serial", sa.String(length=200), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("software_versions", sa.String(length=400), nullable=True),
        sa.Column("software_seen_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_device_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("identity_key", name=op.f("uq_device_identity_key")),
    )
    op.create_table(
        "study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("accession_number", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("study_datetime", sa.DateTime(), nullable=True),
        sa.Column("first_received_at", sa.DateTime(), nullable=False),
        sa.Column("clinical_state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_study_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_study_study_uid")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_study_clinical_state"), ["clinical_state"], unique=False
        )

    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_user_account_site_id_site")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("username", name=op.f("uq_user_account_username")),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("client", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_audit_entry_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_entry_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "device_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_device_alias_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_alias")),
        sa.UniqueConstraint("device_id", "kind", "value", name="uq_device_alias_device_kind_value"),
    )
    with op.batch_alter_table("device_alias", schema=None) as batch_op:
        batch_op.create_index("ix_device_alias_kind_value", ["kind", "value"], unique=False)

    op.create_table(
        "dose_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_uid", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("protocol", sa.String(length=200), nullable=True),
        sa.Column("ctdivol_mgy", sa.Float(), nullable=True),
        sa.Column("dlp_mgycm", sa.Float(), nullable=True),
        sa.Column("ssde_mgy", sa.Float(), nullable=True),
        sa.Column("administered_activity_mbq", sa.Float(), nullable=True),
        sa.Column("effective_dose_msv", sa.Float(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_dose_event_device_id_device")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_dose_event_job_id_job")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_dose_event_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dose_event")),
    )
    with op.batch_alter_table("dose_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dose_event_device_time", ["device_id", "occurred_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dose_event_study_id"), ["study_id"], unique=False)

    op.create_table(
        "exam_timing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_exam_timing_device_id_device")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_exam_timing_job_id_job")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_exam_timing_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_timing")),
    )
    with op.batch_alter_table("exam_timing", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exam_timing_device_start", ["device_id", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_exam_timing_study_id"), ["study_id"], unique=False)

    op.create_table(
        "lifecycle_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_lifecycle_event_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_lifecycle_event_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_event")),
    )
    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lifecycle_event_device_time", ["device_id", "occurred_at"], unique=False
        )

    op.create_table(
        "scorecard",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("spec_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=True),
        sa.Column("period_end", sa.DateTime(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_scorecard_device_id_device")
        ),
        sa.ForeignKeyConstraint(["spec_id"], ["spec.id"], name=op.f("fk_scorecard_spec_id_spec")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scorecard")),
    )
    with op.batch_alter_table("scorecard", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scorecard_device_created", ["device_id", "created_at"], unique=False
        )

    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
        sa.Column("utc_offset_min", sa.Integer(), nullable=True),
        sa.Column("software_versions", sa.String(length=400), nullable=True),
        sa.Column("first_received_at", sa.DateTime(), nullable=False),
        sa.Column("last_received", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("analysis", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_series_device_id_device")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_series_study_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_series_series_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            "ix_series_state_last_received", ["state", "last_received"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_series_study_id"), ["study_id"], unique=False)

    op.create_table(
        "user_role",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_id"], ["role.id"], name=op.f("fk_user_role_role_id_role"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_user_role_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_role")),
    )
    op.create_table(
        "instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=True),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("transfer_syntax", sa.String(length=64), nullable=True),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_instance_series_id_series")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance")),
        sa.UniqueConstraint("sop_uid", name=op.f("uq_instance_sop_uid")),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_series_id"), ["series_id"], unique=False)

    op.create_table(
        "result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("analysis", sa.String(length=120), nullable=False),
        sa.Column("standard", sa.String(length=300), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=True),
        sa.Column("spec", sa.String(length=120), nullable=True),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
        sa.Column("utc_offset_min", sa.Integer(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("scanbench_version", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_result_device_id_device")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_result_job_id_job")),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_result_series_id_series")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result")),
    )
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_result_series_id"), ["series_id"], unique=False)

    op.create_table(
        "measurement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("analysis", sa.String(length=120), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("labels_key", sa.String(length=400), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=True),
        sa.Column("limit_low", sa.Float(), nullable=True),
        sa.Column("limit_high", sa.Float(), nullable=True),
        sa.Column("limit_source", sa.Text(), nullable=True),
        sa.Column("limit_verified", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_measurement_device_id_device")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["result.id"],
            name=op.f("fk_measurement_result_id_result"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement")),
    )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measurement_history", ["device_id", "analysis", "name", "acquired_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_measurement_result_id"), ["result_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measurement_result_id"))
        batch_op.drop_index("ix_measurement_history")

    op.drop_table("measurement")
    with op.batch_alter_table("result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_series_id"))
        batch_op.drop_index(batch_op.f("ix_result_device_id"))

    op.drop_table("result")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_series_id"))

    op.drop_table("instance")
    op.drop_table("user_role")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_id"))
        batch_op.drop_index("ix_series_state_last_received")
        batch_op.drop_index(batch_op.f("ix_series_device_id"))

    op.drop_table("series")
    with op.batch_alter_table("scorecard", schema=None) as batch_op:
        batch_op.drop_index("ix_scorecard_device_created")

    op.drop_table("scorecard")
    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.drop_index("ix_lifecycle_event_device_time")

    op.drop_table("lifecycle_event")
    with op.batch_alter_table("exam_timing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_timing_study_id"))
        batch_op.drop_index("ix_exam_timing_device_start")

    op.drop_table("exam_timing")
    with op.batch_alter_table("dose_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dose_event_study_id"))
        batch_op.drop_index("ix_dose_event_device_time")

    op.drop_table("dose_event")
    with op.batch_alter_table("device_alias", schema=None) as batch_op:
        batch_op.drop_index("ix_device_alias_kind_value")

    op.drop_table("device_alias")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_entity")
        batch_op.drop_index(batch_op.f("ix_audit_entry_at"))

    op.drop_table("audit_entry")
    op.drop_table("user_account")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_clinical_state"))

    op.drop_table("study")
    op.drop_table("device")
    op.drop_table("spec")
    op.drop_table("site")
    op.drop_table("role")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_state")

    op.drop_table("job")
