"""``GET /exchange/jobs`` — the job queue, for the bureau and the auditor.

Anonymous callers get 401, other roles 403 (``layers.policy.may_see_jobs``). Mounted by
``jmgeo.app``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query

from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import ReaderDep
from jmgeo.jobs import STATUSES, list_jobs
from layers.policy import may_see_jobs

router = APIRouter(prefix="/exchange", tags=["exchange"])

Status = Literal[STATUSES]  # type: ignore[valid-type] — jmgeo.jobs spells them once


@router.get("/jobs", summary="the job queue (作业队列)")
def jobs(caller: ReaderDep, status: Status | None = Query(None),
         task: str | None = Query(None, description="task name"),
         limit: int = Query(100, ge=1, le=1000)) -> dict:
    """Background and periodic jobs, newest first, with status and attempts."""
    if not may_see_jobs(caller):
        raise HTTPException(403, bilingual("仅市网信统筹局与审计员可查看作业队列",
                                           "only the bureau and the auditor see the job queue"))
    with connection() as conn:
        rows = list_jobs(conn, status=status, task=task, limit=limit)
    return {"jobs": rows, "numberReturned": len(rows)}
