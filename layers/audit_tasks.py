"""The audit checkpoint as a periodic job on the platform queue (:mod:`jmgeo.queue`).

``audit.checkpoint`` runs every ``JMGEO_AUDIT_CHECKPOINT_MINUTES`` (default 5) in a
``jmgeo worker`` and appends a signed checkpoint of the chain's head to the checkpoint
file (:mod:`layers.audit_checkpoint`) when the head moved. The worker must see the same
key file and checkpoint file as the server (one machine, or a shared ``var/``).
"""

from __future__ import annotations

import psycopg

from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url, get_settings


@app.periodic(cron=f"*/{get_settings().audit_checkpoint_minutes} * * * *",
              periodic_id="audit_checkpoint")
@app.task(name="audit.checkpoint", queueing_lock="audit.checkpoint", retry=BACKOFF)
def checkpoint_job(timestamp: int | None = None) -> int | None:
    """Checkpoint the head; the new checkpoint's ``seq`` (None: the head had not moved)."""
    from layers import audit_checkpoint

    with psycopg.connect(database_url(), autocommit=True) as conn:
        entry = audit_checkpoint.write(conn)
    return entry["seq"] if entry else None
