"""one order per cart revision: double submits of checkout get the same order

A cart counts the changes of its lines (`revision`); an order records the cart and the revision it
was placed from, unique together, so parallel checkouts of one cart create one order and the
others are given that order.

Revision ID: 5e1d0c7a9b42
Revises: 5b8e1d3f7a42
Create Date: 2026-12-06 15:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = '5e1d0c7a9b42'
down_revision = '5b8e1d3f7a42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cart', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cart_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cart_revision', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_customer_order_cart_id_cart'), 'cart', ['cart_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_unique_constraint(batch_op.f('uq_customer_order_cart_id_cart_revision'),
                                          ['cart_id', 'cart_revision'])


def downgrade():
    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_customer_order_cart_id_cart_revision'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_customer_order_cart_id_cart'), type_='foreignkey')
        batch_op.drop_column('cart_revision')
        batch_op.drop_column('cart_id')

    with op.batch_alter_table('cart', schema=None) as batch_op:
        batch_op.drop_column('revision')
