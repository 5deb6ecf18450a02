"""The audit log survives its database administrator: a keyed chain, and an app role.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04

- ``audit_log.key_id``: the id of the HMAC key (kept outside the database,
  ``layers.audit_keys``) the row's hash was made with; NULL for rows written before
  (their plain sha256 chain still verifies, see ``layers.audit``).
- The app role ``jmgeo_app``: the API and the workers connect as it (or as a login role
  that is a member of it); migrations run as the owner. It owns none of the platform's
  tables: it may SELECT, INSERT, UPDATE and DELETE every table in ``public`` except
  ``audit_log``, which it may only SELECT and INSERT (no UPDATE, DELETE, TRUNCATE: only
  the owner could switch the append-only trigger off, and the keyed chain shows it).
  Default privileges give it the same on tables later migrations create. It may create
  schemas and tables for data (``layer_data``: every loaded layer, region indexes;
  ``fep_*`` targets) and owns those; tables that the owner made there before are given
  to it. The role is created (NOLOGIN) when missing and the owner may create roles;
  provisioning makes it a login role on the local cluster (``jmgeo db ensure``); on
  another server the DBA creates it (README). Without it, this migration only adds the
  column and the app keeps connecting as the owner (``jmgeo audit verify`` warns).
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

APP_ROLE = "jmgeo_app"

CREATE_ROLE = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        BEGIN
            CREATE ROLE {APP_ROLE} NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- a concurrent migration
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'role {APP_ROLE} missing and cannot be created: the app keeps '
                             'connecting as the owner';
        END;
    END IF;
END $$"""

GRANTS = f"""
DO $$ DECLARE r record; BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN RETURN; END IF;
    EXECUTE format('GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %I TO {APP_ROLE}',
                   current_database());
    GRANT USAGE ON SCHEMA public TO {APP_ROLE};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
    REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_log FROM {APP_ROLE};
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {APP_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {APP_ROLE};
    CREATE SCHEMA IF NOT EXISTS layer_data;
    -- the data schemas (layer_data, fep_* …): the app creates and replaces tables there
    FOR r IN SELECT nspname FROM pg_namespace WHERE nspname <> 'public'
             AND nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%' LOOP
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO {APP_ROLE}', r.nspname);
    END LOOP;
    FOR r IN SELECT n.nspname, c.relname FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname <> 'public' AND n.nspname <> 'information_schema'
             AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind IN ('r', 'p', 'v', 'm')
             AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                             AND d.deptype = 'e') LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %I.%I OWNER TO {APP_ROLE}', r.nspname, r.relname);
        EXCEPTION WHEN insufficient_privilege THEN
            EXECUTE format('GRANT ALL ON %I.%I TO {APP_ROLE}', r.nspname, r.relname);
        END;
    END LOOP;
END $$"""

REVOKES = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN RETURN; END IF;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {APP_ROLE};
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE};
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM {APP_ROLE}', current_database());
END $$"""


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(32), nullable=True))
    op.execute(CREATE_ROLE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(REVOKES)
    op.drop_column("audit_log", "key_id")
