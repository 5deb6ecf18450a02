"""Verification tickets reach their department (校核工单通知): which notification of the
platform's one inbox (``notification``) told the authority a ticket was opened, and which
told it the ticket is overdue.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

- ``baselib_ticket.opened_notice_id``: the integration's notification to the
  authoritative department (one per department and run, naming its new tickets).
- ``baselib_ticket.overdue_notice_id``: the daily job's (``baselib.ticket_overdue``)
  notification that the ticket is unanswered past its deadline — set once, so the job
  may run as often as it likes and tells each ticket once.
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE baselib_ticket
        ADD COLUMN opened_notice_id integer REFERENCES notification(id),
        ADD COLUMN overdue_notice_id integer REFERENCES notification(id);
    CREATE INDEX baselib_ticket_overdue_due ON baselib_ticket (deadline)
        WHERE status = 'open' AND overdue_notice_id IS NULL;
    """)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS baselib_ticket_overdue_due")
    op.execute("ALTER TABLE baselib_ticket DROP COLUMN IF EXISTS overdue_notice_id, "
               "DROP COLUMN IF EXISTS opened_notice_id")
