"""The programme layer's data model (issue 14), designed in one step: federation
(central: site credentials, received batches and records; site: the central peer and the
ordered outbox), expert review (central reviews with triage score; site: decisions
received), reader studies (cases, readers' randomised orders, scores), System Usability
Scale responses, training records and competency quiz attempts. The reviewer role needs
no schema change (roles are strings).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "fed_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("batch_uid", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_outbox")),
        sa.UniqueConstraint("record_key", name=op.f("uq_fed_outbox_record_key")),
    )
    with op.batch_alter_table("fed_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fed_outbox_sent_at"), ["sent_at"], unique=False)

    op.create_table(
        "fed_peer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("site_uid", sa.String(length=120), nullable=False),
        sa.Column("last_acked_seq", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_peer")),
        sa.UniqueConstraint("url", name=op.f("uq_fed_peer_url")),
    )
    op.create_table(
        "fed_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_fed_credential_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_credential")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_fed_credential_token_hash")),
    )
    with op.batch_alter_table("fed_credential", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fed_credential_site_id"), ["site_id"], unique=False)

    op.create_table(
        "quiz_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("procedure_key", sa.String(length=120), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("pass_mark", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_quiz_attempt_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quiz_attempt")),
    )
    with op.batch_alter_table("quiz_attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quiz_attempt_user_procedure", ["user_id", "procedure_key"], unique=False
        )

    op.create_table(
        "reader_study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("scale_min", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("blinded", sa.Boolean(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["user_account.id"],
            name=op.f("fk_reader_study_created_by_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_reader_study_site_id_site"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_study")),
        sa.UniqueConstraint("name", name=op.f("uq_reader_study_name")),
    )
    op.create_table(
        "fed_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=True),
        sa.Column("batch_uid", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["fed_credential.id"],
            name=op.f("fk_fed_batch_credential_id_fed_credential"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_fed_batch_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_batch")),
        sa.UniqueConstraint("site_id", "batch_uid", name="uq_fed_batch_site_uid"),
    )
    op.create_table(
        "reader_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("case_order", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["reader_study.id"],
            name=op.f("fk_reader_assignment_study_id_reader_study"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_reader_assignment_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_assignment")),
        sa.UniqueConstraint("study_id", "user_id", name="uq_reader_assignment_study_user"),
    )
    op.create_table(
        "sus_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_sus_response_device_id_device"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_sus_response_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sus_response")),
    )
    with op.batch_alter_table("sus_response", schema=None) as batch_op:
        batch_op.create_index("ix_sus_response_device_at", ["device_id", "at"], unique=False)

    op.create_table(
        "training_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("procedure_key", sa.String(length=120), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_training_record_device_id_device"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_training_record_site_id_site"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_training_record_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_record")),
    )
    with op.batch_alter_table("training_record", schema=None) as batch_op:
        batch_op.create_index("ix_training_record_user_topic", ["user_id", "topic"], unique=False)

    op.create_table(
        "fed_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("local_table", sa.String(length=64), nullable=True),
        sa.Column("local_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["fed_batch.id"],
            name=op.f("fk_fed_record_batch_id_fed_batch"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_fed_record_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fed_record")),
        sa.UniqueConstraint("site_id", "record_key", name="uq_fed_record_site_key"),
    )
    with op.batch_alter_table("fed_record", schema=None) as batch_op:
        batch_op.create_index("ix_fed_record_site_seq", ["site_id", "seq"], unique=False)

    op.create_table(
        "reader_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("pair_key", sa.String(length=120), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
            name=op.f("fk_reader_case_device_id_device"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_reader_case_series_id_series"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["reader_study.id"],
            name=op.f("fk_reader_case_study_id_reader_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_case")),
    )
    with op.batch_alter_table("reader_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reader_case_study_id"), ["study_id"], unique=False)

    op.create_table(
        "reader_score",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("criterion", sa.String(length=120), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["reader_case.id"],
            name=op.f("fk_reader_score_case_id_reader_case"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["reader_study.id"],
            name=op.f("fk_reader_score_study_id_reader_study"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_reader_score_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_score")),
        sa.UniqueConstraint(
            "case_id", "user_id", "criterion", name="uq_reader_score_case_user_criterion"
        ),
    )
    with op.batch_alter_table("reader_score", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reader_score_study_id"), ["study_id"], unique=False)

    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("triage_score", sa.Float(), nullable=True),
        sa.Column("triage_drivers", sa.JSON(), nullable=False),
        sa.Column("triage_model", sa.String(length=200), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_back_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["result.id"],
            name=op.f("fk_review_result_id_result"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["user_account.id"], name=op.f("fk_review_reviewer_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_review_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review")),
        sa.UniqueConstraint("result_id", name=op.f("uq_review_result_id")),
    )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.create_index("ix_review_state_score", ["state", "triage_score"], unique=False)

    op.create_table(
        "review_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("remote_key", sa.String(length=200), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["result.id"],
            name=op.f("fk_review_decision_result_id_result"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decision")),
        sa.UniqueConstraint("remote_key", name=op.f("uq_review_decision_remote_key")),
    )
    with op.batch_alter_table("review_decision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_decision_result_id"), ["result_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_decision_result_id"))

    op.drop_table("review_decision")
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index("ix_review_state_score")

    op.drop_table("review")
    with op.batch_alter_table("reader_score", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reader_score_study_id"))

    op.drop_table("reader_score")
    with op.batch_alter_table("reader_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reader_case_study_id"))

    op.drop_table("reader_case")
    with op.batch_alter_table("fed_record", schema=None) as batch_op:
        batch_op.drop_index("ix_fed_record_site_seq")

    op.drop_table("fed_record")
    with op.batch_alter_table("training_record", schema=None) as batch_op:
        batch_op.drop_index("ix_training_record_user_topic")

    op.drop_table("training_record")
    with op.batch_alter_table("sus_response", schema=None) as batch_op:
        batch_op.drop_index("ix_sus_response_device_at")

    op.drop_table("sus_response")
    op.drop_table("reader_assignment")
    op.drop_table("fed_batch")
    op.drop_table("reader_study")
    with op.batch_alter_table("quiz_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_quiz_attempt_user_procedure")

    op.drop_table("quiz_attempt")
    with op.batch_alter_table("fed_credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_credential_site_id"))

    op.drop_table("fed_credential")
    op.drop_table("fed_peer")
    with op.batch_alter_table("fed_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_outbox_sent_at"))

    op.drop_table("fed_outbox")
