"""run cap outcome: what happened when a run's usage reached the most it may cost

`cap_outcome` is NULL when the run stayed within its limit, `cut` when the output was cut where
the limit was reached, `overrun` when the runtime could not stop and the run was charged the
limit; `overrun_credits` is what the usage would have cost above that limit (never charged).

Revision ID: b5d81f3a7c42
Revises: b7d3e91f5a24
Create Date: 2026-12-06 15:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'b5d81f3a7c42'
down_revision = "b7d3e91f5a24"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cap_outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('overrun_credits', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint('overrun_credits_nonnegative', 'overrun_credits >= 0')


def downgrade():
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_run_overrun_credits_nonnegative'), type_='check')
        batch_op.drop_column('overrun_credits')
        batch_op.drop_column('cap_outcome')
