"""The record-level access log on every way out (``layers.record_log``).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04

- ``layer.record_access_log``: the resource keeps one log row per record handed out
  (the base libraries: "who looked at this person"); set for the libraries already
  integrated (resources a ``baselib_run`` published).
- ``baselib_access.version``: the resource version the record was read in (NULL for a
  lookup by key, which reads the current one).
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE layer ADD COLUMN record_access_log boolean NOT NULL DEFAULT false;
    UPDATE layer SET record_access_log = true
        WHERE name IN (SELECT DISTINCT library FROM baselib_run);
    ALTER TABLE baselib_access ADD COLUMN version integer;
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE baselib_access DROP COLUMN IF EXISTS version")
    op.execute("ALTER TABLE layer DROP COLUMN IF EXISTS record_access_log")
