"""Export jobs (批量下载作业): a download too large to answer at once, written by a worker.

``GET /downloads/{name}`` answers a download of more than ``JMGEO_EXPORT_SYNC_MAX_ROWS``
rows (or any with ``?async=true``) with 202 and an ``export_job`` row; the task
:func:`export_task` (on the platform queue, run by ``jmgeo worker``) writes the *same*
file the synchronous route would send — the one dispatch :func:`files.write_file` — into
``JMGEO_EXPORT_DIR``, counting ``rows_done`` of ``rows_total`` as batches go.

* **Who**: a job keeps its asker (API key, department). When it runs, the key and the
  caller's access are checked again (``layers.policy.lookup``): a key revoked or a grant
  revoked or expired since the request → the job fails, saying so; nothing is written.
  It exports the version that was current when it was asked for.
* **Killed worker**: the file is written in a hidden ``.<id>.part`` directory and renamed
  into place only when complete, then the row says ``done``; a job killed halfway is run
  again from the start by the stalled-job retry (:mod:`jmgeo.jobs`) and no half file is
  ever served (the route serves only ``done`` rows' files).
* **Expiry**: a done job's file is kept ``JMGEO_EXPORT_TTL_HOURS``; the periodic
  :func:`expire_exports_job` deletes expired files and marks their jobs ``expired``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from jmgeo.downloads.export import Export
from jmgeo.downloads.files import FORMATS, write_file
from jmgeo.errors import bilingual
from jmgeo.queue import BACKOFF, app
from jmgeo.settings import database_url, get_settings
from layers.identity import caller_for_key
from layers.policy import ANONYMOUS, Caller, lookup

LOGGER = logging.getLogger(__name__)
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
PROGRESS_EVERY = 0.5  # seconds between progress writes

_GET = ("SELECT j.*, l.name AS layer, l.title, d.code AS dept_code FROM export_job j "
        "JOIN layer l ON l.id = j.layer_id LEFT JOIN department d ON d.id = j.dept_id "
        "WHERE j.id = %s")


class Refused(Exception):
    """The job may not run for its asker any more (the message says why, bilingual)."""


def create(conn, caller: Caller, row: dict[str, Any], fmt: str, region: str | None) -> dict:
    """Record an export job for ``caller`` (status ``queued``); :func:`submit` queues it."""
    job_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO export_job (id, layer_id, version, key_id, dept_id, format, params) "
        "VALUES (%s, %s, %s, %s, (SELECT id FROM department WHERE code = %s), %s, "
        "jsonb_build_object('region', %s::text))",
        (job_id, row["id"], row["current_version"], caller.key_id, caller.data_dept, fmt,
         region))
    return get(conn, job_id)


def submit(job_id: str) -> None:
    """Queue the job's task (a separate step: the row exists before any worker sees it).
    A job that cannot be queued is marked failed (never left ``queued`` for ever)."""
    try:
        export_task.defer(job_id=job_id)
    except Exception:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            _finish_failed(conn, job_id, bilingual("导出作业未能排队，请重试",
                                                   "the export could not be queued: retry"))
        raise


def get(conn, job_id: str) -> dict | None:
    """The job with its resource's name and title and its department's code."""
    if not JOB_ID_RE.match(job_id):
        return None
    return conn.cursor(row_factory=dict_row).execute(_GET, (job_id,)).fetchone()


def expired(job: dict) -> bool:
    return job["status"] == "expired" or (
        job["status"] == "done" and job["expires_at"] is not None
        and job["expires_at"] <= datetime.now(UTC))


def document(job: dict, base: str) -> dict:
    """The job as the API shows it (``base``: the platform's URL, no trailing slash)."""
    status = "expired" if expired(job) else job["status"]
    href = f"{base}/downloads/jobs/{job['id']}"
    links = [{"rel": "self", "href": href, "type": "application/json"}]
    if status == "done":
        links.append({"rel": "enclosure", "href": f"{href}/file",
                      "type": FORMATS[job["format"]][1]})
    done, total = int(job["rows_done"]), job["rows_total"]
    return {
        "id": job["id"], "resource": job["layer"], "version": job["version"],
        "format": job["format"], "region": (job["params"] or {}).get("region"),
        "status": status,
        "progress": {"rows_done": done, "rows_total": total,
                     "percent": round(100.0 * done / total, 1) if total else
                     (100.0 if status == "done" else 0.0)},
        "bytes": job["bytes"], "error": job["error"], "notes": job["notes"] or [],
        "created_at": job["created_at"], "finished_at": job["finished_at"],
        "expires_at": job["expires_at"], "links": links}


# -- running one job ------------------------------------------------------------------

def _caller(conn, job: dict) -> Caller:
    """The asker, as the key stands now (a revoked or expired key refuses the job)."""
    if job["key_id"] is None:
        return ANONYMOUS
    caller = caller_for_key(conn, job["key_id"])
    if caller is None:
        raise Refused(bilingual("申请导出的密钥已撤销、停用或过期，导出未执行",
                                "the API key that asked for this export was revoked, "
                                "disabled or expired: nothing was exported; ask again "
                                "with a valid key"))
    return caller


def _source(conn, job: dict, caller: Caller) -> tuple[dict, Any]:
    """The resource row (at the job's version) and the caller's access now."""
    row, access = lookup(conn, caller, job["layer"])
    if access is None:
        raise Refused(bilingual(
            f"您已无权获取资源 {job['layer']} 的数据（授权已撤销或到期），导出未执行",
            f"your access to the data of {job['layer']} was withdrawn since the export "
            "was asked for (grant revoked or expired): nothing was exported; file a "
            "share request to get it again"))
    version = conn.execute("SELECT table_name FROM layer_version WHERE layer_id = %s AND "
                           "version = %s", (row["id"], job["version"])).fetchone()
    if version is None:
        raise Refused(bilingual(
            f"资源 {job['layer']} 的版本 {job['version']} 已清理，请重新下载",
            f"version {job['version']} of {job['layer']} was pruned: ask for the "
            "download again (it exports the current version)"))
    return {**row, "table_name": version["table_name"]}, access


class _Progress:
    """``Export.progress`` of a job: rows_done written at most every PROGRESS_EVERY s."""

    def __init__(self, conn, job_id: str) -> None:
        self.conn, self.job_id, self.done, self.at = conn, job_id, 0, 0.0

    def __call__(self, rows: int) -> None:
        self.done += rows
        if time.monotonic() - self.at >= PROGRESS_EVERY:
            self.at = time.monotonic()
            self.conn.execute("UPDATE export_job SET rows_done = %s WHERE id = %s",
                              (self.done, self.job_id))


def _part_dir(job_id: str) -> Path:
    return get_settings().exports_path / f".{job_id}.part"


def run(job_id: str) -> str:
    """Write the job's file; returns the status it ends in. Idempotent: a job already
    done, failed or expired is left alone; a running one (a killed run) starts over."""
    with psycopg.connect(database_url(), autocommit=True, row_factory=dict_row) as conn:
        claimed = conn.execute(
            "UPDATE export_job SET status = 'running', rows_done = 0, error = NULL "
            "WHERE id = %s AND status IN ('queued', 'running') RETURNING id",
            (job_id,)).fetchone()
        job = get(conn, job_id) if claimed else None
        if job is None:
            return "gone"
        part = _part_dir(job_id)
        shutil.rmtree(part, ignore_errors=True)  # what a killed run left
        try:
            row, access = _source(conn, job, _caller(conn, job))
        except Refused as exc:
            _finish_failed(conn, job_id, str(exc))
            return "failed"
        export = Export(conn, row, access, (job["params"] or {}).get("region"))
        conn.execute("UPDATE export_job SET rows_total = %s WHERE id = %s",
                     (export.count(conn), job_id))
        export.progress = _Progress(conn, job_id)
        part.mkdir(parents=True)
        try:
            path, written, notes = write_file(export, job["format"], part)
            final = part.parent / f"{job_id}{FORMATS[job['format']][0]}"
            os.replace(path, final)  # complete, or not there at all
        finally:
            shutil.rmtree(part, ignore_errors=True)
        conn.execute(
            "UPDATE export_job SET status = 'done', rows_done = %s, rows_total = %s, "
            "bytes = %s, file_path = %s, notes = %s, finished_at = now(), "
            "expires_at = now() + make_interval(secs => %s) WHERE id = %s",
            (written, written, final.stat().st_size, str(final), notes or None,
             get_settings().export_ttl_hours * 3600, job_id))
        LOGGER.info("export %s of %s: %s rows, %s", job_id, job["layer"], written, final)
        return "done"


def _finish_failed(conn, job_id: str, message: str, final: bool = True) -> None:
    conn.execute("UPDATE export_job SET status = %s, error = %s, finished_at = "
                 "CASE WHEN %s THEN now() END WHERE id = %s",
                 ("failed" if final else "queued", message, final, job_id))


@app.task(name="downloads.export", retry=BACKOFF, pass_context=True)
def export_task(context, job_id: str) -> str:
    """Run one export job; an error is retried (BACKOFF), the last attempt's marks the
    job failed with the error."""
    try:
        return run(job_id)
    except Exception as exc:
        last = context.job.attempts + 1 >= (BACKOFF.max_attempts or 1)
        LOGGER.exception("export %s failed (attempt %s)", job_id, context.job.attempts + 1)
        with psycopg.connect(database_url(), autocommit=True) as conn:
            _finish_failed(conn, job_id, bilingual(
                "导出出错" + ("" if last else "，将重试"),
                f"export error{'' if last else ', will retry'}: {type(exc).__name__}: "
                f"{exc}"), last)
        raise


# -- expiry ---------------------------------------------------------------------------

def expire(conn) -> int:
    """Delete the files of jobs past their expiry and mark the jobs ``expired``; returns
    how many. Idempotent (a file already gone is fine)."""
    rows = conn.execute(
        "SELECT id, file_path FROM export_job WHERE file_path IS NOT NULL AND "
        "(status = 'expired' OR (status = 'done' AND expires_at <= now()))").fetchall()
    for job_id, file_path in ((r["id"], r["file_path"]) if isinstance(r, dict) else r
                              for r in rows):
        Path(file_path).unlink(missing_ok=True)
        conn.execute("UPDATE export_job SET status = 'expired', file_path = NULL "
                     "WHERE id = %s", (job_id,))
    return len(rows)


@app.periodic(cron="*/10 * * * *", periodic_id="expire_exports")
@app.task(name="downloads.expire_exports", queueing_lock="downloads.expire_exports",
          retry=BACKOFF)
def expire_exports_job(timestamp: int | None = None) -> int:
    """Every 10 minutes: :func:`expire`."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return expire(conn)
