"""The drop-folder harvest as a periodic job on the platform queue (:mod:`jmgeo.queue`).

``exchange.harvest_inbox`` runs every minute in a ``jmgeo worker``: every settled file in
the departments' drop folders is loaded and answered with a receipt
(:mod:`exchange.fep_inbound`). It is idempotent — a run killed at any moment is completed
by the next one without publishing twice — so retries are safe; the queueing lock keeps at
most one waiting run, and the harvest's advisory lock lets only one run at a time. A drop
that could not be answered for the platform's own reason (the database down) stays in
place and fails the job, so it is retried with backoff and shows in ``jmgeo jobs list``.
"""

from __future__ import annotations

from exchange.fep_inbound import harvest
from jmgeo.queue import BACKOFF, app


@app.periodic(cron="* * * * *", periodic_id="harvest_inbox")
@app.task(name="exchange.harvest_inbox", queueing_lock="exchange.harvest_inbox",
          retry=BACKOFF)
def harvest_inbox_job(timestamp: int | None = None) -> int:
    """Harvest once; return how many receipts were written (``timestamp``: the periodic
    run's due time, unused)."""
    out = harvest()
    if out["errors"]:
        raise RuntimeError(f"{len(out['errors'])} drop(s) not answered, retried: "
                           + "; ".join(f"{e['file']}: {e['error']}" for e in out["errors"]))
    return len(out["receipts"])
