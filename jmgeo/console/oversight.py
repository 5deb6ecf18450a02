"""The auditor's audit log and its verification; the bureau's supervision dashboard.

The dashboard is a placeholder until the supervision API (``/supervision/…``, issue 12)
lands: its charts (ECharts, ``/static/vendor/echarts/``, drawn by
``/static/console/supervision.js``) read ``GET /console/supervision/data``, built from
what exists today — share requests by status and overdue (``exchange.rules.supervision``)
and deliveries by exchange mode (``exchange.deliveries.summary``) — under the same
policy as ``GET /exchange/supervision`` and ``GET /exchange/deliveries``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse

from jmgeo.audit_api import read_log, verify_chain
from jmgeo.console import SessionDep, forbidden, page
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import envelope
from layers import policy

router = APIRouter()

AUDITOR_ONLY = bilingual("仅审计员可查看审计日志", "only the auditor role reads the audit log")
OVERSIGHT_ONLY = bilingual("督办看板仅供市网信统筹局和审计员",
                           "the supervision dashboard is for the bureau and the auditor")


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


@router.get("/supervision")
def supervision_page(request: Request, session: SessionDep) -> HTMLResponse:
    if not policy.sees_every_request(session.caller):
        return forbidden(request, OVERSIGHT_ONLY)
    return page(request, "console/supervision.html")


@router.get("/supervision/data")
def supervision_data(session: SessionDep) -> JSONResponse:
    """What the dashboard's charts draw: requests by status, overdue, deliveries by mode."""
    from exchange.deliveries import summary
    from exchange.rules import supervision

    caller = session.caller
    if not (policy.sees_every_request(caller) and policy.may_see_deliveries(caller)):
        return envelope(403, OVERSIGHT_ONLY)
    with connection() as conn:
        view = supervision(conn, caller)
        rows = summary(conn)
    by_mode: dict[str, dict[str, int]] = {}
    for row in rows:
        mode = by_mode.setdefault(row["mode"], {"deliveries": 0, "rows": 0, "bytes": 0})
        mode["deliveries"] += row["deliveries"]
        mode["rows"] += row["rows"] or 0
        mode["bytes"] += row["bytes"] or 0
    return JSONResponse(jsonable_encoder({
        "requests_by_status": view["by_status"], "overdue_total": view["overdue_total"],
        "overdue_open": view["overdue_open"], "cli_grants": len(view["cli_grants"]),
        "deliveries_by_mode": by_mode,
        "sources": ["/exchange/supervision", "/exchange/deliveries"]}),
        headers={"Cache-Control": "private, no-store"})
