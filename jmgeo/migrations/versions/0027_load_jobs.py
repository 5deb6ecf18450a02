"""Uploads as load jobs (issue 16 §2): ``load_job``.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04

An upload too big to load within its request (or sent with ``async=true``) is saved in
the upload directory and loaded by a worker; the request answers 202 with the job. The
row says who asked (key, department), what (the layer and the load's options), where the
file waits, and how it went: ``queued`` → ``running`` → ``done`` (the load report) /
``failed`` (the loader's error) / ``cancelled`` (``cancel_requested`` seen between
batches, or before it started).
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE load_job (
        id text PRIMARY KEY,
        dept_id integer NOT NULL REFERENCES department(id),
        key_id integer,
        asked_by text NOT NULL,
        layer text NOT NULL,
        file_name text NOT NULL,
        file_bytes bigint NOT NULL,
        options jsonb NOT NULL,
        status text NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        cancel_requested boolean NOT NULL DEFAULT false,
        report jsonb,
        error jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz);
    CREATE INDEX load_job_dept ON load_job (dept_id, created_at DESC);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS load_job")
