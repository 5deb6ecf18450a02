"""Background work of the spatial framework: a new layer version's region index.

Region statistics read a per-version region index (``spatial.regions.ensure_region_index``,
4–5 s for a million parcels). Built on first use, the first statistics call of a version
waited for it; now a publish (or rollback) defers :func:`region_index_job`, so a worker
builds it while nobody waits, and the first call finds it ready. Without a worker the
first call still builds it (race-free, as before).
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
    from spatial.regions import ensure_region_index

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
