"""job engine: procrastinate's queue schema on PostgreSQL; periodic runs and job failures everywhere

Revision ID: b7d3f1a9c2e4
Revises: b5d81f3a7c42
Create Date: 2026-12-06 15:30:00

The queue (jobs, their events, periodic defers, workers) is procrastinate's own schema, applied
from the installed package on PostgreSQL only; SQLite runs jobs in process and has no queue.
procrastinate is pinned to one minor version: moving to a newer one needs a migration that applies
the files in procrastinate/sql/migrations newer than the pinned version, in order.
Its tables are not our models: migrations/env.py and tests/test_schema.py leave every object named
procrastinate_* alone.
"""
from alembic import op
import sqlalchemy as sa

revision = "b7d3f1a9c2e4"
down_revision = "b5d81f3a7c42"
branch_labels = None
depends_on = None

PROCRASTINATE_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                        "procrastinate_workers")
PROCRASTINATE_TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def upgrade():
    op.create_table(
        "periodic_run",
        sa.Column("task_name", sa.String(length=128), nullable=False),
        sa.Column("tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("task_name", name=op.f("pk_periodic_run")),
    )
    op.create_table(
        "job_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("task_name", sa.String(length=128), nullable=False),
        sa.Column("args_json", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_failure")),
    )
    with op.batch_alter_table("job_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_failure_job_id"), ["job_id"], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # the driver's own execute: several statements in one string, and no parameter parsing
        # of the '%' in the functions' messages
        bind.connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TABLE IF EXISTS {', '.join(PROCRASTINATE_TABLES)} CASCADE")
        op.execute(
            "DO $$ DECLARE f record; BEGIN FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema() "
            "AND p.proname LIKE 'procrastinate\\_%' LOOP EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE'; "
            "END LOOP; END $$"
        )
        op.execute(f"DROP TYPE IF EXISTS {', '.join(PROCRASTINATE_TYPES)} CASCADE")
    with op.batch_alter_table("job_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_failure_job_id"))
    op.drop_table("job_failure")
    op.drop_table("periodic_run")
