"""系统对接 — feeds (issue 11 §2): a resource's records in full, or what changed since a
version, for a department system.

``GET /exchange/feeds/{name}`` — the full pull: every record of the current version the
caller may have (op ``insert``).
``GET /exchange/feeds/{name}?since=V`` — the incremental pull: the inserts, updates and
deletes **by key** between version V and the current one, exactly as this caller sees
them (``exchange.feeds``, ``layers.changes``): a record leaving the grant's regions is a
delete, a change to a field the grant leaves out is no change.

Formats (``?format=``): ``ndjson`` (default; one JSON object per line), ``geojsonseq``
(RFC 8142 GeoJSON text sequences: RS, a Feature, LF — with ``id`` the key and ``op`` a
foreign member) and ``csv`` (UTF-8 with BOM; ``op`` and the fields; a layer's geometry as
WKT in CGCS2000). The version range travels in headers — ``Jmgeo-From-Version``,
``Jmgeo-To-Version``, ``Jmgeo-Full`` — and ``Link: <…?since=TO>; rel="next"`` is the
next pull. A ``since`` older than the retained history answers 410 with the oldest
version a pull may start from; a ``since`` that is no version, 400.

Every pull of non-open data is audited before the first byte (``action="feed"``); the
delivery (rows, bytes) is counted after the last (``exchange.deliveries``, mode
``system``). The route resolves the version range once; records stream from one
transaction over the immutable version tables it names.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from exchange.feeds import Feed, FeedRefused
from jmgeo.db import connection
from jmgeo.http import CallerDep, NameInPath, audit_or_503, count_delivery, envelope
from layers import changes
from layers.policy import Access, Caller
from layers.record_log import for_plan

LOGGER = logging.getLogger(__name__)
router = APIRouter(prefix="/exchange/feeds", tags=["exchange"])

MEDIA = {"ndjson": "application/x-ndjson", "geojsonseq": "application/geo+json-seq",
         "csv": "text/csv; charset=utf-8"}


def _csv_rows(feed: Feed, records: Iterator[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    header = ["op", *feed.names] + ([] if feed.is_table else ["geometry_wkt"])
    w.writerow(header)
    yield "\ufeff" + buf.getvalue()
    for rec in records:
        buf.seek(0)
        buf.truncate()
        props = rec["properties"] or {feed.key: rec["key"]}
        row = [rec["op"], *(props.get(n) for n in feed.names)]
        if not feed.is_table:
            row.append(rec.get("geometry") or "")
        w.writerow(row)
        yield buf.getvalue()


def _stream(caller: Caller, access: Access, feed: Feed, fmt: str,
            detail: str) -> Iterator[bytes]:
    """The records of the plan the route opened, encoded, from one transaction; counts what was
    delivered at the end — also when the client went away mid-stream."""
    rows = nbytes = 0
    complete = False
    try:
        with connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")  # the plan, opened by the route,
            # names immutable version tables: any snapshot gives the same records
            if fmt == "csv":
                chunks: Iterator[str] = _csv_rows(feed, feed.records(conn, wkt=True))
                rows = -1  # the header line is no record
            else:  # encoded by PostgreSQL, a line per record
                chunks = feed.lines(conn, fmt)
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                data = chunk.encode("utf-8")
                pending.append(data)
                size += len(data)
                rows += 1
                if size >= 64_000:
                    yield b"".join(pending)
                    nbytes += size
                    pending, size = [], 0
            if pending:
                yield b"".join(pending)
                nbytes += size
            complete = True
    finally:
        count_delivery(caller, access, "system", max(rows, 0), nbytes,
                       detail if complete else f"{detail} (interrupted)")


@router.get("/{name}", summary="full or incremental pull by key (系统对接：数据订阅拉取)")
def pull(request: Request, caller: CallerDep, resource: NameInPath,
         since: int | None = Query(None, ge=0, description="the version the client holds "
                                   "(omit or 0: full pull)"),
         format: str = Query("ndjson", pattern="^(ndjson|geojsonseq|csv)$",
                             description="ndjson | geojsonseq | csv"),
         fields: str | None = Query(None, description="comma-separated fields (the key is "
                                    "always included)")):
    """The caller's records of one resource — all, or the changes since ``since``."""
    names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    # resolve the version range before any byte leaves: errors are whole answers
    try:
        with connection() as conn:
            row = dict(resource.row)
            feed = Feed.open(conn, row, resource.access, since, names)
    except changes.HistoryGone as exc:
        return envelope(410, str(exc), oldest_version=exc.oldest)
    except (FeedRefused, changes.BadVersion) as exc:
        raise HTTPException(400, str(exc)) from exc
    info = feed.describe()
    # rows are not known before the stream: the audit row says who pulled what range,
    # the delivery count (written after the last byte) how many rows went
    refused = audit_or_503(caller, resource.access, "feed", request, None,
                           records=for_plan(resource.name, feed.plan))
    if refused is not None:
        return refused
    headers = {
        "Jmgeo-From-Version": str(info["from_version"]),
        "Jmgeo-To-Version": str(info["to_version"]),
        "Jmgeo-Full": "true" if info["full"] else "false",
        "Link": f'</exchange/feeds/{resource.name}?since={info["to_version"]}'
                f'&format={format}>; rel="next"',
        "Cache-Control": "private, no-store" if resource.access.audited else "no-cache",
    }
    detail = f"v{info['from_version']}→v{info['to_version']}"
    return StreamingResponse(_stream(caller, resource.access, feed, format, detail),
                             media_type=MEDIA[format], headers=headers)


@router.get("/{name}/versions", summary="the versions a pull may start from")
def versions(caller: CallerDep, resource: NameInPath) -> JSONResponse:
    """The current version and the oldest kept one (an incremental pull may start at any
    kept version in between)."""
    del caller
    with connection() as conn:
        oldest = changes.oldest_pullable(conn, resource.row["id"])
    return JSONResponse({"resource": resource.name, "key_field": resource.row.get("key_field"),
                         "current_version": resource.row["current_version"],
                         "oldest_version": oldest})
