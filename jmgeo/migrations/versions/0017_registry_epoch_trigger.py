"""The registry epoch moves on EVERY committed change of ``layer``, ``layer_version`` or
``department``, not only where the code remembered to bump it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

Why: what anonymous callers may see (the open layers and their current versions) is the
same for every anonymous request, so the API keeps its built pygeoapi audience in memory
and asks only "has the epoch moved?" — a one-row read — instead of reading and deciding
every layer on every open tile or items page (``jmgeo.ogc.audiences``). That is only
exact if every change moves the epoch, whoever makes it (the API, the CLI, a worker,
psql): a reclassification, a style, a retirement as well as a publish or a rollback.

Once per transaction: ``changed_xid`` remembers the transaction that last moved it, so a
publish (which bumps it itself, to report the epoch) and its rows' triggers count once.
The triggers are deferred constraint triggers, i.e. they run at commit, after every
other lock of the transaction is held: a reclassification and a publish queue on the
counter row for the length of a commit and cannot deadlock on it. A reader sees only
committed epochs (it is a row; a sequence would move before its transaction commits).
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("layer", "layer_version", "department")


def upgrade() -> None:
    op.add_column("registry_state", sa.Column("changed_xid", sa.Text, nullable=True))
    op.execute("INSERT INTO registry_state (id, epoch) VALUES (1, 0) ON CONFLICT DO NOTHING")
    op.execute("""
        CREATE FUNCTION registry_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE registry_state SET epoch = epoch + 1, changed_at = now(),
                   changed_xid = pg_current_xact_id()::text
             WHERE id = 1 AND changed_xid IS DISTINCT FROM pg_current_xact_id()::text;
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE CONSTRAINT TRIGGER {table}_registry_epoch AFTER INSERT OR "
                   f"UPDATE OR DELETE ON {table} DEFERRABLE INITIALLY DEFERRED "
                   "FOR EACH ROW EXECUTE FUNCTION registry_epoch_bump()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_registry_epoch ON {table}")
    op.execute("DROP FUNCTION IF EXISTS registry_epoch_bump()")
    op.drop_column("registry_state", "changed_xid")


