"""subscription periods and renewals: period end, cancel at period end, dunning, saved cards

A paid instance records the end of its paid period; renewal and upgrade orders name the instance
they pay for, unique per (instance, period start) so a period is renewed by one order; a saved
card keeps only the provider's token, its brand, last four digits and expiry.

Revision ID: c4a7e2d91b35
Revises: c4a7e2d91b53
Create Date: 2026-12-06 17:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4a7e2d91b35'
down_revision = "c4a7e2d91b53"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'payment_method',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('backend', sa.String(length=16), nullable=False),
        sa.Column('token', sa.String(length=128), nullable=False),
        sa.Column('brand', sa.String(length=24), nullable=False),
        sa.Column('last4', sa.String(length=4), nullable=False),
        sa.Column('exp_month', sa.Integer(), nullable=False),
        sa.Column('exp_year', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'],
                                name=op.f('fk_payment_method_created_by_id_user_account'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_payment_method_organization_id_organization'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_method')),
        sa.UniqueConstraint('token', name=op.f('uq_payment_method_token')),
    )
    with op.batch_alter_table('payment_method', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_method_organization_id'), ['organization_id'], unique=False)

    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollover_credits', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('period_end', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_at_period_end', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('pending_plan_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('payment_method_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('past_due_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('renewal_failures', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('next_renewal_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_instance_pending_plan_id_plan'), 'plan', ['pending_plan_id'],
                                    ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_instance_payment_method_id_payment_method'), 'payment_method',
                                    ['payment_method_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), server_default='purchase', nullable=False))
        batch_op.add_column(sa.Column('renews_instance_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('renewal_period_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_customer_order_renews_instance_id'), ['renews_instance_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_customer_order_renews_instance_id_instance'), 'instance',
                                    ['renews_instance_id'], ['id'], ondelete='SET NULL')
        batch_op.create_unique_constraint('uq_customer_order_renewal_once',
                                          ['renews_instance_id', 'purpose', 'renewal_period_start'])


def downgrade():
    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customer_order_renewal_once',
                                 type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_customer_order_renews_instance_id_instance'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_customer_order_renews_instance_id'))
        batch_op.drop_column('renewal_period_start')
        batch_op.drop_column('renews_instance_id')
        batch_op.drop_column('purpose')

    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_instance_payment_method_id_payment_method'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_instance_pending_plan_id_plan'), type_='foreignkey')
        batch_op.drop_column('next_renewal_attempt_at')
        batch_op.drop_column('renewal_failures')
        batch_op.drop_column('past_due_since')
        batch_op.drop_column('payment_method_id')
        batch_op.drop_column('pending_plan_id')
        batch_op.drop_column('cancel_at_period_end')
        batch_op.drop_column('period_end')

    with op.batch_alter_table('plan', schema=None) as batch_op:
        batch_op.drop_column('rollover_credits')

    with op.batch_alter_table('payment_method', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_method_organization_id'))

    op.drop_table('payment_method')
