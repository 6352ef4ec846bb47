"""The migrated schema is the models' schema, on SQLite and PostgreSQL."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.models import Model
from app.models.jobs import QUEUE_OBJECT_PREFIX


def test_migrated_schema_matches_models(db_url):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _include_object})
        diff = compare_metadata(ctx, Model.metadata)
    engine.dispose()
    assert diff == []


def _include_object(obj, name, type_, reflected, compare_to):
    # search structures made by hand-written migrations (FTS5 on SQLite, GIN on PostgreSQL), and the job
    # queue's tables (procrastinate's schema, made by a migration), as in migrations/env.py
    return not (name and name.startswith(("offering_fts", "ix_offering_search", "search_vector", QUEUE_OBJECT_PREFIX)))


def test_invariant_constraints_exist_in_database(db_url):
    engine = create_engine(db_url)
    inspector = inspect(engine)
    wallet_checks = " ".join(c["sqltext"] for c in inspector.get_check_constraints("wallet"))
    assert "balance >= 0" in wallet_checks
    unique_columns = {
        table: [tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)]
        for table in ("ledger_entry", "instance", "webhook_event", "plan", "offering", "hold")
    }
    engine.dispose()
    # idempotency keys are unique per wallet, never across wallets
    assert ("idempotency_key", "wallet_id") in unique_columns["ledger_entry"]
    assert ("source_order_line_id",) in unique_columns["instance"]
    assert ("source", "external_id") in unique_columns["webhook_event"]
    assert ("sku",) in unique_columns["plan"]
    assert ("slug",) in unique_columns["offering"]
    assert ("idempotency_key", "wallet_id") in unique_columns["hold"]
    assert ("settle_key", "wallet_id") in unique_columns["hold"]
