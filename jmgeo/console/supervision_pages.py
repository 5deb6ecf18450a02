"""Supervision in the console: the dashboard (督办看板) and ratings and corrections (评议与纠错).

* ``/console/supervision`` — the figures of a period (a month, a quarter, a year) drawn
  by ``/static/console/supervision.js`` (ECharts, the platform's own copy) from
  ``GET /supervision/figures``, the overdue list from ``GET /supervision/freshness`` and,
  for the bureau and the auditor, the filed reports (``GET/POST /supervision/reports``,
  the PDF and XLSX links). The bureau and the auditor see the whole city, a department
  its own figures: the API scopes (``layers.policy.supervision_scope``), the page only
  says whose figures they are.
* ``/console/feedback`` — the deliveries the department received (rate one: ``POST
  /supervision/ratings``), raise a correction on a resource it received (``POST
  /supervision/corrections``), the tickets it raised and those against its resources,
  which it answers (``POST /supervision/corrections/{id}/answer``). The lists are
  ``supervision.feedback``'s own functions with the session's caller (what the API's GETs
  return); the forms are sent by ``/static/console/feedback.js`` as JSON with the
  session's CSRF token.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from exchange import clock
from jmgeo.console import SessionDep, forbidden, page
from jmgeo.db import connection
from jmgeo.errors import bilingual
from layers import policy
from supervision import feedback
from supervision.periods import Invalid, current_quarter, parse_period

router = APIRouter()

NO_FIGURES = bilingual("监督考核数据仅供部门、市网信统筹局与审计员",
                       "supervision figures are for departments, the bureau and the auditor")
NO_FEEDBACK = bilingual("评议与纠错由收到数据的部门进行",
                        "ratings and corrections are made by the departments that "
                        "received the data")


def period_choices(today: date) -> dict[str, list[tuple[str, str]]]:
    """The periods the picker offers, newest first: 12 months, 8 quarters, 3 years
    (``(label, Chinese name)``; any other past period can be typed into the URL)."""
    months, quarters = [], []
    y, m = today.year, today.month
    for _ in range(12):
        months.append(f"{y}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    y, q = today.year, (today.month - 1) // 3 + 1
    for _ in range(8):
        quarters.append(f"{y}Q{q}")
        y, q = (y, q - 1) if q > 1 else (y - 1, 4)
    years = [str(today.year - i) for i in range(3)]
    return {kind: [(label, parse_period(label, today).zh) for label in labels]
            for kind, labels in (("month", months), ("quarter", quarters), ("year", years))}


@router.get("/supervision")
def supervision_page(request: Request, session: SessionDep,
                     period: str | None = Query(None, max_length=16)) -> HTMLResponse:
    caller = session.caller
    ok, dept = policy.supervision_scope(caller)
    if not ok:
        return forbidden(request, NO_FIGURES)
    today = clock.local_date(datetime.now(clock.CHINA))
    error = None
    try:
        chosen = parse_period(period or current_quarter(today), today)
    except Invalid as exc:
        error, chosen = str(exc), parse_period(current_quarter(today), today)
    return page(request, "console/supervision.html", period=chosen, error=error,
                choices=period_choices(today), scope=dept,
                reads_reports=policy.may_read_reports(caller),
                files_reports=policy.may_file_reports(caller))


@router.get("/feedback")
def feedback_page(request: Request, session: SessionDep) -> HTMLResponse:
    caller = session.caller
    if not policy.may_rate(caller, True):
        return forbidden(request, NO_FEEDBACK)
    with connection() as conn:
        got = feedback.received_deliveries(conn, caller)
        tickets = feedback.list_corrections(conn, caller)
    mine = caller.data_dept
    inbox = [t for t in tickets if t["owner"] == mine]
    return page(request, "console/feedback.html", deliveries=got,
                resources=sorted({(d["resource"], d["title"] or d["resource"]) for d in got}),
                raised=[t for t in tickets if t["raiser"] == mine], inbox=inbox,
                answerable={t["id"] for t in inbox
                            if policy.may_answer_correction(caller, t["owner"])})
