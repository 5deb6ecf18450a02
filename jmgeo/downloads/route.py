"""``GET /downloads/{name}``: checks, audit, headers — then one of the writers."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from jmgeo.db import connection
from jmgeo.downloads import flat, ogr
from jmgeo.downloads.export import Export
from jmgeo.http import CallerDep, LayerInPath, audit_or_503
from layers.policy import Caller

LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["downloads"])

FORMATS = {  # format → (file extension, media type)
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "shp": (".zip", "application/zip"),
    "shp-gbk": (".zip", "application/zip"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "csv-gbk": (".csv", "text/csv; charset=gbk"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "geojson": (".geojson", "application/geo+json"),
}
TABLE_FORMATS = ("csv", "csv-gbk", "xlsx")  # a table has no geometry: no GIS formats
STREAMED = {"csv": flat.stream_csv, "csv-gbk": flat.stream_csv_gbk,
            "geojson": flat.stream_geojson}
REGION_CODE_RE = re.compile(r"^[0-9]{6}([0-9]{3})?$")


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "type": code, "description": description},
                        status_code=status)


def _headers(caller: Caller, filename: str, title: str) -> dict[str, str]:
    ascii_name = filename
    pretty = quote(title + filename[filename.index("."):]) if title else quote(filename)
    return {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{pretty}",
        "Cache-Control": "public, max-age=60" if caller.kind == "anonymous"
        else "private, no-store",
        "Vary": "Authorization, X-API-Key",
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


@router.get("/downloads/{layer}",
            summary="批量下载 / download a layer or table (or a region's part of a layer)")
def download(resource: LayerInPath, caller: CallerDep, request: Request,
             format: str | None = Query(
                 None, description="layers: gpkg (default) | shp | shp-gbk | csv | csv-gbk "
                                   "| xlsx | geojson; tables: csv (default) | csv-gbk | xlsx"),
             region: str | None = Query(None, description="区划代码, e.g. 440781 (layers)")):
    """Stream a whole layer or table, or the part of a layer in one region, as the caller
    may have it. A resource the caller may not have answers the standard 404 before
    any parameter is looked at (``LayerInPath``), so a bad parameter is no oracle."""
    row, access, layer = resource.row, resource.access, resource.name
    with connection() as conn:
        fmt = format or ("csv" if row["kind"] == "table" else "gpkg")
        refused = _check_request(conn, row, layer, fmt, region)
        if refused is not None:
            return refused
        export = Export(conn, row, access, region)
        rows = export.count(conn) if access.audited and fmt in STREAMED else None
    ext, media_type = FORMATS[fmt]
    stem = layer if region is None else f"{layer}_{region}"
    suffix = "_gbk" if fmt.endswith("-gbk") else ""
    filename = f"{stem}{suffix}{ext}"
    title = (row.get("title") or "") + (f"_{region}" if region else "")
    headers = _headers(caller, filename, title + suffix if title else "")
    if fmt in STREAMED:
        refused = audit_or_503(caller, access, "download", request, rows)
        if refused is not None:
            return refused
        return StreamingResponse(STREAMED[fmt](export), media_type=media_type,
                                 headers=headers)
    tmp = Path(tempfile.mkdtemp(prefix="jmgeo-dl-"))
    try:
        if fmt == "xlsx":
            path, written = flat.write_xlsx(export, tmp)
            notes: list[str] = []
        else:
            path, written, notes = ogr.write_ogr(export, fmt, tmp)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    refused = audit_or_503(caller, access, "download", request, written)
    if refused is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        return refused
    if notes:
        headers["Warning"] = ", ".join(f'299 jmgeo "{n}"' for n in notes)
    return FileResponse(path, media_type=media_type, headers=headers,
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
