"""``GET /downloads/{name}``: checks, ETag / 304, audit, headers — then the file from the
cache (:mod:`jmgeo.downloads.cache`, built by one of the writers when absent; ``Range``
answered 206 by ``FileResponse``), or an export job (``GET /downloads/jobs/{id}``,
``…/file``: :mod:`jmgeo.downloads.jobs`). Every delivery is counted
(``jmgeo.http.count_delivery``) once its last byte has left; a range request counts its
bytes but no rows (the rows were counted with the delivery it resumes)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask, BackgroundTasks

from jmgeo import etags
from jmgeo.db import connection
from jmgeo.downloads import cache, jobs
from jmgeo.downloads.export import Export
from jmgeo.downloads.files import (
    CRS_HEADER_FORMATS,
    FORMATS,
    TABLE_FORMATS,
    default_format,
    filename,
    write_file,
)
from jmgeo.errors import bilingual
from jmgeo.http import (
    VARY_CALLER,
    CallerDep,
    LayerInPath,
    ResourceNotFound,
    audit_or_503,
    count_delivery,
    envelope,
)
from jmgeo.settings import get_settings
from layers.policy import Caller, lookup, owns_job
from layers.record_log import Records
from spatial.crs import EPSG_URI

LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["downloads"])

__all__ = ["FORMATS", "TABLE_FORMATS", "router"]
STORAGE_CRS_URI = EPSG_URI.format(code=4490)
REGION_CODE_RE = re.compile(r"^[0-9]{6}([0-9]{3})?$")


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "type": code, "description": description},
                        status_code=status)


def _headers(caller: Caller, name: str, title: str) -> dict[str, str]:
    ascii_name = name
    pretty = quote(title + name[name.index("."):]) if title else quote(name)
    return {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{pretty}",
        "Cache-Control": "public, max-age=60" if caller.kind == "anonymous"
        else "private, no-store",
        "Vary": VARY_CALLER,
    }


def _check_request(conn, row: dict, name: str, fmt: str,
                   region: str | None) -> JSONResponse | None:
    """The 400s, after the policy's 404 (so a bad parameter is no oracle)."""
    if row["kind"] == "raster":
        return _error(400, "InvalidParameterValue",
                      f"栅格图层请通过 /ogc/collections/{name}/coverage 获取 / raster "
                      f"layer: use /ogc/collections/{name}/coverage")
    if row["kind"] == "table":
        if fmt not in TABLE_FORMATS:
            return _error(400, "InvalidParameterValue",
                          f"format: 表格资源没有几何，不支持 {fmt!r} / {name} is a table (no "
                          f"geometry): format {fmt!r} unsupported; use one of "
                          f"{', '.join(TABLE_FORMATS)}")
        if region is not None:
            return _error(400, "InvalidParameterValue",
                          f"region: 表格资源没有几何，不能按区划下载 / {name} is a table (no "
                          "geometry): its rows lie in no region; leave out region")
        return None
    if fmt not in FORMATS:
        return _error(400, "InvalidParameterValue",
                      f"format: 不支持的格式 {fmt!r} / unsupported format {fmt!r}; "
                      f"use one of {', '.join(FORMATS)}")
    if region is None:
        return None
    if not REGION_CODE_RE.match(region):
        return _error(400, "InvalidParameterValue",
                      f"region: 区划代码应为6位或9位数字 / a region code has 6 or 9 digits: "
                      f"{region[:20]!r}")
    known = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM public.region WHERE code = %s AND valid_to IS "
        "NULL) AS known, EXISTS (SELECT 1 FROM public.region_part WHERE code = %s) "
        "AS shaped", (region, region)).fetchone()
    if not known["known"]:
        return _error(400, "InvalidParameterValue",
                      f"region: 区划代码不存在 / unknown region code: {region}")
    if not known["shaped"]:
        return _error(400, "InvalidParameterValue",
                      f"region: 区划 {region} 暂无边界数据 / region {region} has no "
                      "boundary polygon yet: use its county code")
    return None


@router.get("/downloads/jobs/{job_id}", summary="批量下载作业 / an export job: status, progress")
def export_job(job_id: str, caller: CallerDep, request: Request) -> JSONResponse:
    """The job's status and progress (rows done of rows total) and, once done, its file's
    link until it expires. Only its asker (same key, same department) sees it: anyone
    else gets the standard 404."""
    job = _own_job(job_id, caller)
    return JSONResponse(jsonable(jobs.document(job, _base(request))),
                        headers={"Cache-Control": "no-store"})


@router.get("/downloads/jobs/{job_id}/file",
            summary="批量下载作业的文件 / the file of a done export job (until it expires)")
def export_job_file(job_id: str, caller: CallerDep, request: Request):
    """The file the job wrote — what the synchronous download would have sent — until it
    expires (then 410). The caller's access is asked again and the fetch audited: no
    audit row, no data."""
    job = _own_job(job_id, caller)
    if jobs.expired(job) or (job["status"] == "done" and not Path(job["file_path"]).exists()):
        return envelope(410, bilingual(
            f"下载链接已于 {job['expires_at']:%Y-%m-%d %H:%M} 过期，文件已删除，请重新下载",
            f"this export expired at {job['expires_at']:%Y-%m-%d %H:%M %Z} and its file "
            f"was deleted: ask for the download again (GET /downloads/{job['layer']})"),
            "Gone")
    if job["status"] != "done":
        return envelope(409, bilingual(
            f"导出作业尚未完成（{job['status']}）", f"the export is {job['status']}, not done"
            + (f": {job['error']}" if job["error"] else f": poll /downloads/jobs/{job_id}")),
            "Conflict")
    with connection() as conn:
        row, access = lookup(conn, caller, job["layer"])
    if access is None:
        raise ResourceNotFound()
    refused = audit_or_503(caller, access, "download", request, int(job["rows_done"]),
                           records=_records(job["layer"], job["version"],
                                            (job["params"] or {}).get("region")))
    if refused is not None:
        return refused
    name = filename(job["layer"], (job["params"] or {}).get("region"), job["format"])
    headers = _headers(caller, name, _title(row, job["format"],
                                            (job["params"] or {}).get("region")))
    headers["Cache-Control"] = "private, no-store"  # the link is its asker's
    if job["notes"]:
        headers["Warning"] = ", ".join(f'299 jmgeo "{n}"' for n in job["notes"])
    return FileResponse(job["file_path"], media_type=FORMATS[job["format"]][1],
                        headers=headers, background=BackgroundTask(
                            count_delivery, caller, access, "download", int(job["rows_done"]),
                            int(job["bytes"] or 0), f"{job['format']} job {job_id}"))


def _own_job(job_id: str, caller: Caller) -> dict:
    with connection() as conn:
        job = jobs.get(conn, job_id)
    if job is None or not owns_job(caller, job["key_id"], job["dept_code"]):
        raise ResourceNotFound()
    return job


def _base(request: Request) -> str:
    """Links from configuration, never from the request's Host (``jmgeo.ogc.router``)."""
    return get_settings().base_url


def jsonable(doc: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in doc.items()}


def _records(layer: str, version: int | None, region: str | None) -> Records | None:
    """What a download hands out, for the record-level log: every record of the version
    (a table resource, which record logs are kept for, takes no region)."""
    return Records(layer=layer, version=version, whole=True) if region is None else None


def _title(row, fmt: str, region: str | None) -> str:
    title = (row.get("title") or "") + (f"_{region}" if region else "")
    return title + ("_gbk" if fmt.endswith("-gbk") else "") if title else ""


@router.get("/downloads/{layer}",
            summary="批量下载 / download a layer or table (or a region's part of a layer)")
def download(resource: LayerInPath, caller: CallerDep, request: Request,
             format: str | None = Query(
                 None, description="layers: gpkg (default) | shp | shp-gbk | csv | csv-gbk "
                                   "| xlsx | geojson; tables: csv (default) | csv-gbk | xlsx"),
             region: str | None = Query(None, description="区划代码, e.g. 440781 (layers)"),
             as_job: bool = Query(False, alias="async", description=(
                 "true: always as an export job (202); otherwise a job only over "
                 "JMGEO_EXPORT_SYNC_MAX_ROWS rows"))):
    """Stream a whole layer or table, or the part of a layer in one region, as the caller
    may have it. A resource the caller may not have answers the standard 404 before
    any parameter is looked at (``LayerInPath``), so a bad parameter is no oracle.
    More rows than ``JMGEO_EXPORT_SYNC_MAX_ROWS`` (or ``async=true``): 202 and an export
    job document, ``Location: /downloads/jobs/{id}``."""
    row, access, layer = resource.row, resource.access, resource.name
    with connection() as conn:
        fmt = format or default_format(row["kind"])
        refused = _check_request(conn, row, layer, fmt, region)
        if refused is not None:
            return refused
        export = Export(conn, row, access, region)
        job = None
        if as_job or export.estimate(conn) > get_settings().export_sync_max_rows:
            job = jobs.create(conn, caller, row, fmt, region)
    if job is not None:
        jobs.submit(job["id"])
        doc = jsonable(jobs.document(job, _base(request)))
        return JSONResponse(doc, status_code=202, headers={
            "Location": f"/downloads/jobs/{job['id']}", "Cache-Control": "no-store"})
    headers = _headers(caller, filename(layer, region, fmt), _title(row, fmt, region))
    tag = cache.etag(row, access, fmt, region, export.loaded_at)
    headers["ETag"] = tag
    if fmt in CRS_HEADER_FORMATS and not export.is_table:
        headers["Content-Crs"] = f"<{STORAGE_CRS_URI}>"  # the WKT column's CRS
    if etags.matches(request.headers.get("if-none-match"), tag):
        # the caller's copy is current: no data leaves; non-open data is audited all the
        # same (status 304, 0 rows), and without the audit row no answer either
        refused = audit_or_503(caller, access, "download", request, 0, status=304)
        return refused or Response(status_code=304, headers=headers)
    entry = cache.get(tag)
    if entry is None:
        entry = _build(export, fmt, tag)
    partial = "range" in request.headers
    refused = audit_or_503(caller, access, "download", request, entry.rows,
                           status=206 if partial else 200,
                           records=_records(layer, row.get("current_version"), region))
    if refused is not None:
        _discard(entry)
        return refused
    if entry.notes:
        headers["Warning"] = ", ".join(f'299 jmgeo "{n}"' for n in entry.notes)
    detail = (fmt if region is None else f"{fmt} region {region}") + \
        (" (range)" if partial else "")
    after = BackgroundTasks()
    # a range is the rest of a delivery already counted: its bytes, no rows again
    after.add_task(count_delivery, caller, access, "download", 0 if partial else entry.rows,
                   entry.path.stat().st_size, detail)
    if entry.temporary:
        after.add_task(_discard, entry)
    return FileResponse(entry.path, media_type=FORMATS[fmt][1], headers=headers,
                        background=after)


def _build(export: Export, fmt: str, tag: str) -> cache.Entry:
    """Write the download into a fresh directory and keep it in the cache."""
    work = cache.workdir()
    try:
        path, written, notes = write_file(export, fmt, work)
        return cache.put(tag, path, written, notes)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _discard(entry: cache.Entry) -> None:
    if entry.temporary:
        shutil.rmtree(entry.path.parent, ignore_errors=True)
