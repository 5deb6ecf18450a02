"""系统对接 subscriptions (issue 11 §2): webhook registration and the delivery log — the
HTTP side of ``exchange.subscriptions`` (pushes themselves: ``exchange.push``).

* ``POST /exchange/subscriptions`` {url, resources?, with_changes?} — a department (its
  API key) registers a webhook; 201 with the HMAC ``secret`` (shown this once) and the
  ``signing_key_id``. A URL that is not http(s), has no host or does not resolve, and a
  resource that is unknown or not visible to the department (the same words) answer 422.
* ``GET /exchange/subscriptions`` — the department's own (the bureau and the auditor: all).
* ``GET /exchange/subscriptions/{id}``, ``DELETE /exchange/subscriptions/{id}`` (its
  department or the bureau; kept inactive with its log).
* ``GET /exchange/subscriptions/{id}/deliveries[?status=dead]`` — the delivery log and
  the dead-letter list; ``POST …/deliveries/{did}/retry`` requeues a dead letter (202).

Anonymous callers get 401 everywhere, the auditor 403 on every write; a subscription the
caller may not read answers 404 exactly as one that does not exist. Routes are sync.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from exchange import push
from exchange import subscriptions as subs
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.exchange_api import MAX_ID
from jmgeo.http import ReaderDep, WriterDep, envelope

router = APIRouter(prefix="/exchange/subscriptions", tags=["exchange"])
receiver_router = APIRouter(tags=["exchange"])


SubId = Annotated[int, Path(ge=1, le=MAX_ID, description="订阅编号 / subscription id")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="投递编号 / delivery id")]


class NewSubscription(BaseModel):
    """A webhook registration."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(..., max_length=subs.MAX_URL,
                     description="the receiver, http(s)://host[:port]/path")
    resources: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=subs.MAX_RESOURCES,
        description="resource names; omit for every resource the department may see")
    with_changes: bool = Field(False, description="push the change set, not only the "
                               "notification")


def _json(body, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status,
                        headers={"Cache-Control": "private, no-store"})


@router.post("", summary="register a webhook (订阅推送)", status_code=201)
def create(body: NewSubscription, caller: WriterDep) -> JSONResponse:
    """The answer holds the HMAC secret — shown this once."""
    with connection() as conn:
        out = subs.register(conn, caller, url=body.url, resources=body.resources,
                            with_changes=body.with_changes)
    return _json(out, 201)


@router.get("", summary="subscriptions (own; the bureau and the auditor: all)")
def listing(caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        rows = subs.list_subscriptions(conn, caller)
    return _json({"subscriptions": rows, "numberReturned": len(rows)})


@router.get("/{sid}", summary="one subscription")
def one(sid: SubId, caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        return _json(subs.get(conn, caller, sid))


@router.delete("/{sid}", summary="remove a subscription (its department or the bureau)")
def remove(sid: SubId, caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        return _json(subs.remove(conn, caller, sid))


@router.get("/{sid}/deliveries", summary="the delivery log (status=dead: dead letters)")
def delivery_log(sid: SubId, caller: ReaderDep,
                 status: Literal["pending", "delivered", "dead"] | None = Query(None),
                 limit: int = Query(100, ge=1, le=1000)) -> JSONResponse:
    with connection() as conn:
        rows = subs.deliveries(conn, caller, sid, status=status, limit=limit)
    return _json({"deliveries": rows, "numberReturned": len(rows)})


@router.post("/{sid}/deliveries/{did}/retry", summary="requeue a dead letter",
             status_code=202)
def retry(sid: SubId, did: DeliveryId, caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        return _json(subs.requeue(conn, caller, sid, did), 202)


@receiver_router.post("/exchange/webhook-test",
                      summary="a reference receiver: checks a push's signature (回调测试)")
async def webhook_test(request: Request) -> JSONResponse:
    """Point a subscription here first: it checks a push exactly as a department's
    receiver must (the signature over the raw body with the subscription's secret, found
    by ``X-Jmgeo-Key-Id``; a timestamp within 5 minutes) and answers 200 with what it
    verified, or 401 naming what failed. It keeps nothing; the demo subscription uses it,
    so ``make run`` shows pushes delivered."""
    body = await request.body()
    kid = request.headers.get("x-jmgeo-key-id", "")
    ts = request.headers.get("x-jmgeo-timestamp", "")
    sig = request.headers.get("x-jmgeo-signature", "")
    secret = await run_in_threadpool(_secret, kid)
    if secret is None or not push.verify(secret, ts, sig, body):  # one answer for all:
        # no oracle on which signing key ids exist
        return envelope(401, bilingual(
            "推送验证失败：签名密钥编号、签名或时间戳不符",
            "the push does not verify: unknown X-Jmgeo-Key-Id, wrong signature or a "
            "timestamp more than 5 minutes off"))
    try:
        event = json.loads(body)
    except ValueError:
        event = {}
    return JSONResponse({"verified": True, "key_id": kid,
                         "delivery": request.headers.get("x-jmgeo-delivery"),
                         "event": event.get("event"), "resource": event.get("resource"),
                         "to_version": event.get("to_version")})


def _secret(kid: str) -> str | None:
    if not kid or len(kid) > 100:
        return None
    with connection() as conn:
        row = conn.execute("SELECT secret FROM subscription WHERE signing_key_id = %s",
                           (kid,)).fetchone()
    return row["secret"] if row else None
