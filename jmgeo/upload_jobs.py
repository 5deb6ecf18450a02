"""Load jobs (装载作业): an upload loaded by a worker, so no request is held open for it.

``POST /layers/upload`` with ``async=true``, or any upload bigger than
``JMGEO_UPLOAD_SYNC_MAX_BYTES``, saves the file in ``JMGEO_UPLOAD_DIR/<job id>/`` and
answers **202** with the job (``Location: /layers/uploads/{id}``); the task
:func:`load_task` (on the platform queue, run by ``jmgeo worker``) loads it through
exactly the code path of ``jmgeo load`` (:func:`loaders.pipeline.load`).

* **Who**: the job is its asker's, as an export job is (``layers.policy.owns_job``: the
  same key of the same department); everybody else is told it does not exist (404).
  When it runs, the asker's key is checked again (``layers.identity.caller_for_key``): a
  key revoked since fails the job and loads nothing.
* **Cancel**: ``DELETE /layers/uploads/{id}``. A queued job is cancelled at once; a
  running one at its next batch (the load's :class:`loaders.limits.Budget` asks), rolling
  back — nothing changed, the layer's lock released.
* **Files**: the uploaded file is removed when the job ends, whichever way; a worker
  killed mid-load leaves the job ``running`` until the stalled-job retry runs it again
  from the saved file (a load is one transaction: nothing half-published).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from jmgeo.queue import app
from jmgeo.settings import database_url, get_settings
from layers import identity
from layers.policy import Caller

LOGGER = logging.getLogger(__name__)
_GET = ("SELECT j.*, d.code AS dept_code FROM load_job j JOIN department d ON "
        "d.id = j.dept_id WHERE j.id = %s")


def job_dir(job_id: str) -> Path:
    return get_settings().uploads_path / job_id


def new_job_dir() -> tuple[str, Path]:
    """A job id and its (new, empty) directory for the upload."""
    job_id = uuid.uuid4().hex
    path = job_dir(job_id)
    path.mkdir(parents=True, exist_ok=False)
    return job_id, path


def create(conn, job_id: str, caller: Caller, file_name: str, size: int,
           options: dict[str, Any]) -> dict[str, Any]:
    """Record the job (``queued``) for the caller's department; :func:`submit` queues it."""
    conn.execute(
        "INSERT INTO load_job (id, dept_id, key_id, asked_by, layer, file_name, file_bytes, "
        "options) SELECT %s, id, %s, %s, %s, %s, %s, %s FROM department WHERE code = %s",
        (job_id, caller.key_id, caller.name, options["layer"], file_name, size,
         Jsonb(options), caller.dept_code))
    return get(conn, job_id)


def submit(job_id: str) -> None:
    """Queue the task; a job that cannot be queued is failed, its file removed."""
    try:
        load_task.defer(job_id=job_id)
    except Exception:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            _finish(conn, job_id, "failed", error={
                "code": "not_queued", "description": "装载作业未能排队，请重新上传 / the load "
                "could not be queued: upload again"})
        raise


def get(conn, job_id: str) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(_GET, (job_id,)).fetchone()


def document(job: dict[str, Any], base: str) -> dict[str, Any]:
    """The job as the API shows it."""
    return {"id": job["id"], "layer": job["layer"], "file": job["file_name"],
            "bytes": job["file_bytes"], "status": job["status"],
            "cancel_requested": job["cancel_requested"], "report": job["report"],
            "error": job["error"], "created_at": job["created_at"],
            "started_at": job["started_at"], "finished_at": job["finished_at"],
            "links": [{"rel": "self", "href": f"{base}/layers/uploads/{job['id']}",
                       "type": "application/json"}]}


def cancel(conn, job_id: str) -> dict[str, Any]:
    """Ask the job to stop: a queued job ends now, a running one at its next batch."""
    conn.execute("UPDATE load_job SET cancel_requested = true WHERE id = %s AND status IN "
                 "('queued', 'running')", (job_id,))
    if conn.execute("UPDATE load_job SET status = 'cancelled', finished_at = now() WHERE "
                    "id = %s AND status = 'queued' RETURNING id", (job_id,)).fetchone():
        shutil.rmtree(job_dir(job_id), ignore_errors=True)
    return get(conn, job_id)


def _finish(conn, job_id: str, status: str, *, report=None, error=None) -> None:
    conn.execute("UPDATE load_job SET status = %s, report = %s, error = %s, finished_at = "
                 "now() WHERE id = %s", (status, Jsonb(report) if report is not None else None,
                                         Jsonb(error) if error is not None else None, job_id))
    shutil.rmtree(job_dir(job_id), ignore_errors=True)


def run(job_id: str) -> str:
    """Load one job's file (see the module docstring); returns its final status."""
    from loaders.errors import LoaderError
    from loaders.pipeline import LoadOptions, load

    with psycopg.connect(database_url(), autocommit=True) as conn:
        job = get(conn, job_id)
        if job is None or job["status"] in ("done", "failed", "cancelled"):
            return job["status"] if job else "missing"
        if job["cancel_requested"]:
            _finish(conn, job_id, "cancelled")
            return "cancelled"
        if job["key_id"] is not None and identity.caller_for_key(conn, job["key_id"]) is None:
            _finish(conn, job_id, "failed", error={
                "code": "key_revoked", "description": "上传者的 API 密钥已撤销或过期，未装载 / "
                "the uploader's API key was revoked or expired: nothing was loaded"})
            return "failed"
        conn.execute("UPDATE load_job SET status = 'running', started_at = now() WHERE "
                     "id = %s", (job_id,))
        path = job_dir(job_id) / job["file_name"]

        def cancelled() -> bool:
            row = conn.execute("SELECT cancel_requested FROM load_job WHERE id = %s",
                               (job_id,)).fetchone()
            return bool(row and row[0])

        opts = LoadOptions(**{**job["options"], "cancelled": cancelled})
        try:
            report = load(path, opts, display=job["file_name"], progress=False)
        except LoaderError as exc:
            status = "cancelled" if exc.code == "load_cancelled" else "failed"
            _finish(conn, job_id, status, error={"code": exc.code,
                                                 "description": exc.message})
            return status
        _finish(conn, job_id, "done", report=report)
        return "done"


@app.task(name="layers.load_upload", pass_context=True)
def load_task(context, job_id: str) -> str:
    """Run one load job (not retried: a load's refusal is the answer; a crash leaves the
    job ``running`` for the stalled-job retry to run again)."""
    try:
        return run(job_id)
    except Exception:
        LOGGER.exception("load job %s failed", job_id)
        with psycopg.connect(database_url(), autocommit=True) as conn:
            _finish(conn, job_id, "failed", error={
                "code": "internal", "description": "装载作业出错，未作任何更改 / the load job "
                "failed; nothing was changed"})
        raise
