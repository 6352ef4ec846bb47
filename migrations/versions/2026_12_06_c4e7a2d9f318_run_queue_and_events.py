"""runs outside the request: queued runs, their event log, cancel, late replies

`run_event` holds what a run produced in order (status, batched tokens, done or error), which
event-stream followers replay from any sequence number. On `run`: the caller's conversation id,
when a runner took it, a cancel request, a reply that arrived after the run was given up
(`late_output`, never charged) and whether the runtime's session may hold a turn the caller never
saw (`session_stale`).

Revision ID: c4e7a2d9f318
Revises: c4a7e2d9f613
Create Date: 2026-12-06 18:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4e7a2d9f318'
down_revision = "c4a7e2d9f613"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('conversation_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('late_output', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('session_stale', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'run_event',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_run_event_run_id_run'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'seq', name=op.f('pk_run_event')),
    )


def downgrade():
    op.drop_table('run_event')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_column('session_stale')
        batch_op.drop_column('late_output')
        batch_op.drop_column('cancel_requested_at')
        batch_op.drop_column('started_at')
        batch_op.drop_column('conversation_id')
