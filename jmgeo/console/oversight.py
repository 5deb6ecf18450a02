"""The auditor's audit log and its verification (the supervision dashboard is
``jmgeo.console.supervision_pages``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from jmgeo.audit_api import read_log, verify_chain
from jmgeo.console import SessionDep, forbidden, page
from jmgeo.db import connection
from jmgeo.errors import bilingual

router = APIRouter()

AUDITOR_ONLY = bilingual("仅审计员可查看审计日志", "only the auditor role reads the audit log")


@router.get("/audit")
def audit_page(request: Request, session: SessionDep,
               dept: str | None = Query(None, max_length=32),
               layer: str | None = Query(None, max_length=200),
               since: datetime | None = Query(None),
               limit: int = Query(100, ge=1, le=1000),
               verify: bool = Query(False)) -> HTMLResponse:
    """The log (newest first, filtered) — the reading recorded, as ``GET /audit`` — and,
    on request, the hash chain's verification."""
    caller = session.caller
    if not caller.can_read_audit:
        return forbidden(request, AUDITOR_ONLY)
    with connection() as conn:
        rows = read_log(conn, caller, request, dept=dept or None, layer=layer or None,
                        since=since, limit=limit)
        checked = verify_chain(conn) if verify else None
    return page(request, "console/audit.html", entries=rows, checked=checked,
                filters={"dept": dept or "", "layer": layer or "",
                         "since": since.isoformat() if since else "", "limit": limit})
