"""Base-library history per source record (``baselib_record``), not per value.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04

``baselib_value`` kept one row per key, attribute and source: a million persons from
three sources wrote twelve million rows (and three indexes over them) on the first
integration, most of a 12-minute run. ``baselib_record`` keeps one row per key and source
— the source's mapped values as a JSON object — with the same provenance (department,
resource, version, load time) and both times (valid time, record time); a row is written
only when the source's record changed. A value's own life is read back by
``baselib.integrate.value_history`` (consecutive records that gave it).

The upgrade rebuilds the records from the value rows: at each record time of a key and
source, the values that were current then.
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE baselib_record (
        id bigserial PRIMARY KEY,
        library text NOT NULL,
        key text NOT NULL,
        resource text NOT NULL,
        resource_version integer NOT NULL,
        dept_code text NOT NULL,
        loaded_at timestamptz NOT NULL,
        record jsonb NOT NULL,
        valid_from timestamptz NOT NULL,
        valid_to timestamptz,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        superseded_at timestamptz,
        run_id integer REFERENCES baselib_run(id));
    -- one index for both lookups: a key's history (library, key) and its live record
    -- per source (library, key, resource); a second index cost a third of the writes
    CREATE INDEX baselib_record_key ON baselib_record (library, key, resource);

    WITH points AS (
        SELECT library, key, resource, recorded_at AS t,
               lead(recorded_at) OVER (PARTITION BY library, key, resource
                                       ORDER BY recorded_at) AS next_t
        FROM (SELECT DISTINCT library, key, resource, recorded_at FROM baselib_value) d)
    INSERT INTO baselib_record (library, key, resource, resource_version, dept_code,
                                loaded_at, record, valid_from, valid_to, recorded_at,
                                superseded_at, run_id)
    SELECT p.library, p.key, p.resource, max(v.resource_version), min(v.dept_code),
           max(v.loaded_at), jsonb_object_agg(v.attribute, v.value), max(v.valid_from),
           CASE WHEN p.next_t IS NULL AND bool_or(v.valid_to IS NULL) THEN NULL
                ELSE max(v.valid_to) END,
           p.t,
           CASE WHEN p.next_t IS NOT NULL THEN p.next_t
                WHEN bool_or(v.superseded_at IS NULL) THEN NULL
                ELSE max(v.superseded_at) END,
           max(v.run_id)
    FROM points p JOIN baselib_value v ON v.library = p.library AND v.key = p.key AND
         v.resource = p.resource AND v.recorded_at <= p.t AND
         (v.superseded_at IS NULL OR v.superseded_at > p.t)
    WHERE v.value IS NOT NULL
    GROUP BY p.library, p.key, p.resource, p.t, p.next_t;

    DROP TABLE baselib_value;
    """)


def downgrade() -> None:
    op.execute("""
    CREATE TABLE baselib_value (
        id bigserial PRIMARY KEY,
        library text NOT NULL,
        key text NOT NULL,
        attribute text NOT NULL,
        value text,
        dept_code text NOT NULL,
        resource text NOT NULL,
        resource_version integer NOT NULL,
        loaded_at timestamptz NOT NULL,
        valid_from timestamptz NOT NULL,
        valid_to timestamptz,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        superseded_at timestamptz,
        run_id integer REFERENCES baselib_run(id));
    INSERT INTO baselib_value (library, key, attribute, value, dept_code, resource,
                               resource_version, loaded_at, valid_from, valid_to,
                               recorded_at, superseded_at, run_id)
    SELECT r.library, r.key, e.key, e.value, r.dept_code, r.resource, r.resource_version,
           r.loaded_at, r.valid_from, r.valid_to, r.recorded_at, r.superseded_at, r.run_id
    FROM baselib_record r CROSS JOIN jsonb_each_text(r.record) e;
    CREATE INDEX baselib_value_current ON baselib_value (library, resource, attribute, key)
        WHERE superseded_at IS NULL;
    CREATE INDEX baselib_value_key ON baselib_value (library, key);
    DROP TABLE baselib_record;
    """)
