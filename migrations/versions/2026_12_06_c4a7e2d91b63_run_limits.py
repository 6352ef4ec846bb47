"""run limits: concurrent runs per instance and per wallet on plans; a rate limit and a monthly
credit quota per API key; an index for a key's runs of a month

Revision ID: c4a7e2d91b63
Revises: c4e7a2d9f318
Create Date: 2026-12-06 18:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4a7e2d91b63'
down_revision = "c4e7a2d9f318"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_concurrent_runs', sa.Integer(), server_default='8', nullable=False))
        batch_op.add_column(sa.Column('max_concurrent_runs_per_wallet', sa.Integer(), server_default='32',
                                      nullable=False))
        batch_op.create_check_constraint('max_concurrent_runs_positive', 'max_concurrent_runs >= 1')
        batch_op.create_check_constraint('max_concurrent_runs_per_wallet_positive',
                                         'max_concurrent_runs_per_wallet >= 1')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_limit', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('monthly_credit_quota', sa.Integer(), nullable=True))
        batch_op.create_check_constraint('monthly_credit_quota_positive', 'monthly_credit_quota >= 1')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index('ix_run_api_key_id_created_at', ['api_key_id', 'created_at'], unique=False)
        batch_op.create_index('ix_run_status_instance_id', ['status', 'instance_id'], unique=False)


def downgrade():
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index('ix_run_status_instance_id')
        batch_op.drop_index('ix_run_api_key_id_created_at')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_key_monthly_credit_quota_positive'), type_='check')
        batch_op.drop_column('monthly_credit_quota')
        batch_op.drop_column('rate_limit')
    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_plan_max_concurrent_runs_per_wallet_positive'), type_='check')
        batch_op.drop_constraint(op.f('ck_plan_max_concurrent_runs_positive'), type_='check')
        batch_op.drop_column('max_concurrent_runs_per_wallet')
        batch_op.drop_column('max_concurrent_runs')
