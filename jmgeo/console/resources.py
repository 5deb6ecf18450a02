"""My resources (upload, versions, roll back), the resources I may use, subscriptions.

The upload itself is ``POST /layers/upload`` (``jmgeo.upload_api``) called by the page's
script with the session's CSRF token: the console adds no second way to load a file.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from exchange import subscriptions as subs
from exchange.errors import NotFound
from jmgeo.console import SessionDep, forbidden, not_found, page, redirect
from jmgeo.db import connection
from jmgeo.errors import UserError, bilingual
from layers import audit, policy, registry
from layers.vocab import SHARING_CLASSES, UPDATE_CYCLES
from loaders import pipeline

router = APIRouter()

DEPARTMENTS_ONLY = bilingual("此页面供部门使用（以部门密钥登录）",
                             "this page is for departments (sign in with a department key)")


def _own(conn, caller: policy.Caller, name: str) -> dict[str, Any] | None:
    """The registry row of ``name`` when it is the caller's department's, else None (a
    resource of another department looks exactly like one that does not exist)."""
    if not registry.LAYER_NAME_RE.match(name):
        return None
    row = next((r for r in registry.list_layers(conn) if r["name"] == name), None)
    if row is None or not policy.in_service(row) or not policy.owns(caller, row["owner_code"]):
        return None  # a retired resource is one that does not exist, for its owner too
    return row


@router.get("/resources")
def my_resources(request: Request, session: SessionDep) -> HTMLResponse:
    """The department's own resources, and the upload form."""
    caller = session.caller
    if caller.data_dept is None:
        return forbidden(request, DEPARTMENTS_ONLY)
    with connection() as conn:
        rows = [r for r in registry.list_layers(conn)
                if policy.in_service(r) and policy.owns(caller, r["owner_code"])]
    return page(request, "console/resources.html", resources=rows,
                sharing_classes=SHARING_CLASSES, update_cycles=UPDATE_CYCLES,
                can_upload=caller.is_department)


@router.get("/resources/{name}")
def versions(request: Request, name: str, session: SessionDep) -> HTMLResponse:
    """One own resource: every version with its load report; roll back to one."""
    from loaders.report import format_report

    with connection() as conn:
        row = _own(conn, session.caller, name)
        if row is None:
            return not_found(request)
        history = registry.history(conn, name)
    for version in history:
        try:
            version["report_text"] = format_report(version["report"]) \
                if version.get("report") else ""
        except (KeyError, TypeError, ValueError):  # an older report's shape
            version["report_text"] = ""
    return page(request, "console/versions.html", resource=row, history=history)


@router.post("/resources/{name}/rollback")
def rollback(request: Request, name: str, session: SessionDep,
             version: int = Form(..., ge=1, le=2**31 - 1)) -> Response:
    """Make a kept version current again (``loaders.pipeline.rollback``: the registry and
    the catalog entry); audited
    (``layer.rollback``). Only the owner department, and not the read-only auditor."""
    caller = session.caller
    with connection() as conn:
        row = _own(conn, caller, name)
        if row is None:
            return not_found(request)
        try:
            result = pipeline.rollback(conn, name, version)
        except UserError as exc:
            return page(request, "console/versions.html", 400, resource=row,
                        history=registry.history(conn, name), error=str(exc))
        audit.record(conn, action="layer.rollback", caller=caller, layer=name,
                     request={"method": "POST", "path": request.url.path,
                              "from_version": result["from_version"],
                              "to_version": result["to_version"]})
    return redirect(f"/console/resources/{name}?done=rollback")


@router.get("/usable")
def usable(request: Request, session: SessionDep) -> HTMLResponse:
    """Other departments' resources whose data the caller may read, and on what terms
    (``layers.policy.visible_layers``: the rule every API applies), with its grants."""
    from layers.grants import list_grants

    caller = session.caller
    if caller.data_dept is None:
        return forbidden(request, DEPARTMENTS_ONLY)
    with connection() as conn:
        rows = [(row, access) for row, access in policy.visible_layers(conn, caller)
                if not policy.owns(caller, row["owner_code"])]
        grants = list_grants(conn, dept=caller.data_dept)
    return page(request, "console/usable.html", resources=rows, grants=grants)


@router.get("/subscriptions")
def subscriptions(request: Request, session: SessionDep) -> HTMLResponse:
    with connection() as conn:
        rows = subs.list_subscriptions(conn, session.caller)
    return page(request, "console/subscriptions.html", subscriptions=rows, created=None,
                error=None, can_write=policy.may_subscribe(session.caller))


@router.post("/subscriptions")
def subscribe(request: Request, session: SessionDep, url: str = Form(..., max_length=2000),
              resources: str = Form("", max_length=4000),
              with_changes: bool = Form(False)) -> HTMLResponse:
    """Register a webhook (``exchange.subscriptions.register``); the secret is shown
    this once, on the answer page."""
    names = [n.strip() for n in resources.replace("，", ",").split(",") if n.strip()] or None
    with connection() as conn:
        try:
            created = subs.register(conn, session.caller, url=url, resources=names,
                                    with_changes=with_changes)
            error = None
        except UserError as exc:
            created, error = None, str(exc)
        rows = subs.list_subscriptions(conn, session.caller)
    return page(request, "console/subscriptions.html", 201 if created else 400,
                subscriptions=rows, created=created, error=error,
                can_write=policy.may_subscribe(session.caller))


@router.post("/subscriptions/{sid}/delete")
def unsubscribe(request: Request, sid: int, session: SessionDep) -> Response:
    if not 1 <= sid < 2**31:
        return not_found(request)
    with connection() as conn:
        try:
            subs.remove(conn, session.caller, sid)
        except NotFound:
            return not_found(request)
        except UserError as exc:
            return forbidden(request, str(exc))
    return redirect("/console/subscriptions?done=unsubscribed")
