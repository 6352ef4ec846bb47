"""store sync state: a generation the Saleor sync bumps, and the store ids the catalog reads use

Every process caches the store's facet vocabulary; the generation tells it when the sync changed
the store, so no process serves a stale vocabulary for longer than one request.

Revision ID: c4a7e2d9f318
Revises: c4a7e2d91b35
Create Date: 2026-12-06 17:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4a7e2d9f318'
down_revision = "c4a7e2d91b35"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'store_sync_state',
        sa.Column('key', sa.String(length=32), nullable=False),
        sa.Column('generation', sa.Integer(), server_default='0', nullable=False),
        sa.Column('data', sa.Text(), server_default='{}', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_store_sync_state')),
    )


def downgrade():
    op.drop_table('store_sync_state')
