"""idempotency keys per wallet: hold, settle and ledger-entry keys unique within their wallet only

Revision ID: b7d3e91f5a24
Revises: e4a7c2d9f610
Create Date: 2026-12-06 15:40:00

Keys were unique across the platform, so one organization could take a key another one needed
(the run gateway's `run:<id>` keys among them) and learn which keys existed elsewhere. Each key now
belongs to its wallet. The key leads each new index, so a look-up by key alone still uses it.
On SQLite batch mode rebuilds the two tables, with their checks and indexes.

Downgrading restores platform-wide uniqueness and fails if two wallets have since used one key.
"""
from alembic import op

revision = "b7d3e91f5a24"
down_revision = "e4a7c2d9f610"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hold") as batch:
        batch.drop_constraint("uq_hold_idempotency_key", type_="unique")
        batch.drop_constraint("uq_hold_settle_key", type_="unique")
        batch.create_unique_constraint("uq_hold_idempotency_key_wallet_id", ["idempotency_key", "wallet_id"])
        batch.create_unique_constraint("uq_hold_settle_key_wallet_id", ["settle_key", "wallet_id"])
    with op.batch_alter_table("ledger_entry") as batch:
        batch.drop_constraint("uq_ledger_entry_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_ledger_entry_idempotency_key_wallet_id", ["idempotency_key", "wallet_id"])


def downgrade():
    with op.batch_alter_table("ledger_entry") as batch:
        batch.drop_constraint("uq_ledger_entry_idempotency_key_wallet_id", type_="unique")
        batch.create_unique_constraint("uq_ledger_entry_idempotency_key", ["idempotency_key"])
    with op.batch_alter_table("hold") as batch:
        batch.drop_constraint("uq_hold_settle_key_wallet_id", type_="unique")
        batch.drop_constraint("uq_hold_idempotency_key_wallet_id", type_="unique")
        batch.create_unique_constraint("uq_hold_settle_key", ["settle_key"])
        batch.create_unique_constraint("uq_hold_idempotency_key", ["idempotency_key"])
