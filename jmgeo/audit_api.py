"""``GET /audit`` — the audit log, for the auditor role only.

Mounted by ``jmgeo.app`` (``app.include_router(audit_router)``). Anonymous callers get
401 (authenticate first); any other role 403: departments, and the bureau admin, do not
read the log that records them. Reading the log is itself recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from jmgeo.db import connection
from jmgeo.http import AUTH_CHALLENGE, CallerDep
from layers import audit, audit_checkpoint
from layers.policy import Caller

audit_router = APIRouter(prefix="/audit", tags=["audit"])


def require_auditor(caller: CallerDep) -> Caller:
    """The caller, if it may read the audit log: 401 when anonymous, 403 otherwise."""
    if caller.kind == "anonymous":
        raise HTTPException(401, "需要审计员凭据 / auditor credentials required",
                            headers=AUTH_CHALLENGE)
    if not caller.can_read_audit:
        raise HTTPException(403, "仅审计员可查看审计日志 / only the auditor role may read the "
                                 "audit log")
    return caller


AuditorDep = Annotated[Caller, Depends(require_auditor)]


@audit_router.get("")
def audit_list(request: Request, caller: AuditorDep,
               dept: str | None = Query(None, description="department code"),
               layer: str | None = Query(None, description="layer name"),
               since: datetime | None = Query(None, description="ISO 8601 time"),
               limit: int = Query(100, ge=1, le=1000)) -> dict:
    """Audit rows, newest first, filtered by department, layer and time."""
    with connection() as conn:
        rows = read_log(conn, caller, request, dept=dept, layer=layer, since=since,
                        limit=limit)
    return {"entries": rows, "numberReturned": len(rows)}


def read_log(conn, caller: Caller, request: Request, *, dept: str | None = None,
             layer: str | None = None, since: datetime | None = None,
             limit: int = 100) -> list[dict]:
    """THE read of the audit log (this route and the console's page): the rows, and
    the reading itself recorded (``audit_read``). The caller must be the auditor."""
    if not caller.can_read_audit:
        raise PermissionError("only the auditor reads the audit log")
    rows = audit.show(conn, dept=dept, layer=layer, since=since, limit=limit)
    audit.record(conn, action="audit_read", caller=caller,
                 request={"method": "GET", "path": request.url.path,
                          "query": request.url.query}, rows=len(rows))
    return rows


def verify_chain(conn) -> dict:
    """The chain's verification (against the checkpoints kept outside the database) as
    the route and the console page show it."""
    return audit_checkpoint.report(conn)


@audit_router.get("/verify")
def audit_verify(caller: AuditorDep) -> dict:
    """Walk the keyed chain against the checkpoints: ``intact`` or the first fault, the
    ``checkpoint`` verified against and ``warnings``."""
    with connection() as conn:
        return verify_chain(conn)
