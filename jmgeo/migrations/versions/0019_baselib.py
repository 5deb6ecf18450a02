"""Base libraries (基础库): attribute authority, sources, value history, verification
tickets (校核工单), the review queue and the person-level access log.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02

- ``baselib_authority``: per library and attribute, THE authoritative department (一数一
  源), the basis (依据) and its update cycle. Data, not code; one active row per attribute.
- ``baselib_source``: a source table (a published table resource) of a library and its
  column mapping (attribute → column, and the key column).
- ``baselib_run``: one integration (a new version of the library's table resource).
- ``baselib_value``: every value every source gave, with provenance (department,
  resource, version, load time) and history in two times: valid time
  ``[valid_from, valid_to)`` (when the source said it held) and record time
  ``[recorded_at, superseded_at)`` (when the platform held it).
- ``baselib_ticket_rule``: the working days an authority has to answer a ticket — data,
  as ``answer_rule`` is for share requests; seeded with 10 working days.
- ``baselib_ticket``: a disagreement between a copy and the authority, both values and
  sources side by side, deadline, answer (confirmed / corrected in version N), closing.
- ``baselib_quarantine``: records whose key is invalid — the reason, the record, match
  suggestions, a person's (or a confident match's) decision. Never dropped, never merged.
- ``baselib_access``: who looked at which record, when, under which share request.
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("baselib_access", "baselib_quarantine", "baselib_ticket", "baselib_ticket_rule",
          "baselib_value", "baselib_run", "baselib_source", "baselib_authority")


def upgrade() -> None:
    op.execute("""
    CREATE TABLE baselib_authority (
        id serial PRIMARY KEY,
        library text NOT NULL,
        attribute text NOT NULL,
        dept_id integer NOT NULL REFERENCES department(id),
        basis text NOT NULL CHECK (btrim(basis) <> ''),
        update_cycle text NOT NULL DEFAULT 'other',
        active boolean NOT NULL DEFAULT true,
        created_by text,
        created_at timestamptz NOT NULL DEFAULT now());
    CREATE UNIQUE INDEX baselib_authority_one ON baselib_authority (library, attribute)
        WHERE active;

    CREATE TABLE baselib_source (
        id serial PRIMARY KEY,
        library text NOT NULL,
        resource text NOT NULL,
        key_column text NOT NULL,
        mapping jsonb NOT NULL,
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now());
    CREATE UNIQUE INDEX baselib_source_one ON baselib_source (library, resource) WHERE active;

    CREATE TABLE baselib_run (
        id serial PRIMARY KEY,
        library text NOT NULL,
        version integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        run_by text,
        report jsonb);

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
    CREATE INDEX baselib_value_current ON baselib_value (library, resource, attribute, key)
        WHERE superseded_at IS NULL;
    CREATE INDEX baselib_value_key ON baselib_value (library, key);

    CREATE TABLE baselib_ticket_rule (
        id serial PRIMARY KEY,
        code text NOT NULL UNIQUE,
        basis text NOT NULL CHECK (btrim(basis) <> ''),
        working_days integer NOT NULL CHECK (working_days > 0),
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO baselib_ticket_rule (code, basis, working_days) VALUES
        ('baselib-check-10', '一数一源、多元校核：权威部门 10 个工作日内核实答复（演示规则）', 10);

    CREATE TABLE baselib_ticket (
        id serial PRIMARY KEY,
        library text NOT NULL,
        key text NOT NULL,
        attribute text NOT NULL,
        authority_dept_id integer NOT NULL REFERENCES department(id),
        authority_resource text NOT NULL,
        authority_version integer NOT NULL,
        authority_value text,
        copy_dept_id integer NOT NULL REFERENCES department(id),
        copy_resource text NOT NULL,
        copy_version integer NOT NULL,
        copy_value text,
        status text NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'confirmed', 'corrected', 'closed')),
        rule_id integer NOT NULL REFERENCES baselib_ticket_rule(id),
        working_days integer NOT NULL,
        opened_at timestamptz NOT NULL DEFAULT now(),
        opened_in_run integer REFERENCES baselib_run(id),
        deadline date NOT NULL,
        answered_at timestamptz,
        answered_by text,
        answer_note text,
        corrected_version integer,
        closed_at timestamptz,
        closed_in_run integer REFERENCES baselib_run(id),
        resolution text,
        CHECK (status <> 'corrected' OR corrected_version IS NOT NULL));
    CREATE UNIQUE INDEX baselib_ticket_live ON baselib_ticket
        (library, key, attribute, copy_resource) WHERE status <> 'closed';
    CREATE INDEX baselib_ticket_status ON baselib_ticket (library, status);

    CREATE TABLE baselib_quarantine (
        id serial PRIMARY KEY,
        library text NOT NULL,
        resource text NOT NULL,
        resource_version integer NOT NULL,
        fid bigint NOT NULL,
        raw_key text,
        reason text NOT NULL,
        record jsonb NOT NULL,
        suggestions jsonb NOT NULL DEFAULT '[]'::jsonb,
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'applied', 'rejected')),
        resolved_key text,
        decided_by text,
        decided_at timestamptz,
        run_id integer REFERENCES baselib_run(id),
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (status <> 'applied' OR resolved_key IS NOT NULL));
    CREATE INDEX baselib_quarantine_lib ON baselib_quarantine (library, status);

    CREATE TABLE baselib_access (
        id bigserial PRIMARY KEY,
        library text NOT NULL,
        key text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        caller text NOT NULL,
        dept_code text,
        way text NOT NULL,
        outcome text,
        share_request integer,
        grant_id integer,
        audit_id bigint);
    CREATE INDEX baselib_access_key ON baselib_access (library, key, at);
    """)


def downgrade() -> None:
    for t in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {t}")
