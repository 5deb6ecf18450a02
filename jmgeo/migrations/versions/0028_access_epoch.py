"""The access epoch: moves on every committed change of a grant or a region boundary.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03

Why: a department's pygeoapi audience (which layers it may read, under which grant, and
the box of a region grant's regions) was rebuilt on every request — three queries and a
configuration fingerprint before the page itself, which made a conditional layer read
through a grant cost twice an open one (``bench/serve_bench.py``). The API now keeps each
audience in memory like the anonymous one (``jmgeo.ogc.audiences``), and that is exact
only if everything the audience is made of moves a counter when it changes: the registry
epoch covers layers, versions and departments (0017); ``access_epoch`` covers
``layer_grant`` (issue, revoke, change) and ``region_part`` (the boundaries a region
grant's box is made of). A grant's period starting or ending is not a row change: the
cache keeps an audience no longer than the next such instant
(``layers.grants.next_change``).

Kept apart from the registry epoch on purpose: the catalog re-syncs every layer when that
one moves (``catalog.sync``), which grants do not concern. Same mechanics as 0017:
deferred constraint triggers, once per transaction (``access_changed_xid``), only
committed values are seen.
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

TABLES = ("layer_grant", "region_part")


def upgrade() -> None:
    op.add_column("registry_state", sa.Column("access_epoch", sa.BigInteger, nullable=False,
                                              server_default="0"))
    op.add_column("registry_state", sa.Column("access_changed_xid", sa.Text, nullable=True))
    op.execute("""
        CREATE FUNCTION access_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE registry_state SET access_epoch = access_epoch + 1,
                   access_changed_xid = pg_current_xact_id()::text
             WHERE id = 1
               AND access_changed_xid IS DISTINCT FROM pg_current_xact_id()::text;
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE CONSTRAINT TRIGGER {table}_access_epoch AFTER INSERT OR "
                   f"UPDATE OR DELETE ON {table} DEFERRABLE INITIALLY DEFERRED "
                   "FOR EACH ROW EXECUTE FUNCTION access_epoch_bump()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_access_epoch ON {table}")
    op.execute("DROP FUNCTION IF EXISTS access_epoch_bump()")
    op.drop_column("registry_state", "access_changed_xid")
    op.drop_column("registry_state", "access_epoch")
