"""Running and watching the job queue: ``jmgeo worker``, ``jmgeo jobs list|retry``.

A killed worker loses no job. Every worker sends a heartbeat (``JMGEO_WORKER_HEARTBEAT``
seconds, a row in ``procrastinate_workers``); a job stays ``doing`` with the id of the
worker that took it. When a worker starts, and every minute in the periodic task
``jmgeo.retry_stalled_jobs``, the jobs of workers silent for longer than
``JMGEO_WORKER_STALLED_AFTER`` seconds (procrastinate's ``get_stalled_jobs``, by
heartbeat) are put back to ``todo`` (``retry_job``) and another worker runs them. Jobs
must therefore be idempotent: a job killed halfway runs again from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from datetime import UTC, datetime
from typing import Any

from jmgeo.errors import UserError, bilingual
from jmgeo.queue import app
from jmgeo.settings import get_settings

LOGGER = logging.getLogger("jmgeo.worker")
STATUSES = ("todo", "doing", "failed", "succeeded", "cancelled", "aborting", "aborted")

_LIST = (
    "SELECT j.id, j.task_name AS task, j.queue_name AS queue, j.status::text AS status, "
    "j.attempts, j.args, j.scheduled_at, j.worker_id, "
    "(SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id "
    " AND e.type = 'deferred') AS deferred_at, "
    "(SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS updated_at "
    "FROM procrastinate_jobs j WHERE (%(status)s::text IS NULL OR j.status::text = %(status)s) "
    "AND (%(task)s::text IS NULL OR j.task_name = %(task)s) ORDER BY j.id DESC LIMIT %(limit)s")


def list_jobs(conn, *, status: str | None = None, task: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    """Jobs, newest first, filtered by status and task name (dict rows)."""
    if status is not None and status not in STATUSES:
        raise UserError(bilingual(f"未知的作业状态 {status!r}，可用：{', '.join(STATUSES)}",
                                  f"unknown job status {status!r}; use one of "
                                  f"{', '.join(STATUSES)}"))
    cur = conn.execute(_LIST, {"status": status, "task": task, "limit": limit})
    names = [d.name for d in cur.description]
    return [r if isinstance(r, dict) else dict(zip(names, r, strict=True))
            for r in cur.fetchall()]


def retry(job_id: int) -> None:
    """Run a failed (or stuck ``doing``) job again, now."""
    from procrastinate.exceptions import ConnectorException

    try:
        app.job_manager.retry_job_by_id(job_id=job_id, retry_at=datetime.now(UTC))
    except ConnectorException as exc:
        raise UserError(bilingual(f"作业 {job_id} 不存在或不是失败/执行中状态，无法重试",
                                  f"job {job_id} does not exist or is not failed/doing: "
                                  "nothing to retry")) from exc


async def retry_stalled() -> list[int]:
    """Put the jobs of silent workers back in the queue; return their ids."""
    stalled = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=get_settings().worker_stalled_after)
    for job in stalled:
        LOGGER.warning("job %s (%s) was running on a stalled worker: retrying", job.id,
                       job.task_name)
        await app.job_manager.retry_job(job)
    return [job.id for job in stalled if job.id is not None]


@app.periodic(cron="* * * * *", periodic_id="retry_stalled_jobs")
@app.task(name="jmgeo.retry_stalled_jobs", queueing_lock="jmgeo.retry_stalled_jobs")
async def retry_stalled_jobs(timestamp: int | None = None) -> list[int]:
    """Every minute: :func:`retry_stalled` (a worker's start does it too)."""
    return await retry_stalled()


async def _work(concurrency: int, queues: list[str] | None) -> None:
    s = get_settings()
    async with app.open_async():
        await retry_stalled()
        await app.run_worker_async(concurrency=concurrency, queues=queues,
                                   update_heartbeat_interval=s.worker_heartbeat,
                                   stalled_worker_timeout=s.worker_stalled_after,
                                   fetch_job_polling_interval=s.worker_poll,
                                   install_signal_handlers=True)


def run_worker(concurrency: int = 1, queues: list[str] | None = None,
               imports: list[str] | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT (running jobs are let finish)."""
    for module in imports or []:
        importlib.import_module(module)  # extra task modules (plug-ins, tests)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from jmgeo.settings import get_settings

    if not get_settings().debug:  # the queue's own lines (every job start and end, every
        # 10 s for the push dispatch) drown what the jobs say; failures still show
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
    asyncio.run(_work(concurrency, queues))


# -- the CLI ------------------------------------------------------------------------

def register_cli(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run a job-queue worker (until SIGTERM / Ctrl-C)")
    w.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    w.add_argument("--queues", nargs="+", metavar="QUEUE",
                   help="only these queues (default: all)")
    w.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="also import this task module (repeatable)")
    w.set_defaults(func=lambda a: run_worker(a.concurrency, a.queues, a.imports))
    j = sub.add_parser("jobs", help="作业队列 / the job queue: list, retry")
    jsub = j.add_subparsers(dest="jobs_cmd", required=True)
    ls = jsub.add_parser("list", help="jobs, newest first")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--task", help="task name, e.g. exchange.check_deadlines")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_list)
    r = jsub.add_parser("retry", help="run a failed job again")
    r.add_argument("id", type=int)
    r.set_defaults(func=_retry)


def _list(args: argparse.Namespace) -> None:
    from jmgeo.db import connection

    with connection() as conn:
        rows = list_jobs(conn, status=args.status, task=args.task, limit=args.limit)
    for r in rows:
        print(f"{r['id']:>6}  {r['status']:<9}  {r['task']}  queue={r['queue']}  "
              f"attempts={r['attempts']}  args={r['args']}")
    print(f"{len(rows)} job(s)")


def _retry(args: argparse.Namespace) -> None:
    retry(args.id)
    print(f"作业 {args.id} 已重新排队 / job {args.id} queued again")
