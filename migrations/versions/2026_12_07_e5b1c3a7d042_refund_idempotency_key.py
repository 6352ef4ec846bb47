"""refund idempotency key: an operator's refund through the API names a key of its own, so a retry
of the same request refunds once; a refund the provider did not confirm keeps its key in
unconfirmed_refund

Revision ID: e5b1c3a7d042
Revises: c4a7e2d91b63
Create Date: 2026-12-07 01:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'e5b1c3a7d042'
down_revision = 'c4a7e2d91b63'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'unconfirmed_refund',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('order_line_id', sa.Integer(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('amount_minor', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['customer_order.id'],
                                name=op.f('fk_unconfirmed_refund_order_id_customer_order'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['actor_user_id'], ['user_account.id'],
                                name=op.f('fk_unconfirmed_refund_actor_user_id_user_account'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'],
                                name=op.f('fk_unconfirmed_refund_order_line_id_order_line'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_unconfirmed_refund')),
        sa.UniqueConstraint('order_id', 'idempotency_key', name=op.f('uq_unconfirmed_refund_order_id_idempotency_key')),
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_refund_order_id_idempotency_key'),
                                          ['order_id', 'idempotency_key'])


def downgrade():
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_refund_order_id_idempotency_key'), type_='unique')
        batch_op.drop_column('idempotency_key')
    op.drop_table('unconfirmed_refund')
