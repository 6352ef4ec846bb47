"""refund idempotency key: an operator's refund through the API names a key of its own, so a retry
of the same request refunds once

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
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_refund_order_id_idempotency_key'),
                                          ['order_id', 'idempotency_key'])


def downgrade():
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_refund_order_id_idempotency_key'), type_='unique')
        batch_op.drop_column('idempotency_key')
