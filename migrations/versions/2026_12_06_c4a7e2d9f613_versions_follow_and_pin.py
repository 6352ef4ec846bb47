"""versions: semantic version numbers everywhere, Langflow run options per version, pinned instances

- `offering_version.output_component` and `tweaks_json`: which output a Langflow run reads, and the
  component overrides it sends.
- `instance.version_pinned`: false for every existing instance, so they follow their offering's
  latest version of the same major line from their next run, as new instances do.
- Version numbers that are not MAJOR.MINOR.PATCH are rewritten: "v1.2" becomes 1.2.0, "2" 2.0.0,
  "1.0.0-beta" 1.0.0; one that cannot be read, or whose rewrite an offering already has, becomes the
  next free patch after the offering's last readable version before it, so the order a seller released
  them in is kept.

Revision ID: c4a7e2d9f613
Revises: cdebb29682b3
Create Date: 2026-12-06 18:20:00.000000

"""
import re

from alembic import op
import sqlalchemy as sa


revision = 'c4a7e2d9f613'
down_revision = "cdebb29682b3"
branch_labels = None
depends_on = None

SEMVER = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
LOOSE = re.compile(r"^\s*[vV]?\s*([0-9]{1,6})(?:\.([0-9]{1,6}))?(?:\.([0-9]{1,6}))?(?:[-+.\s].*)?$")


def semver_rewrites(rows: list[tuple[int, int, str]]) -> dict[int, str]:
    """{version id: new number} for the rows (id, offering id, version) that are not MAJOR.MINOR.PATCH."""
    taken: dict[int, set[tuple[int, int, int]]] = {}
    for _, offering_id, version in rows:
        if SEMVER.match(version):
            taken.setdefault(offering_id, set()).add(tuple(int(p) for p in version.split(".")))
    rewrites: dict[int, str] = {}
    last: dict[int, tuple[int, int, int]] = {}
    for version_id, offering_id, version in sorted(rows, key=lambda r: r[0]):
        used = taken.setdefault(offering_id, set())
        if SEMVER.match(version):
            last[offering_id] = tuple(int(p) for p in version.split("."))
            continue
        match = LOOSE.match(version)
        wanted = tuple(int(p or 0) for p in match.groups()) if match else None
        if wanted is None or wanted in used:
            major, minor, patch = last.get(offering_id, (0, 0, 0))
            wanted = (major, minor, patch + 1)
            while wanted in used:
                wanted = (wanted[0], wanted[1], wanted[2] + 1)
        used.add(wanted)
        last[offering_id] = wanted
        rewrites[version_id] = "%d.%d.%d" % wanted
    return rewrites


def upgrade():
    with op.batch_alter_table('offering_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_component', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('tweaks_json', sa.Text(), nullable=True))
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version_pinned', sa.Boolean(), server_default=sa.false(), nullable=False))

    bind = op.get_bind()
    table = sa.table('offering_version', sa.column('id', sa.Integer), sa.column('offering_id', sa.Integer),
                     sa.column('version', sa.String))
    rows = [tuple(r) for r in bind.execute(sa.select(table.c.id, table.c.offering_id, table.c.version))]
    for version_id, number in semver_rewrites(rows).items():
        bind.execute(table.update().where(table.c.id == version_id).values(version=number))


def downgrade():
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_column('version_pinned')
    with op.batch_alter_table('offering_version', schema=None) as batch_op:
        batch_op.drop_column('tweaks_json')
        batch_op.drop_column('output_component')
