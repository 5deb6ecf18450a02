"""``/supervision`` — the figures of the 通报 as JSON for the console, ratings, corrections,
the filed reports.

- ``GET /supervision/figures?period=2026Q4[&drill=timeliness]`` — every figure of the
  period: the whole city for the bureau and the auditor, a department's own for a
  department (``layers.policy.supervision_scope``); ``drill`` keeps the rows of one
  section (or ``all``), else rows are left out (the figures alone are small).
- ``GET /supervision/freshness`` — each resource on the ladder today (same scope).
- ``GET /supervision/deliveries`` — the deliveries the caller's department received, with
  their ratings (what it may rate); ``POST /supervision/ratings`` ``{"delivery_id",
  "score", "comment"}`` — 评议.
- ``POST /supervision/corrections`` ``{"resource", "description", "record_key", "field",
  "region"}``; ``GET /supervision/corrections``; ``POST /supervision/corrections/{id}/answer``
  ``{"outcome": "fixed"|"not_error", "version", "reason"}`` — 纠错 (the owner answers).
- ``GET /supervision/reports`` (bureau, auditor), ``POST /supervision/reports``
  ``{"period"}`` (bureau: file one), ``GET /supervision/reports/{id}.pdf|.xlsx``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from exchange import clock
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import ReaderDep, WriterDep
from layers import policy
from supervision import feedback, figures, freshness, reports
from supervision.periods import parse_period

router = APIRouter(prefix="/supervision", tags=["supervision"])
PRIVATE = {"Cache-Control": "private, no-store"}
SECTIONS = ("cataloguing", "timeliness", "quality", "requests", "exchange", "corrections",
            "verification")


def _json(value: Any, status: int = 200) -> JSONResponse:
    def default(v):
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        raise TypeError(type(v).__name__)

    return JSONResponse(json.loads(json.dumps(value, default=default, ensure_ascii=False)),
                        status_code=status, headers=PRIVATE)


def _scope(caller) -> str | None:
    ok, dept = policy.supervision_scope(caller)
    if not ok:
        raise HTTPException(403, bilingual("监督考核数据仅供部门、市网信统筹局与审计员",
                                           "supervision figures are for departments, the "
                                           "bureau and the auditor"))
    return dept


@router.get("/figures", summary="通报的各项指标 / the figures of a period")
def get_figures(caller: ReaderDep,
                period: str = Query(..., description="2026Q4, 2026-11 or 2026"),
                drill: str | None = Query(None, description="a section's rows, or all")
                ) -> JSONResponse:
    dept = _scope(caller)
    if drill is not None and drill not in (*SECTIONS, "all"):
        raise HTTPException(400, bilingual(f"drill 参数 {drill!r} 无效",
                                           f"drill must be one of {', '.join(SECTIONS)}, all"))
    with connection() as conn:
        fig = figures.compute(conn, parse_period(period), dept=dept)
    for name, s in fig["sections"].items():
        if drill not in (name, "all"):
            s.pop("rows")
    return _json(fig)


@router.get("/freshness", summary="更新及时性 / each resource on the ladder today")
def get_freshness(caller: ReaderDep) -> JSONResponse:
    dept = _scope(caller)
    with connection() as conn:
        rows = freshness.freshness(conn, clock.today(), dept)
    for r in rows:
        r.pop("layer_id", None)
    return _json({"resources": rows})


@router.get("/deliveries", summary="本部门收到的交付 / deliveries my department received")
def get_deliveries(caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        return _json({"deliveries": feedback.received_deliveries(conn, caller)})


@router.post("/ratings", status_code=201, summary="评议一次交付 / rate a delivery")
def post_rating(caller: WriterDep, body: dict = Body(...)) -> JSONResponse:
    with connection() as conn:
        out = feedback.rate_delivery(conn, caller, int(body.get("delivery_id") or 0),
                                     score=body.get("score"), comment=body.get("comment"))
    return _json(out, 201)


@router.post("/corrections", status_code=201, summary="提出纠错 / raise a correction")
def post_correction(caller: WriterDep, body: dict = Body(...)) -> JSONResponse:
    with connection() as conn:
        out = feedback.raise_correction(
            conn, caller, resource=str(body.get("resource") or ""),
            description=body.get("description") or "", record_key=body.get("record_key"),
            field=body.get("field"), region=body.get("region"))
    return _json(out, 201)


@router.get("/corrections", summary="纠错单 / correction tickets")
def get_corrections(caller: ReaderDep, status: str | None = None) -> JSONResponse:
    with connection() as conn:
        return _json({"corrections": feedback.list_corrections(conn, caller, status)})


@router.post("/corrections/{ticket_id}/answer", summary="答复纠错 / answer (the owner)")
def post_answer(ticket_id: int, caller: WriterDep, body: dict = Body(...)) -> JSONResponse:
    with connection() as conn:
        out = feedback.answer_correction(conn, caller, ticket_id,
                                         outcome=str(body.get("outcome") or ""),
                                         version=body.get("version"), reason=body.get("reason"))
    return _json(out)


@router.get("/reports", summary="通报档案 / the filed reports")
def get_reports(caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        return _json({"reports": reports.list_reports(conn, caller)})


@router.post("/reports", status_code=201, summary="出具通报 / file a report (bureau)")
def post_report(caller: WriterDep, body: dict = Body(...)) -> JSONResponse:
    with connection() as conn:
        return _json(reports.file_report(conn, caller, str(body.get("period") or "")), 201)


@router.get("/reports/{report_id}.{kind}", summary="通报文件 / a filed report's PDF or XLSX")
def get_report_file(report_id: int, kind: str, caller: ReaderDep) -> Response:
    with connection() as conn:
        name, body = reports.report_file(conn, caller, report_id, kind)
    media = "application/pdf" if kind == "pdf" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, media_type=media, headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})
