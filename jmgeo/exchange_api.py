"""The exchange API (共享交换): ``router``, mounted by the app at ``/exchange`` — the HTTP
side of ``exchange.requests``.

A department files a share request (共享申请) for a resource it finds in the catalog; the
owner department answers it (approve, approve in part, refuse with a reason) on the legal
clock (``GET /exchange/rules``: 国发〔2016〕51号, 10 working days unless the city set a
shorter rule); an approval is the grant, and amendments, renewals and revocation are new
answers on the same request. The applicant may withdraw, and appeal a not_shared refusal
to the bureau (提请市政府审定).

Who may do what is ``layers.policy``'s rule (``may_file``, ``may_answer``,
``request_filter``), applied by ``exchange.requests``; this module adds only what HTTP
needs:

* **Anonymous callers get 401** on every route but ``/exchange/rules`` (the rule is public
  law). Requests are never public, so there is nothing to hide by answering 404 instead:
  401 names the fix (a key) and says nothing about any request.
* **The auditor reads, never writes**: every POST answers 403 before any work, whatever
  the request (the auditor has no department: it files, answers and reads notifications
  of none).
* **404 for a request or resource the caller may not see**, exactly as for one that does
  not exist (``exchange.NotFound``) — no oracle by id or by name.
* Every error is the seam's envelope ``{"code", "description": "中文 / English"}``:
  ``exchange`` raises ``UserError`` subclasses that carry their ``status`` (400/403/404/
  409/422), and ``jmgeo.http`` answers them.

Routes are sync (``def``): FastAPI runs them in its thread pool, so the database work of
``exchange.requests`` never runs on the event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from exchange.requests import MODES, STATUSES
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import ReaderDep, WriterDep

router = APIRouter(prefix="/exchange", tags=["exchange"])

MAX_ID = 2**31 - 1


# -- who is calling ------------------------------------------------------------------

RequestId = Annotated[int, Path(ge=1, le=MAX_ID, description="申请编号 / share request id")]
NotificationId = Annotated[int, Path(ge=1, le=MAX_ID,
                                     description="通知编号 / notification id")]


# -- bodies ----------------------------------------------------------------------------

Fields = Field(None, min_length=1, max_length=200,
               description="字段（不填 = 全部字段） / fields needed (omit: every field)")
Regions = Field(None, min_length=1, max_length=200,
                description="区划代码（不填 = 全市） / region codes, e.g. 440703 (omit: the "
                            "whole city)")


class RequestIn(BaseModel):
    """A share request (共享申请): what the applying department needs, and why."""

    model_config = ConfigDict(extra="forbid")
    resource: str = Field(max_length=200,
                          description="资源名称（目录或 /ogc/collections 中的名称） / the resource "
                                      "(collection) name, e.g. land_parcels")
    purpose: str = Field(max_length=2000, description="用途（必填） / purpose (required)")
    basis: str | None = Field(None, max_length=2000,
                              description="履职依据 / the duty the need rests on")
    fields: list[str] | None = Fields
    regions: list[str] | None = Regions
    period_from: dt.date | None = Field(None, description="需用数据起始日期 / needed from")
    period_to: dt.date | None = Field(None, description="需用数据截止日期（授权有效期） / "
                                                        "needed until (the grant's validity)")
    mode: Literal[MODES] = Field("download",  # type: ignore[valid-type]
                                 description="共享方式 system 系统对接 · fep 前置交换 · query "
                                             "在线查询 · download 下载 / exchange mode")
    contact: str | None = Field(None, max_length=200, description="联系人 / contact")


class AnswerIn(BaseModel):
    """The owner's answer (答复): approve, approve in part (narrowed), or refuse."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "approve_part", "refuse"] = Field(
        description="approve 同意 · approve_part 部分同意（缩小字段、区域或期限） · refuse 不同意")
    reason: str | None = Field(None, max_length=2000,
                               description="理由（不同意时必填，申请方可见） / reason (required "
                                           "to refuse; shown to the applicant)")
    fields: list[str] | None = Fields
    regions: list[str] | None = Regions
    valid_from: dt.date | None = Field(None, description="授权生效日期 / grant valid from")
    valid_to: dt.date | None = Field(None, description="授权截止日期 / grant valid until")


class AmendIn(BaseModel):
    """A new answer on an approved request (变更): a new grant replaces the old one."""

    model_config = ConfigDict(extra="forbid")
    fields: list[str] | None = Fields
    regions: list[str] | None = Regions
    valid_to: dt.date | None = Field(None, description="新的授权截止日期 / new valid until")
    reason: str | None = Field(None, max_length=2000, description="变更理由 / reason")


class RenewIn(BaseModel):
    """Renewal (续期): the same grant for a longer period."""

    model_config = ConfigDict(extra="forbid")
    valid_to: dt.date = Field(description="续期后的截止日期 / new valid until")
    reason: str | None = Field(None, max_length=2000, description="续期理由 / reason")


class ReasonIn(BaseModel):
    """Why (理由): required to revoke and to appeal."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=2000, description="理由（必填） / reason (required)")


class WithdrawIn(BaseModel):
    """The applicant takes its request back (撤回)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000, description="撤回理由 / reason")


# -- answers ---------------------------------------------------------------------------

def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status,
                        headers={"Cache-Control": "private, no-store"})


def _requests():
    """``exchange.requests`` (the lower package the routes call)."""
    from exchange import requests as xr

    return xr


@router.post("/requests", status_code=201, summary="file a share request (提交共享申请)")
def file_request(body: RequestIn, caller: WriterDep) -> JSONResponse:
    """File a request. Conditional resources go to their owner (status ``submitted``,
    a deadline on the legal clock); not_shared resources are refused at once citing their
    legal basis (201, status ``refused``: appeal with ``/appeal``); open and unconditional
    resources need no request (409, pointing to the data); a resource the caller may not
    see answers 404 like one that does not exist."""
    with connection() as conn:
        req = _requests().file_request(conn, caller, **body.model_dump())
    return _json(req, 201)


@router.get("/requests", summary="list share requests (申请列表)")
def list_requests(
    caller: ReaderDep,
    box: Literal["outbox", "inbox", "all"] = Query(
        "all", description="outbox 本部门提交的 · inbox 待本部门答复的 · all 全部可见的（统筹局、"
                           "审计员：全市）"),
    status: Literal[STATUSES] | None = Query(  # type: ignore[valid-type]
        None, description="状态 / status"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> JSONResponse:
    """The applicant's outbox, the owner's inbox, or everything the caller may see (the
    bureau and the auditor: every department's). Overdue requests are escalated first."""
    with connection() as conn:
        rows, total = _requests().list_requests(conn, caller, box=box, status=status,
                                                limit=limit, offset=offset)
    return _json({"box": box, "requests": rows, "numberMatched": total,
                  "numberReturned": len(rows)})


@router.get("/requests/{request_id}", summary="one share request with its history")
def get_request(request_id: RequestId, caller: ReaderDep) -> JSONResponse:
    """The request, every transition (``events``: by whom, when, why) and the diffs
    between successive answers (``diffs``). 404 when the caller may not see it."""
    with connection() as conn:
        return _json(_requests().get_request(conn, caller, request_id))


@router.post("/requests/{request_id}/answer", summary="answer (答复): approve / refuse")
def answer(request_id: RequestId, body: AnswerIn, caller: WriterDep) -> JSONResponse:
    """The owner (or the bureau for it, recorded as such) answers. Approval creates the
    grant; ``approve_part`` narrows fields, regions or period; ``refuse`` needs a reason."""
    with connection() as conn:
        return _json(_requests().answer(conn, caller, request_id, **body.model_dump()))


@router.post("/requests/{request_id}/amend", summary="amend an approval (变更)")
def amend(request_id: RequestId, body: AmendIn, caller: WriterDep) -> JSONResponse:
    """A new answer on an approved request: a new grant, the old one revoked."""
    with connection() as conn:
        return _json(_requests().amend(conn, caller, request_id, **body.model_dump()))


@router.post("/requests/{request_id}/renew", summary="renew an approval (续期)")
def renew(request_id: RequestId, body: RenewIn, caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        return _json(_requests().renew(conn, caller, request_id, **body.model_dump()))


@router.post("/requests/{request_id}/revoke", summary="revoke the grant (撤销授权)")
def revoke(request_id: RequestId, body: ReasonIn, caller: WriterDep) -> JSONResponse:
    """End the grant the request produced; recorded on the request with the reason."""
    with connection() as conn:
        return _json(_requests().revoke(conn, caller, request_id, reason=body.reason))


@router.post("/requests/{request_id}/withdraw", summary="withdraw (撤回申请)")
def withdraw(request_id: RequestId, caller: WriterDep,
             body: WithdrawIn | None = None) -> JSONResponse:
    """The applicant takes its request back (body optional)."""
    reason = body.reason if body is not None else None
    with connection() as conn:
        return _json(_requests().withdraw(conn, caller, request_id, reason=reason))


@router.post("/requests/{request_id}/appeal", summary="appeal a refusal (提请市政府审定)")
def appeal(request_id: RequestId, body: ReasonIn, caller: WriterDep) -> JSONResponse:
    """The applicant appeals a not_shared refusal to the bureau (status ``appealed``)."""
    with connection() as conn:
        return _json(_requests().appeal(conn, caller, request_id, reason=body.reason))


@router.get("/notifications", summary="the department's notification inbox (通知)")
def notifications(caller: ReaderDep,
                  unread_only: bool = Query(False, description="只看未读 / unread only")
                  ) -> JSONResponse:
    with connection() as conn:
        rows = _requests().notifications(conn, caller, unread_only=unread_only)
    return _json({"notifications": rows, "numberReturned": len(rows)})


@router.post("/notifications/{notification_id}/read", summary="mark a notification read")
def mark_read(notification_id: NotificationId, caller: WriterDep) -> JSONResponse:
    """404 for another department's notification, as for one that does not exist."""
    with connection() as conn:
        _requests().mark_read(conn, caller, notification_id)
    return _json({"id": notification_id, "read": True})


@router.get("/rules", summary="the legal clock's rule (答复时限规则)")
def rules() -> JSONResponse:
    """The answer rule that applies to a request filed now (the newest active one): its
    legal basis, the working days to answer, whom an overdue request escalates to; and
    every rule on record (older requests keep the rule they were filed under). Public."""
    xr = _requests()
    with connection() as conn:
        current, every = xr.current_rule(conn), xr.rules(conn)
    return _json({"current": current, "rules": every,
                  "calendar": bilingual("中国法定工作日（周末、法定节假日与调休上班日，"
                                        "chinese-calendar）",
                                        "Chinese working days: weekends, public holidays "
                                        "and make-up working days (chinese-calendar)")})


@router.get("/supervision", summary="the bureau's supervision view (督办)")
def supervision(caller: ReaderDep) -> JSONResponse:
    """Requests by state, how many went overdue (ever, and still open), and every live
    grant made outside the workflow (``jmgeo grant add``: no approval on record). The
    bureau and the auditor only (403 for departments)."""
    from exchange.rules import supervision as view

    with connection() as conn:
        return _json(view(conn, caller))
