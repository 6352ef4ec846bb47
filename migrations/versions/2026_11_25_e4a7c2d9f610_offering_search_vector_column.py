"""offering search: a stored, generated tsvector column on PostgreSQL, GIN-indexed

Revision ID: e4a7c2d9f610
Revises: c130c624790a
Create Date: 2026-11-25 22:10:00

Ranking needs each match's tsvector. With only an expression index PostgreSQL rebuilds the
vector from the text for every matching row (to_tsvector per row), which made ranking the most
expensive part of a text search. A generated column stores it: matching uses its GIN index and
ranking reads it. The column is named with the `search_vector` prefix that migrations/env.py and
tests/test_schema.py leave to hand-written migrations (the models do not map it). Nothing changes
on SQLite, whose FTS5 table already stores what bm25 needs.
"""
from alembic import op

revision = "e4a7c2d9f610"
down_revision = "c130c624790a"
branch_labels = None
depends_on = None

SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description_md, '')), 'C')"
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE offering ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({SEARCH_VECTOR_SQL}) STORED")
    op.execute("CREATE INDEX ix_offering_search_vector ON offering USING gin (search_vector)")
    op.execute("DROP INDEX IF EXISTS ix_offering_search")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX ix_offering_search ON offering USING gin (({SEARCH_VECTOR_SQL}))")
    op.execute("DROP INDEX IF EXISTS ix_offering_search_vector")
    op.execute("ALTER TABLE offering DROP COLUMN search_vector")
