"""Share requests in the console: the outbox and inbox, one request with its history,
filing one (from a dataset page's button: ``/console/requests/new?resource=NAME``),
answering (approve, approve in part — fields, regions, period — or refuse with a reason)
and withdrawing. Every step is ``exchange.requests``' own function with the session's
caller: the rule (who may file, answer, see) is ``layers.policy``'s, as for the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from exchange import requests as xr
from exchange.errors import NotFound
from jmgeo.console import SessionDep, not_found, page, redirect
from jmgeo.db import connection
from jmgeo.errors import UserError, bilingual
from layers import policy
from layers.grants import layer_fields
from layers.registry import LAYER_NAME_RE
from spatial import regions as spatial_regions

router = APIRouter()


def _counties(conn) -> list[dict[str, Any]]:
    """The city's counties (the regions a grant may be limited to, as the form offers)."""
    tree = spatial_regions.region_tree(conn)
    return [{"code": c["code"], "name": c["name"]} for root in tree
            for c in root["children"]]


def _date(value: str, what: str) -> dt.date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise xr.Invalid(bilingual(f"{what}应为日期，如 2026-12-31",
                                   f"{what}: a date like 2026-12-31")) from exc


@router.get("/requests")
def listing(request: Request, session: SessionDep,
            box: str = Query("outbox", pattern="^(outbox|inbox|all)$"),
            status: str | None = Query(None, max_length=20)) -> HTMLResponse:
    with connection() as conn:
        try:
            rows, total = xr.list_requests(conn, session.caller, box=box,
                                           status=status or None, limit=200)
        except UserError as exc:
            rows, total, error = [], 0, str(exc)
        else:
            error = None
    return page(request, "console/requests.html", box=box, status_filter=status or "",
                requests=rows, total=total, statuses=xr.STATUSES, error=error)


def _visible(conn, caller, name: str) -> dict[str, Any] | None:
    """The resource as the caller may list it in the catalog (``policy.listed``, what
    ``file_request`` asks), or None: hidden and missing alike."""
    if not LAYER_NAME_RE.match(name or ""):
        return None
    row = policy.access_row(conn, name)
    return row if row is not None and policy.listed(caller, row) else None


def _new_form(request: Request, conn, caller, resource: dict[str, Any], status: int = 200,
              error: str | None = None, values: dict[str, Any] | None = None
              ) -> HTMLResponse:
    needless = policy.owns(caller, resource["owner_code"]) or \
        resource["sharing_class"] in ("open", "unconditional")
    return page(request, "console/request_new.html", status, resource=resource,
                fields=layer_fields(conn, resource["name"]), counties=_counties(conn),
                modes=xr.MODES, needless=needless, may_file=policy.may_file(caller),
                error=error, values=values or {})


@router.get("/requests/new")
def new_request(request: Request, session: SessionDep,
                resource: str = Query("", max_length=200)) -> HTMLResponse:
    with connection() as conn:
        row = _visible(conn, session.caller, resource)
        if row is None:
            return not_found(request)
        return _new_form(request, conn, session.caller, row)


@router.post("/requests/new")
def file_request(request: Request, session: SessionDep,
                 resource: str = Form(..., max_length=200),
                 purpose: str = Form("", max_length=2000),
                 basis: str = Form("", max_length=2000),
                 fields: list[str] = Form([]), regions: list[str] = Form([]),
                 period_to: str = Form("", max_length=20),
                 mode: str = Form("download", max_length=20),
                 contact: str = Form("", max_length=200)) -> Response:
    caller = session.caller
    values = {"purpose": purpose, "basis": basis, "fields": fields, "regions": regions,
              "period_to": period_to, "mode": mode, "contact": contact}
    with connection() as conn:
        row = _visible(conn, caller, resource)
        if row is None:
            return not_found(request)
        try:
            filed = xr.file_request(conn, caller, resource=resource, purpose=purpose,
                                    basis=basis or None, fields=fields or None,
                                    regions=regions or None,
                                    period_to=_date(period_to, "截止日期 / needed until"),
                                    mode=mode if mode in xr.MODES else "download",
                                    contact=contact or None)
        except NotFound:
            return not_found(request)
        except UserError as exc:
            return _new_form(request, conn, caller, row, getattr(exc, "status", 400),
                             str(exc), values)
    return redirect(f"/console/requests/{filed['id']}?done=request-new:{resource}")


def _detail(request: Request, conn, caller, request_id: int, status: int = 200,
            error: str | None = None) -> HTMLResponse:
    try:
        req = xr.get_request(conn, caller, request_id)
    except NotFound:
        return not_found(request)
    may_answer = policy.may_answer(caller, req["owner"]) and req["status"] == "submitted"
    return page(request, "console/request.html", status, req=req,
                may_answer=may_answer,
                may_withdraw=policy.is_applicant(caller, req["applicant"])
                and req["status"] == "submitted",
                fields=layer_fields(conn, req["resource"]) if may_answer else [],
                counties=_counties(conn) if may_answer else [], error=error)


@router.get("/requests/{request_id}")
def one(request: Request, request_id: int, session: SessionDep) -> HTMLResponse:
    if not 1 <= request_id < 2**31:
        return not_found(request)
    with connection() as conn:
        return _detail(request, conn, session.caller, request_id)


@router.post("/requests/{request_id}/answer")
def answer(request: Request, request_id: int, session: SessionDep,
           decision: str = Form(..., pattern="^(approve|approve_part|refuse)$"),
           reason: str = Form("", max_length=2000),
           fields: list[str] = Form([]), regions: list[str] = Form([]),
           valid_to: str = Form("", max_length=20)) -> Response:
    """Approve as asked, approve in part (the fields and regions ticked), or refuse."""
    if not 1 <= request_id < 2**31:
        return not_found(request)
    part = decision == "approve_part"
    with connection() as conn:
        try:
            xr.answer(conn, session.caller, request_id, decision=decision,
                      reason=reason or None, fields=(fields or None) if part else None,
                      regions=(regions or None) if part else None,
                      valid_to=_date(valid_to, "授权截止日期 / valid until")
                      if decision != "refuse" else None)
        except NotFound:
            return not_found(request)
        except UserError as exc:
            return _detail(request, conn, session.caller, request_id,
                           getattr(exc, "status", 400), str(exc))
    return redirect(f"/console/requests/{request_id}?done=answer:{request_id}")


@router.post("/requests/{request_id}/withdraw")
def withdraw(request: Request, request_id: int, session: SessionDep,
             reason: str = Form("", max_length=2000)) -> Response:
    if not 1 <= request_id < 2**31:
        return not_found(request)
    with connection() as conn:
        try:
            xr.withdraw(conn, session.caller, request_id, reason=reason or None)
        except NotFound:
            return not_found(request)
        except UserError as exc:
            return _detail(request, conn, session.caller, request_id,
                           getattr(exc, "status", 400), str(exc))
    return redirect(f"/console/requests/{request_id}?done=withdraw:{request_id}")
