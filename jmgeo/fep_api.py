"""``GET /exchange/fep/receipts`` — the drop-folder receipts (前置机回执).

A department reads the receipts of the files it handed in; the bureau and the auditor
read every department's (``layers.policy.receipt_filter``); anonymous callers get 401. A
department naming another department's code gets 403 (never an empty list that could be
mistaken for "nothing was handed in"). Mounted by ``jmgeo.app``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from exchange.fep_inbound import STATUSES, list_receipts
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import ReaderDep
from layers.policy import sees_every_receipt

router = APIRouter(prefix="/exchange/fep", tags=["exchange"])

Status = Literal[STATUSES]  # type: ignore[valid-type] — exchange.fep_inbound spells them once


@router.get("/receipts", summary="drop-folder receipts (前置机回执)")
def receipts(caller: ReaderDep,
             dept: str | None = Query(None, description="department code"),
             resource: str | None = Query(None),
             status: Status | None = Query(None),
             limit: int = Query(100, ge=1, le=1000)) -> JSONResponse:
    """Receipts of harvested drop-folder files, newest first: accepted (version, counts,
    quality report) or refused (the problem and the fix)."""
    if not sees_every_receipt(caller):
        if not caller.is_department:
            raise HTTPException(403, bilingual("无权查看前置机回执",
                                               "you may not read drop-folder receipts"))
        if dept is not None and dept != caller.dept_code:
            raise HTTPException(403, bilingual(
                f"只能查看本部门（{caller.dept_code}）的回执",
                f"a department reads only its own receipts ({caller.dept_code})"))
    with connection() as conn:
        rows = list_receipts(conn, caller, dept=dept, resource=resource, status=status,
                             limit=limit)
    body = {"receipts": rows, "numberReturned": len(rows)}
    return JSONResponse(jsonable_encoder(body), headers={"Cache-Control": "private, no-store"})
