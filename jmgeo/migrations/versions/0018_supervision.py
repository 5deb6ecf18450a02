"""Supervision (监督考核): update rules, ratings (评议), corrections (纠错), filed reports.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

- ``update_rule``: per update cycle (更新周期), when the next update is due — data, not
  code. ``every_days`` / ``every_months``: an interval after the last publish;
  ``quarter_day``: the plan's quarterly rule (by the Nth day of each quarter's first
  month). ``working_days``: count working days (the official holiday table) instead of
  calendar days; a calendar deadline that falls on a day off moves to the next working
  day. ``due_days``: the deadline is "due" this many days ahead; ``delinquent_after``:
  overdue becomes delinquent this many working days past the deadline. Seeded with the
  plan's rule: quarterly and unspecified (``other``) resources by the 10th of the
  quarter's first month.
- ``correction_rule``: the working days an owner has to answer a correction ticket (the
  newest active rule applies to tickets raised after it; a ticket keeps its rule).
- ``delivery_rating``: a consuming department's score (1–5) and comment on one delivery
  it received (``exchange_delivery``); one per delivery.
- ``correction``: a correction ticket (纠错) on a resource — a record (by key), a field,
  a region — raised by a department that received it, answered by the owner: fixed (in
  version N) or not an error (with the reason).
- ``freshness_reminder``: one reminder per resource, deadline and level (overdue → the
  owner, delinquent → the bureau), so the periodic check never repeats itself.
- ``supervision_report``: every filed report (通报): period, when, the PDF and XLSX.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

NOW = sa.func.now()
CYCLES = ("('realtime', 'daily', 'weekly', 'monthly', 'quarterly', 'halfyearly', "
          "'yearly', 'other')")
PLAN = "江门市政务大数据管理平台建设工作方案（2017）：至少每季度首月10日前更新"
# cycle, every_days, every_months, quarter_day, working_days, due_days, delinquent_after
SEED = [
    ("realtime", 1, None, None, True, 0, 2),
    ("daily", 1, None, None, True, 0, 3),
    ("weekly", 7, None, None, False, 2, 5),
    ("monthly", None, 1, None, False, 5, 10),
    ("quarterly", None, None, 10, False, 10, 20),
    ("halfyearly", None, 6, None, False, 15, 20),
    ("yearly", None, 12, None, False, 30, 20),
    ("other", None, None, 10, False, 10, 20),  # unspecified: the plan's quarterly rule
]


def upgrade() -> None:
    op.create_table(
        "update_rule",
        sa.Column("cycle", sa.Text, primary_key=True),
        sa.Column("basis", sa.Text, nullable=False),
        sa.Column("every_days", sa.Integer),
        sa.Column("every_months", sa.Integer),
        sa.Column("quarter_day", sa.Integer),
        sa.Column("working_days", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("due_days", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delinquent_after", sa.Integer, nullable=False, server_default="10"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_by", sa.Text),
        sa.CheckConstraint(f"cycle IN {CYCLES}", name="ck_update_rule_cycle"),
        sa.CheckConstraint("(every_days IS NOT NULL)::int + (every_months IS NOT NULL)::int + "
                           "(quarter_day IS NOT NULL)::int = 1", name="ck_update_rule_one_kind"),
        sa.CheckConstraint("coalesce(every_days, 1) > 0 AND coalesce(every_months, 1) > 0 AND "
                           "coalesce(quarter_day, 1) BETWEEN 1 AND 28",
                           name="ck_update_rule_positive"),
        sa.CheckConstraint("due_days >= 0 AND delinquent_after >= 0",
                           name="ck_update_rule_grace"),
    )
    for cycle, days, months, qday, working, due, delinquent in SEED:
        op.execute(sa.text(
            "INSERT INTO update_rule (cycle, basis, every_days, every_months, quarter_day, "
            "working_days, due_days, delinquent_after, updated_by) VALUES (:c, :b, :d, :m, "
            ":q, :w, :due, :del, 'migration')").bindparams(
                c=cycle, b=PLAN, d=days, m=months, q=qday, w=working, due=due, **{"del": delinquent}))

    op.create_table(
        "correction_rule",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("basis", sa.Text, nullable=False),
        sa.Column("working_days", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("working_days BETWEEN 1 AND 60", name="ck_correction_rule_days"),
        sa.CheckConstraint("btrim(basis) <> ''", name="ck_correction_rule_basis"),
    )
    op.execute("INSERT INTO correction_rule (basis, working_days) VALUES "
               "('江门市政务信息资源共享纠错规则（默认）', 5)")

    op.create_table(
        "delivery_rating",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("delivery_id", sa.BigInteger,
                  sa.ForeignKey("exchange_delivery.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("rated_by", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_delivery_rating_score"),
    )

    op.create_table(
        "correction",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer),  # the version the consumer saw
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("owner_dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("record_key", sa.Text),
        sa.Column("field", sa.Text),
        sa.Column("region_code", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Integer, sa.ForeignKey("correction_rule.id"), nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("raised_by", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("answered_by", sa.Text),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("fixed_version", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.CheckConstraint("status IN ('open', 'fixed', 'not_error')",
                           name="ck_correction_status"),
        sa.CheckConstraint("btrim(description) <> ''", name="ck_correction_description"),
        sa.CheckConstraint("status <> 'fixed' OR fixed_version IS NOT NULL",
                           name="ck_correction_fixed_version"),
        sa.CheckConstraint("status <> 'not_error' OR coalesce(btrim(reason), '') <> ''",
                           name="ck_correction_reason"),
    )
    op.create_index("ix_correction_owner", "correction", ["owner_dept_id", "status"])

    op.create_table(
        "freshness_reminder",
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("notification_id", sa.Integer, sa.ForeignKey("notification.id")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("layer_id", "deadline", "level"),
        sa.CheckConstraint("level IN ('overdue', 'delinquent')",
                           name="ck_freshness_reminder_level"),
    )

    op.create_table(
        "supervision_report",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("filed_by", sa.Text, nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("summary", JSONB, nullable=False, server_default="{}"),
        sa.Column("pdf", sa.LargeBinary, nullable=False),
        sa.Column("xlsx", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_supervision_report_period", "supervision_report", ["period", "id"])


def downgrade() -> None:
    for table in ("supervision_report", "freshness_reminder", "correction", "delivery_rating",
                  "correction_rule", "update_rule"):
        op.drop_table(table)
