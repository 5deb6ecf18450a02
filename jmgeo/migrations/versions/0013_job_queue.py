"""The job queue: procrastinate's schema (jobs, workers, events, periodic defers).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

Upgrade runs the schema SQL procrastinate ships (``SchemaManager.get_schema()``) for
the installed version (3.10). Downgrade drops every ``procrastinate_*`` table, function
and type. A later procrastinate release that changes its schema ships migration SQL
(``procrastinate/sql/migrations``): a new Alembic revision applies those files, never
this one edited.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
          "procrastinate_workers")


def upgrade() -> None:
    from procrastinate.schema import SchemaManager

    # the raw psycopg connection, no parameters: the SQL's % and : stay as written
    op.get_bind().connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("""
        DO $$ DECLARE f record; BEGIN
          FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                   JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
          LOOP EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE'; END LOOP;
          FOR f IN SELECT t.typname AS sig FROM pg_type t
                   JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
                   AND t.typtype IN ('e', 'c')
          LOOP EXECUTE 'DROP TYPE ' || quote_ident(f.sig) || ' CASCADE'; END LOOP;
        END $$""")
