"""The exchange's background jobs, declared on the platform queue (:mod:`jmgeo.queue`).

``check_deadlines`` runs every 10 minutes in a ``jmgeo worker``: escalations, expiries
and reminders happen on time even when nobody reads requests. It is idempotent (see
:mod:`exchange.deadlines`), so a retry or a run repeated after a killed worker is
harmless; the queueing lock keeps at most one waiting run.
"""

from __future__ import annotations

import psycopg

from exchange.deadlines import check_deadlines
from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url


@app.periodic(cron="*/10 * * * *", periodic_id="check_deadlines")
@app.task(name="exchange.check_deadlines", queueing_lock="exchange.check_deadlines",
          retry=BACKOFF)
def check_deadlines_job(timestamp: int | None = None) -> int:
    """Run the clock once; return how many actions it took (``timestamp``: the
    periodic run's due time, given by the scheduler, unused)."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return len(check_deadlines(conn))
