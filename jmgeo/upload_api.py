"""``POST /layers/upload``: a department uploads a file (a zip, or one file) and it goes
through exactly the code path of ``jmgeo load`` (:func:`loaders.pipeline.load`).

The caller must be authenticated as a department and may load layers only for its own
department. Refusals are JSON with a bilingual ``description``: 401 (not a department),
403 (another department), 413 (too big), 422 (the file or options — the loader's one
clear message, with its stable ``code``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jmgeo import upload_jobs
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import AUTH_CHALLENGE, CallerDep, envelope
from jmgeo.settings import get_settings
from layers.policy import owns_job
from layers.vocab import SHARING_CLASSES

router = APIRouter(tags=["loaders"])
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _error(status: int, code: str, description: str, **extra) -> JSONResponse:
    return envelope(status, description, code, AUTH_CHALLENGE if status == 401 else None,
                    **extra)


_signals_chained = False


def _stop_loads_on_shutdown() -> None:
    """On SIGTERM/SIGINT, stop the running loads (``loaders.limits.stop_all``) before the
    server's own handler: a graceful shutdown waits for open requests, and an upload's
    load could take minutes holding its layer's lock. Each load then stops at its next
    batch, rolls back, and its request removes its temporary files (the ``finally``
    below). Chained once, from the event loop's (main) thread, after uvicorn installed
    its handlers; elsewhere (tests' portal threads) there is nothing to chain."""
    global _signals_chained
    import signal
    import threading

    from loaders.limits import stop_all

    if _signals_chained or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            stop_all()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
        signal.signal(sig, handler)
    _signals_chained = True


def _safe_name(name: str | None) -> str:
    base = re.split(r"[\\/]", name or "")[-1].strip().lstrip(".")
    base = re.sub(r"[\x00-\x1f]", "", base)
    return base[:200] or "upload.bin"


def _parse_sensitive(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, _, kind = item.partition("=")
        out[name.strip()] = kind.strip()
    return out


@router.post("/layers/upload", summary="装载文件为部门图层 / load a file as a department layer",
             responses={401: {"description": "not authenticated as a department"},
                        403: {"description": "another department's layer"},
                        413: {"description": "file too large"},
                        503: {"description": "the server is shutting down (load stopped)"},
                        422: {"description": "the file or an option cannot be loaded"}})
async def upload_layer(
    caller: CallerDep,
    file: UploadFile = File(..., description="a .zip (Shapefile with its parts, …) or one "
                            "file: .gpkg, .geojson, .csv, .kml, .tif"),
    dept: str = Form(..., description="owner department code; must be the caller's"),
    layer: str = Form(..., description="layer name (lowercase ascii)"),
    theme: str = Form(...),
    sharing: str = Form(..., description=" | ".join(SHARING_CLASSES)),
    legal_basis: str | None = Form(None, description="法律依据 (required for not_shared)"),
    src_crs: str | None = Form(None),
    encoding: str | None = Form(None),
    key: str | None = Form(None, description="unique key field (required for kind=table)"),
    kind: str | None = Form(None, description="table: records without geometry (CSV, XLSX, "
                            "DBF, GeoPackage attribute table), keyed by `key`"),
    sheet: str | None = Form(None, description="XLSX: the sheet (default: the first)"),
    dry_run: bool = Form(False),
    title: str | None = Form(None),
    description: str | None = Form(None),
    update_cycle: str = Form("other"),
    source_layer: str | None = Form(None),
    allow_outside: bool = Form(False),
    strict: bool = Form(False),
    force_2d: bool = Form(False),
    swap_xy: bool = Form(False),
    sensitive: str | None = Form(None, description="FIELD=KIND,FIELD=KIND …"),
    as_job: bool = Form(False, alias="async", description="load as a job: answer 202 at "
                        "once (uploads over JMGEO_UPLOAD_SYNC_MAX_BYTES always are)"),
) -> JSONResponse:
    """Same options and same checks as ``jmgeo load``; ``dry_run`` reports only. A big
    upload (or ``async=true``) is a load job: 202, then ``GET /layers/uploads/{id}``."""
    from loaders.errors import LoaderError
    from loaders.pipeline import LoadOptions, load

    if not caller.is_department:
        return _error(401, "Unauthorized", "需要以部门身份认证才能上传图层 / uploading a layer "
                      "requires authenticating as a department (API key or token)")
    if caller.dept_code != dept:
        return _error(403, "Forbidden", f"只能为本部门（{caller.dept_code}）装载图层，不能为 {dept} "
                      f"装载 / you may load layers only for your own department "
                      f"({caller.dept_code}), not for {dept!r}")
    _stop_loads_on_shutdown()
    settings = get_settings()
    options = dict(
        dept=dept, layer=layer, theme=theme, sharing=sharing, legal_basis=legal_basis,
        src_crs=src_crs or None, encoding=encoding or None, key=key or None,
        dry_run=dry_run, title=title, description=description,
        update_cycle=update_cycle, source_layer=source_layer or None,
        allow_outside=allow_outside, strict=strict, force_2d=force_2d, swap_xy=swap_xy,
        sensitive=_parse_sensitive(sensitive), loaded_by=f"api:{caller.name}",
        kind=kind or None, sheet=sheet or None)
    job_id, tmp = upload_jobs.new_job_dir()
    queued = False
    try:
        name = _safe_name(file.filename)
        size = await _save(file, tmp / name, settings.upload_max_bytes)
        if size is None:
            return _error(413, "PayloadTooLarge",
                          f"文件超过 {settings.upload_max_bytes / 1e9:.1f} GB 上限 / the upload "
                          f"exceeds the {settings.upload_max_bytes / 1e9:.1f} GB limit: use "
                          "`jmgeo load` on the server for bigger files")
        if as_job or size > settings.upload_sync_max_bytes:
            with connection() as conn:
                job = upload_jobs.create(conn, job_id, caller, name, size, options)
            upload_jobs.submit(job_id)
            queued = True
            doc = jsonable_encoder(upload_jobs.document(job, settings.base_url.rstrip("/")))
            return JSONResponse(doc, status_code=202, headers={
                "Location": f"/layers/uploads/{job_id}", "Cache-Control": "no-store"})
        try:
            report = await run_in_threadpool(load, tmp / name, LoadOptions(**options),
                                             display=name, progress=False)
        except LoaderError as exc:
            if exc.code == "load_stopped":  # the server is shutting down: try again later
                return _error(503, exc.code, exc.message, file=name)
            return _error(422, exc.code, exc.message, file=name)
        return JSONResponse(report, status_code=200 if dry_run else 201)
    finally:
        await file.close()
        if not queued:  # a job's file waits for the worker, which removes it
            shutil.rmtree(tmp, ignore_errors=True)


async def _save(file: UploadFile, target: Path, max_bytes: int) -> int | None:
    """Write the upload to ``target``; its size, or None past ``max_bytes``."""
    size = 0
    with open(target, "wb") as out:
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                return None
            out.write(chunk)
    return size


def _job_for(caller, job_id: str) -> dict:
    if not JOB_ID_RE.match(job_id):
        raise HTTPException(404, bilingual("没有该装载作业", "no such load job"))
    with connection() as conn:
        job = upload_jobs.get(conn, job_id)
    # another asker's job is one that does not exist
    if job is None or not owns_job(caller, job["key_id"], job["dept_code"]):
        raise HTTPException(404, bilingual("没有该装载作业", "no such load job"))
    return job


@router.get("/layers/uploads/{job_id}", summary="装载作业 / a load job: status, report")
def upload_job(job_id: str, caller: CallerDep) -> JSONResponse:
    """The job of ``POST /layers/upload`` answered 202: ``queued``, ``running``, ``done``
    (with the load report), ``failed`` (with the loader's error) or ``cancelled``."""
    if not caller.is_department:
        return _error(401, "Unauthorized", "需要以部门身份认证 / authenticate as a department")
    job = _job_for(caller, job_id)
    return JSONResponse(jsonable_encoder(upload_jobs.document(job, get_settings().base_url.rstrip(
        "/"))), headers={"Cache-Control": "no-store"})


@router.delete("/layers/uploads/{job_id}", summary="取消装载作业 / cancel a load job")
def cancel_upload_job(job_id: str, caller: CallerDep) -> JSONResponse:
    """Cancel: a queued job now, a running one at its next batch (nothing is changed)."""
    if not caller.is_department:
        return _error(401, "Unauthorized", "需要以部门身份认证 / authenticate as a department")
    job = _job_for(caller, job_id)
    if job["status"] in ("done", "failed", "cancelled"):
        return _error(409, "Conflict", f"装载作业已结束（{job['status']}），无法取消 / the load job "
                      f"has ended ({job['status']}): nothing to cancel")
    with connection() as conn:
        job = upload_jobs.cancel(conn, job_id)
    return JSONResponse(jsonable_encoder(upload_jobs.document(job, get_settings().base_url.rstrip(
        "/"))), status_code=202)
