"""The base libraries' periodic job, declared on the platform queue (:mod:`jmgeo.queue`).

- ``baselib.ticket_overdue`` daily at 08:10 China time (00:10 UTC, after supervision's
  freshness reminders): each authoritative department is told of its verification
  tickets (校核工单) unanswered past their deadline (:func:`baselib.notices.notify_overdue`;
  each ticket once, so the job is idempotent). ``jmgeo baselib remind`` runs the same now.
"""

from __future__ import annotations

import psycopg

from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url


@app.periodic(cron="10 0 * * *", periodic_id="baselib_ticket_overdue")
@app.task(name="baselib.ticket_overdue", queueing_lock="baselib.ticket_overdue",
          retry=BACKOFF)
def ticket_overdue_job(timestamp: int | None = None) -> int:
    """Tell the authorities of today's overdue tickets; how many notices were sent."""
    from baselib.notices import notify_overdue

    with psycopg.connect(database_url(), autocommit=True) as conn:
        return len(notify_overdue(conn))
