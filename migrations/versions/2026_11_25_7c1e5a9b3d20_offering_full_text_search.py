"""offering full-text search: a weighted GIN expression index on PostgreSQL, an FTS5 table on SQLite

Revision ID: 7c1e5a9b3d20
Revises: 56d378a84b11
Create Date: 2026-11-25 19:05:00

Both structures are named with the prefixes that migrations/env.py and tests/test_schema.py leave
out of autogenerate (`ix_offering_search`, `offering_fts`), because the models cannot describe them.
PostgreSQL keeps its expression index up to date by itself. On SQLite the catalog service writes
the FTS5 rows (`app.services.catalog.reindex_offering`); this migration backfills existing offerings.
The expression below must stay identical to `app.services.catalog.SEARCH_VECTOR_SQL`, or the
planner will not use the index.
"""
from alembic import op


revision = "7c1e5a9b3d20"
down_revision = "56d378a84b11"
branch_labels = None
depends_on = None

SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description_md, '')), 'C')"
)


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_offering_search ON offering USING gin (({SEARCH_VECTOR_SQL}))")
    elif dialect == "sqlite":
        # porter stemming like PostgreSQL's english configuration; prefix indexes for typed-ahead words
        op.execute(
            "CREATE VIRTUAL TABLE offering_fts USING fts5("
            "name, summary, description, "
            "tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3 4')"
        )
        op.execute(
            "INSERT INTO offering_fts (rowid, name, summary, description) "
            "SELECT id, name, summary, description_md FROM offering"
        )


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_offering_search")
    elif dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS offering_fts")
