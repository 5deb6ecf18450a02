"""Exchange: share requests (共享申请), answers on a legal clock, grants from approvals.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

- ``answer_rule``: the rule a request is answered under — its legal basis (依据), the
  working days allowed and who an overdue request escalates to. Data, not code: seeded
  with 国发〔2016〕51号 (10 working days, escalate to 市网信统筹局 ``wxtc``); the newest
  active rule applies to requests filed after it. ``escalate_to_dept_id`` may be NULL when
  the bureau's department does not exist yet (a fresh database): escalation then goes to
  the department ``wxtc`` if present (``exchange.requests``).
- ``share_request``: what a department asked for and where it stands.
- ``share_request_event``: every transition, by whom, when, why — append-only (a
  trigger refuses UPDATE and DELETE).
- ``notification``: a department's inbox (reminders, escalations, answers).
- ``layer_grant`` gains ``request_id`` and ``source``: 'request' for a grant an approval
  made, 'cli' for one typed with ``jmgeo grant add`` (no approval on record).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MODES = "('system', 'fep', 'query', 'download')"
STATUSES = ("('submitted', 'approved', 'partly_approved', 'refused', 'withdrawn', "
            "'expired', 'appealed')")
ACTIONS = ("('submit', 'approve', 'approve_part', 'refuse', 'amend', 'renew', 'revoke', "
           "'withdraw', 'expire', 'escalate', 'appeal', 'refuse_not_shared')")


def upgrade() -> None:
    op.create_table(
        "answer_rule",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.Text, nullable=False, unique=True),
        sa.Column("basis", sa.Text, nullable=False),
        sa.Column("working_days", sa.Integer, nullable=False),
        sa.Column("escalate_to_dept_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint("working_days > 0", name="ck_answer_rule_working_days"),
        sa.CheckConstraint("btrim(basis) <> ''", name="ck_answer_rule_basis"),
    )
    op.execute("INSERT INTO answer_rule (code, basis, working_days, escalate_to_dept_id) "
               "VALUES ('gf-2016-51', '国发〔2016〕51号', 10, "
               "(SELECT id FROM department WHERE code = 'wxtc'))")

    op.create_table(
        "share_request",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id"), nullable=False),
        sa.Column("applicant_dept_id", sa.Integer, sa.ForeignKey("department.id"),
                  nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("basis", sa.Text),
        sa.Column("fields", ARRAY(sa.Text)),
        sa.Column("regions", ARRAY(sa.Text)),
        sa.Column("period_from", sa.Date),
        sa.Column("period_to", sa.Date),
        sa.Column("mode", sa.Text, nullable=False, server_default="download"),
        sa.Column("contact", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="submitted"),
        sa.Column("rule_id", sa.Integer, sa.ForeignKey("answer_rule.id"), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("overdue", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("grant_id", sa.Integer, sa.ForeignKey("layer_grant.id")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.CheckConstraint("btrim(purpose) <> ''", name="ck_share_request_purpose"),
        sa.CheckConstraint(f"mode IN {MODES}", name="ck_share_request_mode"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_share_request_status"),
        sa.CheckConstraint("period_to IS NULL OR period_from IS NULL OR period_to > period_from",
                           name="ck_share_request_period"),
    )
    op.create_index("ix_share_request_applicant", "share_request", ["applicant_dept_id"])
    op.create_index("ix_share_request_layer", "share_request", ["layer_id"])
    op.create_index("ix_share_request_open", "share_request", ["deadline"],
                    postgresql_where=sa.text("status = 'submitted'"))

    op.create_table(
        "share_request_event",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("share_request.id"), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("actor_dept", sa.Text),
        sa.Column("for_dept", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("reason", sa.Text),
        sa.Column("answer", JSONB),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text),
        sa.Column("grant_id", sa.Integer, sa.ForeignKey("layer_grant.id")),
        sa.CheckConstraint(f"action IN {ACTIONS}", name="ck_share_request_event_action"),
    )
    op.create_index("ix_share_request_event_request", "share_request_event",
                    ["request_id", "id"])
    op.execute("""
        CREATE FUNCTION share_request_event_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '共享申请记录只可追加 / share_request_event is append-only (% refused)',
                TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("CREATE TRIGGER share_request_event_no_update_delete BEFORE UPDATE OR DELETE "
               "ON share_request_event FOR EACH ROW "
               "EXECUTE FUNCTION share_request_event_append_only()")

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("share_request.id")),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.Column("mailed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_notification_dept", "notification", ["dept_id", "id"])

    op.add_column("layer_grant", sa.Column("request_id", sa.Integer,
                                           sa.ForeignKey("share_request.id")))
    op.add_column("layer_grant", sa.Column("source", sa.Text, nullable=False,
                                           server_default="cli"))
    op.create_check_constraint("ck_layer_grant_source", "layer_grant",
                               "source IN ('cli', 'request')")
    op.create_check_constraint("ck_layer_grant_request_source", "layer_grant",
                               "(source = 'request') = (request_id IS NOT NULL)")


def downgrade() -> None:
    op.drop_constraint("ck_layer_grant_request_source", "layer_grant", type_="check")
    op.drop_constraint("ck_layer_grant_source", "layer_grant", type_="check")
    op.drop_column("layer_grant", "source")
    op.drop_column("layer_grant", "request_id")
    op.drop_table("notification")
    op.execute("DROP TRIGGER IF EXISTS share_request_event_no_update_delete "
               "ON share_request_event")
    op.drop_table("share_request_event")
    op.execute("DROP FUNCTION IF EXISTS share_request_event_append_only()")
    op.drop_table("share_request")
    op.drop_table("answer_rule")
