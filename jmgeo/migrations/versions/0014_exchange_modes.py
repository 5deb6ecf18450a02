"""Exchange modes: change sets for feeds, subscriptions and pushes, front-end processors,
export jobs, and the delivery count (issue 11).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

- ``layer_step``: every change of a resource's current version — a publish or a
  rollback — in order (``id``). It is the feeds' version history and the push outbox:
  written in the publish transaction, so a step exists exactly when its version became
  current. ``from_version`` is NULL for a resource's first version.
- ``layer_change``: the keys a step changed (``op`` i/u/d against ``from_version``), for
  resources with a declared key. Incremental pull unions them since a version and
  compares the two versions' rows for exactly those keys (``layers.changes``).
- ``subscription``: a department system's webhook (``url``), its HMAC secret and key id;
  ``resources`` NULL = every resource it may see; ``with_changes``: push the change set;
  ``after_step``: the newest step at registration (only later steps are pushed).
- ``push_delivery``: one notification of one step to one subscription — the delivery log
  and the dead-letter list (``status='dead'``); UNIQUE, so a repeated dispatch is harmless.
- ``fep_receipt``: 回执 of the inbound drop-folder harvest: accepted or refused, with the
  quality report, per file; ``finished_at`` NULL = the file's move was interrupted.
- ``fep_copy``: an outbound front-end-processor copy of a grant's view in a
  department-side database: where, which version it holds, the last reconciliation
  (``status`` new | in_sync | drift | failed | revoked; ``detail`` says what drifted).
  The copy's own truth is the metadata row in the target (``<schema>._jmgeo_sync``).
- ``export_job``: a large batch download run as a job: progress, the file, its expiry.
- ``exchange_delivery``: every delivery in every mode (resource, department, mode, rows,
  bytes, share request) — what supervision counts.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NOW = sa.func.now()


def _ts(name: str, nullable: bool = True, default=None) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=default)


def upgrade() -> None:
    op.create_table(
        "layer_step",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key_field", sa.Text),
        sa.Column("added", sa.Integer),
        sa.Column("removed", sa.Integer),
        sa.Column("changed", sa.Integer),
        _ts("at", False, NOW),
        sa.CheckConstraint("kind IN ('publish', 'rollback')", name="ck_layer_step_kind"),
    )
    op.create_index("ix_layer_step_layer", "layer_step", ["layer_id", "id"])
    op.create_table(
        "layer_change",
        sa.Column("step_id", sa.BigInteger, sa.ForeignKey("layer_step.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("op", sa.CHAR(1), nullable=False),
        sa.PrimaryKeyConstraint("step_id", "key"),
        sa.CheckConstraint("op IN ('i', 'u', 'd')", name="ck_layer_change_op"),
    )
    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_key.id")),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("signing_key_id", sa.Text, nullable=False, unique=True),
        sa.Column("resources", ARRAY(sa.Text)),
        sa.Column("with_changes", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.Text),
        # the last step that existed at registration: only later steps are pushed
        sa.Column("after_step", sa.BigInteger, nullable=False, server_default="0"),
        _ts("created_at", False, NOW),
        sa.CheckConstraint("url ~ '^https?://'", name="ck_subscription_url"),
    )
    op.create_table(
        "push_delivery",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("subscription_id", sa.Integer,
                  sa.ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step_id", sa.BigInteger, sa.ForeignKey("layer_step.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("bytes", sa.BigInteger),
        _ts("created_at", False, NOW),
        _ts("attempted_at"),
        _ts("delivered_at"),
        sa.UniqueConstraint("subscription_id", "step_id", name="uq_push_delivery"),
        # skipped: the department could not see the resource when the step was dispatched
        # (recorded once, so it is not re-evaluated; never listed in the delivery log)
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead', 'skipped')",
                           name="ck_push_delivery_status"),
    )
    op.create_table(
        "fep_receipt",
        sa.Column("id", sa.BigInteger, primary_key=True),
        # NULL: the folder names no registered department (dept_code holds its name)
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("dept_code", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("content_hash", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("message", sa.Text),
        sa.Column("report", JSONB),
        _ts("at", False, NOW),
        # where the file goes (accepted/… or refused/…), and when it got there: a receipt
        # without finished_at is a harvest killed mid-move, completed by the next run
        sa.Column("archived_as", sa.Text),
        _ts("finished_at"),
        sa.CheckConstraint("status IN ('accepted', 'refused')", name="ck_fep_receipt_status"),
    )
    op.create_index("ix_fep_receipt_dept", "fep_receipt", ["dept_code", "id"])
    op.create_table(
        "fep_copy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("grant_id", sa.Integer, sa.ForeignKey("layer_grant.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("target_schema", sa.Text, nullable=False),
        sa.Column("target_table", sa.Text, nullable=False),
        sa.Column("every_minutes", sa.Integer, nullable=False, server_default="60"),
        sa.Column("synced_version", sa.Integer),
        _ts("synced_at"),
        sa.Column("row_count", sa.BigInteger),
        sa.Column("content_hash", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="new"),
        sa.Column("last_error", sa.Text),
        # the last reconciliation's finding (drift: which counts or hashes differ) and when
        sa.Column("detail", sa.Text),
        _ts("reconciled_at"),
        _ts("attempted_at"),  # the last sync's start (a failing target waits every_minutes)
        sa.Column("created_by", sa.Text),
        _ts("created_at", False, NOW),
        sa.UniqueConstraint("target_url", "target_schema", "target_table",
                            name="uq_fep_copy_target"),
        sa.CheckConstraint("every_minutes > 0", name="ck_fep_copy_every"),
        sa.CheckConstraint("status IN ('new', 'in_sync', 'drift', 'failed', 'revoked')",
                           name="ck_fep_copy_status"),
    )
    op.create_table(
        "export_job",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_key.id")),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_total", sa.BigInteger),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("file_path", sa.Text),
        sa.Column("notes", ARRAY(sa.Text)),  # what the format lost (the sync Warning header)
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.Integer),
        _ts("created_at", False, NOW),
        _ts("finished_at"),
        _ts("expires_at"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')",
                           name="ck_export_job_status"),
    )
    op.create_table(
        "exchange_delivery",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("request_id", sa.Integer),
        sa.Column("detail", sa.Text),
        _ts("at", False, NOW),
        sa.CheckConstraint("mode IN ('system', 'fep', 'query', 'download')",
                           name="ck_exchange_delivery_mode"),
    )
    op.create_index("ix_exchange_delivery_at", "exchange_delivery", ["at"])


def downgrade() -> None:
    op.drop_index("ix_exchange_delivery_at", table_name="exchange_delivery")
    op.drop_index("ix_fep_receipt_dept", table_name="fep_receipt")
    for table in ("exchange_delivery", "export_job", "fep_copy", "fep_receipt",
                  "push_delivery", "subscription", "layer_change"):
        op.drop_table(table)
    op.drop_index("ix_layer_step_layer", table_name="layer_step")
    op.drop_table("layer_step")
