"""``GET /exchange/deliveries`` — the delivery count (交付计数), for the bureau and the auditor.

Deliveries per resource, department and exchange mode (``system``, ``fep``, ``query``,
``download``) in ``[since, until)``: how many, rows, bytes (``exchange.deliveries.summary``).
Anonymous callers get 401, other roles 403 (``layers.policy.may_see_deliveries``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from exchange.deliveries import summary
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import ReaderDep
from layers.policy import may_see_deliveries

router = APIRouter(prefix="/exchange", tags=["exchange"])


@router.get("/deliveries", summary="交付计数 / deliveries per resource, department, mode")
def deliveries(caller: ReaderDep,
               since: datetime | None = Query(None, description="from (ISO 8601, inclusive)"),
               until: datetime | None = Query(None, description="until (ISO 8601, exclusive)")
               ) -> JSONResponse:
    """What was delivered to whom and how, counted after each delivery left."""
    if not may_see_deliveries(caller):
        raise HTTPException(403, bilingual("仅市网信统筹局与审计员可查看交付计数",
                                           "only the bureau and the auditor see the "
                                           "delivery count"))
    if since is not None and until is not None and until <= since:
        raise HTTPException(400, bilingual("参数 until 应晚于 since",
                                           "parameter until must be later than since"))
    with connection() as conn:
        rows = summary(conn, since=since, until=until)
    return JSONResponse({
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "deliveries": rows,
        "totals": {"deliveries": sum(r["deliveries"] for r in rows),
                   "rows": sum(r["rows"] or 0 for r in rows),
                   "bytes": sum(r["bytes"] or 0 for r in rows)}},
        headers={"Cache-Control": "private, no-store"})
