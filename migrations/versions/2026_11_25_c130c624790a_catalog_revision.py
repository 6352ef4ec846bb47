"""catalog revision: a token that changes with the published catalog's search data

In-process search indexes (app/adapters/commerce/catalog_index.py) compare it on every search and
rebuild when it changed. No row until the first change: without a row nothing is cached.

Revision ID: c130c624790a
Revises: 9d4b2f6e8a13
Create Date: 2026-11-25 21:50:20.560742

"""
from alembic import op
import sqlalchemy as sa


revision = 'c130c624790a'
down_revision = '9d4b2f6e8a13'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('catalog_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_revision'))
    )


def downgrade():
    op.drop_table('catalog_revision')
