"""Background work of the spatial framework: a layer version's region index, when the
load could not publish it with the version.

A load computes the index beside the version and writes it in the same transaction
(``spatial.regionindex.LoadIndex``). When the region boundaries were reloaded meanwhile
it writes none, and the publish defers :func:`region_index_job`: a worker builds it in
PostgreSQL (``ensure_region_index``, 5–12 s for a million parcels) while nobody waits.
Without a worker the first statistics call builds it (race-free).
"""

from __future__ import annotations

import logging

from procrastinate.exceptions import AlreadyEnqueued

from jmgeo.db import connection
from jmgeo.queue import BACKOFF, app

LOG = logging.getLogger(__name__)


@app.task(name="spatial.region_index", retry=BACKOFF)
def region_index_job(table: str) -> str:
    """Build the region index of one version table (idempotent: built once)."""
    from spatial.regionindex import ensure_region_index

    with connection() as conn:  # the platform's pool: dict rows, no JIT
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL AS e", (table,)
                            ).fetchone()["e"]:
            return "gone"  # pruned or rolled back meanwhile
        ensure_region_index(conn, table)
    return "built"


def defer_region_index(table: str) -> bool:
    """Ask a worker to build ``table``'s region index; False when the queue cannot be
    reached (the first statistics call then builds it) — never fails a publish."""
    try:
        region_index_job.configure(queueing_lock=f"region_index:{table}").defer(table=table)
    except AlreadyEnqueued:
        pass
    except Exception:  # noqa: BLE001 — an optimisation: the data is published already
        LOG.warning("could not queue the region index of %s", table, exc_info=True)
        return False
    return True
