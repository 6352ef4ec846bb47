"""offering search: a covering index over facet values for faceted counts and filters

Revision ID: 9d4b2f6e8a13
Revises: 7c1e5a9b3d20
Create Date: 2026-11-25 21:00:00

Faceted search asks "which offerings have one of these values in this group" for every active
filter. With (group, value, offering_id) in one index both databases answer from the index alone;
the model's (group, value) index made PostgreSQL visit the table for every matching row. Named
with the `ix_offering_search` prefix that migrations/env.py and tests/test_schema.py leave to
hand-written migrations, like the other search structures.
"""
from alembic import op


revision = "9d4b2f6e8a13"
down_revision = "7c1e5a9b3d20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_offering_search_facet", "offering_facet", ["group", "value", "offering_id"])


def downgrade():
    op.drop_index("ix_offering_search_facet", table_name="offering_facet")
