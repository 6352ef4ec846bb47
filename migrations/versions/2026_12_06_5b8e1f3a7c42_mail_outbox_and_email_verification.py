"""mail: the outbox of messages, the embedded mailbox, and when a user's email was verified

Revision ID: 5b8e1f3a7c42
Revises: b7d3f1a9c2e4
Create Date: 2026-12-06 15:30:00

Accounts that exist before this revision signed up when no address was checked and have bought
and tried things since; they are treated as verified (from their creation time) so nobody who
could buy yesterday is refused today. Accounts created from now on verify by mail.
"""
from alembic import op
import sqlalchemy as sa

revision = "5b8e1f3a7c42"
down_revision = "b7d3f1a9c2e4"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mail_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], name=op.f("fk_mail_message_user_id_user_account"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_message")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_mail_message_dedupe_key")),
    )
    with op.batch_alter_table("mail_message", schema=None) as batch_op:
        batch_op.create_index("ix_mail_message_status_id", ["status", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mail_message_to_address"), ["to_address"], unique=False)
        batch_op.create_index(batch_op.f("ix_mail_message_user_id"), ["user_id"], unique=False)

    op.create_table(
        "outbox_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id_header", sa.String(length=300), nullable=False),
        sa.Column("from_address", sa.String(length=300), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_delivery")),
    )
    with op.batch_alter_table("outbox_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_delivery_to_address"), ["to_address"], unique=False)

    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE user_account SET email_verified_at = created_at")


def downgrade():
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
    with op.batch_alter_table("outbox_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_delivery_to_address"))
    op.drop_table("outbox_delivery")
    with op.batch_alter_table("mail_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_message_user_id"))
        batch_op.drop_index(batch_op.f("ix_mail_message_to_address"))
        batch_op.drop_index("ix_mail_message_status_id")
    op.drop_table("mail_message")
