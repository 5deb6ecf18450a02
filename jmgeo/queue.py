"""THE job queue of the platform: one procrastinate :data:`app` on the platform database.

Background and periodic work (deadline checks today; feeds, harvests and exports next)
runs in ``jmgeo worker`` processes through procrastinate — a maintained PostgreSQL-only
queue: jobs are rows, workers take them with ``SELECT … FOR UPDATE SKIP LOCKED``, retries
and locks are SQL, no broker to run. Its schema is migration ``0013_job_queue``.

This module imports only procrastinate and :mod:`jmgeo.settings`, so lower packages may
declare tasks on :data:`app` beside the code they run (``exchange/tasks.py``). The task
modules are listed once, in :data:`TASK_MODULES`; the worker imports them at start.
The DSN is read from the settings when the queue is first used (not at import), so a
test or a command that sets ``DATABASE_URL`` first is honoured.
"""

from __future__ import annotations

import threading
from typing import Any

from procrastinate import App, PsycopgConnector, RetryStrategy

from jmgeo.settings import get_settings

# every module that declares tasks: the worker imports them all (procrastinate import_paths)
TASK_MODULES = ["jmgeo.jobs", "exchange.tasks", "jmgeo.downloads.jobs", "exchange.push",
                "exchange.fep_outbound_tasks", "exchange.fep_tasks", "supervision.tasks",
                "baselib.tasks", "layers.audit_tasks", "jmgeo.upload_jobs",
                "spatial.tasks"]

# the default for idempotent platform jobs: 5 attempts, waits 2, 4, 8, 16 s
BACKOFF = RetryStrategy(max_attempts=5, exponential_wait=2)

_OPENING = threading.Lock()


class SettingsConnector(PsycopgConnector):
    """procrastinate's psycopg connector with the platform's DSN, resolved when the
    connection pool is first opened (async for workers, sync for defer/list). It touches
    two private attributes (``_pool_args``, the sync connector's ``_pool``): procrastinate
    is pinned to 3.10.* in pyproject, and tests/test_job_queue.py covers both paths."""

    def _fill_conninfo(self) -> None:
        self._pool_args.setdefault("conninfo", get_settings().resolved_database_url())

    async def open_async(self, pool: Any = None) -> None:
        self._fill_conninfo()
        await super().open_async(pool)

    def get_sync_connector(self):
        """The sync side (defer from the server or the CLI), opened on first use: no
        ``app.open()`` to remember in every caller."""
        self._fill_conninfo()
        sync = super().get_sync_connector()
        if sync is not self and getattr(sync, "_pool", True) is None:
            with _OPENING:
                if sync._pool is None:
                    sync.open()
        return sync


app = App(connector=SettingsConnector(), import_paths=TASK_MODULES)
