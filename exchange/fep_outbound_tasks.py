"""前置机 outbound jobs on the platform queue (:mod:`jmgeo.queue`).

``exchange.fep_sync`` syncs one copy (:func:`exchange.fep_outbound.sync_copy`); the
procrastinate ``lock`` runs at most one job per copy at a time, the queueing lock keeps
at most one waiting. It is idempotent — a sync killed at any moment left the target in
the old or the new state, and the rerun starts from the version the target's metadata
row says — so the retries and the rerun after a killed worker are harmless.

``exchange.fep_sync_due`` runs every minute and defers a sync for each copy that is due
(:func:`exchange.fep_outbound.due_copies`: its interval passed, a newer version was
published, or its grant ended and the copy still holds data).
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from procrastinate.exceptions import AlreadyEnqueued

from exchange.fep_outbound import due_copies, sync_copy
from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url

LOGGER = logging.getLogger(__name__)


@app.task(name="exchange.fep_sync", retry=BACKOFF)
def fep_sync(copy_id: int, full: bool = False) -> dict:
    """Sync copy ``copy_id`` now (``full``: rebuild it); returns what was done."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        info = sync_copy(conn, copy_id, full=full)
    LOGGER.info("fep copy %s: %s", copy_id, info)
    return {k: v for k, v in info.items() if k not in ("content_hash", "view_hash")}


def defer_sync(copy_id: int, full: bool = False) -> int | None:
    """Queue a sync of one copy (None: one is already waiting)."""
    try:
        return fep_sync.configure(lock=f"fep_copy:{copy_id}",
                                  queueing_lock=f"fep_sync:{copy_id}").defer(
                                      copy_id=copy_id, full=full)
    except AlreadyEnqueued:
        return None


def _due() -> list[int]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return due_copies(conn)


@app.periodic(cron="* * * * *", periodic_id="fep_sync_due")
@app.task(name="exchange.fep_sync_due", queueing_lock="exchange.fep_sync_due")
async def fep_sync_due(timestamp: int | None = None) -> list[int]:
    """Every minute: queue a sync of every due copy; returns the copies queued."""
    queued = []
    for copy_id in await asyncio.to_thread(_due):
        try:
            await fep_sync.configure(lock=f"fep_copy:{copy_id}",
                                     queueing_lock=f"fep_sync:{copy_id}").defer_async(
                                         copy_id=copy_id)
            queued.append(copy_id)
        except AlreadyEnqueued:
            pass
    return queued
