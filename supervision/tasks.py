"""Supervision's periodic jobs, declared on the platform queue (:mod:`jmgeo.queue`).

- ``supervision.remind`` daily at 08:00 China time (00:00 UTC): the freshness ladder is
  recomputed and the owners of overdue resources, the bureau for delinquent ones, are
  told (once per resource, deadline and level: the job is idempotent).
- ``supervision.monthly_report`` on the 1st of each month at 08:30 China time: files
  the previous month's report (通报) in the bureau's archive (``GET /supervision/reports``).
"""

from __future__ import annotations

import psycopg

from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url
from layers import policy

FILER = policy.system("supervision-report")


@app.periodic(cron="0 0 * * *", periodic_id="supervision_remind")
@app.task(name="supervision.remind", queueing_lock="supervision.remind", retry=BACKOFF)
def remind_job(timestamp: int | None = None) -> int:
    """Send today's freshness reminders; how many were sent."""
    from supervision.reports import remind

    with psycopg.connect(database_url(), autocommit=True) as conn:
        return len(remind(conn))


@app.periodic(cron="30 0 1 * *", periodic_id="supervision_monthly_report")
@app.task(name="supervision.monthly_report", queueing_lock="supervision.monthly_report",
          retry=BACKOFF)
def monthly_report_job(timestamp: int | None = None) -> int:
    """File last month's report; the id of the filed report."""
    from supervision.periods import previous_month
    from supervision.reports import file_report

    with psycopg.connect(database_url(), autocommit=True) as conn:
        return file_report(conn, FILER, previous_month())["id"]
