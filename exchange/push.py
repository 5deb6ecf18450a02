"""系统对接 pushes: signed webhook notifications of every publish and rollback, on the queue.

The outbox is ``layer_step`` — a row written in every publish or rollback transaction
(``layers.changes.record_step``), so a step exists exactly when its version became
current, whatever published it (the loader, the upload API, a rollback). Nothing in the
publish path defers a job; instead the periodic task ``exchange.push_dispatch`` (every
``JMGEO_PUSH_DISPATCH_EVERY`` seconds, in a ``jmgeo worker``) turns every new step ×
active subscription into one ``push_delivery`` row — UNIQUE(subscription, step), so a
repeated or concurrent dispatch is harmless — and defers one ``exchange.push`` job each.
A step is pushed to a subscription only if it came after the registration and the
department may see the resource *now* (``layers.policy.lookup``); otherwise the pair is
recorded ``skipped`` once and never listed.

A push job POSTs the notification (and, with ``with_changes``, the step's change set as
the department sees it: ``exchange.feeds.Feed``, capped at ``JMGEO_PUSH_MAX_CHANGES``
records, beyond which it says ``truncated`` and the pull link does the rest), signed::

    X-Jmgeo-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-Jmgeo-Timestamp: <unix seconds>   X-Jmgeo-Key-Id: <signing key id>
    X-Jmgeo-Delivery: <delivery id>     (the receiver's idempotency key)

A 2xx answer is delivered; anything else (an error status, a redirect — never followed —,
a timeout, a refused connection) is retried with exponential backoff
(``JMGEO_PUSH_RETRY_BASE * 2**n`` s) up to ``JMGEO_PUSH_MAX_ATTEMPTS`` attempts, then the
delivery is ``dead``: the dead-letter list, requeued by hand
(``exchange.subscriptions.requeue``). Never a lost notification: a delivery is a row
before any job exists, and each dispatch re-defers every pending delivery that has no
live job (a crash between the row and its job, a queue outage).
Access is re-checked at every attempt; a change set is audited before it leaves
(``push``) and counted after a 2xx (``exchange.deliveries``, mode ``system``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx
import psycopg
from procrastinate import RetryDecision
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.retry import BaseRetryStrategy
from psycopg.rows import dict_row

from exchange import deliveries
from jmgeo import __version__
from jmgeo.queue import app
from jmgeo.settings import database_url, get_settings
from layers import changes, policy
from layers.policy import Access, Caller

LOG = logging.getLogger(__name__)
TASK = "exchange.push"
BATCH = 5_000  # candidate (subscription, step) pairs per dispatch


class PushFailed(Exception):
    """The receiver did not answer 2xx (the job is retried with backoff)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Jmgeo-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, *,
           now: float | None = None, tolerance: int = 300) -> bool:
    """What a receiver checks: the signature over the raw body, and a timestamp within
    ``tolerance`` seconds (a replayed push is refused). The README shows the same ten
    lines for a department's own receiver."""
    import time

    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(signature, sign(secret, timestamp, body))


def cron(every: int) -> str:
    """procrastinate's cron for a period in seconds: a 6th (seconds) field below a minute,
    whole minutes from 60 on."""
    if every < 60:
        return f"* * * * * */{every}"
    return f"*/{every // 60} * * * *"


def subscriber(dept: str, sid: int, key_id: int | None) -> Caller:
    """The department as a subscription acts for it (named after the subscription)."""
    return Caller(kind="department", dept_code=dept, name=f"subscription:{sid}",
                  key_id=key_id)


# -- dispatch: the outbox into deliveries ---------------------------------------------------

_CANDIDATES = (
    "SELECT s.id AS sid, d.code AS dept, s.key_id, st.id AS step, l.name AS resource, "
    "(s.key_id IS NULL OR EXISTS (SELECT 1 FROM api_key k WHERE k.id = s.key_id AND "
    " k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()))) AS key_live "
    "FROM subscription s JOIN department d ON d.id = s.dept_id "
    "JOIN layer_step st ON st.id > s.after_step JOIN layer l ON l.id = st.layer_id "
    "WHERE s.active AND (s.resources IS NULL OR l.name = ANY(s.resources)) "
    "AND NOT EXISTS (SELECT 1 FROM push_delivery p WHERE p.subscription_id = s.id "
    "AND p.step_id = st.id) ORDER BY st.id, s.id LIMIT %s")

_ORPHANS = (
    "SELECT p.id FROM push_delivery p WHERE p.status = 'pending' AND NOT EXISTS ("
    "SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s AND j.status IN "
    "('todo', 'doing') AND j.args->>'delivery_id' = p.id::text) ORDER BY p.id")


def dispatch(conn: psycopg.Connection) -> list[int]:
    """Create the deliveries of every new step × active subscription (``skipped`` where
    the department may not see the resource now, or its key was revoked); return every
    pending delivery without a live push job — the new ones and any orphan."""
    pairs = conn.cursor(row_factory=dict_row).execute(_CANDIDATES, (BATCH,)).fetchall()
    seen: dict[tuple[str, str], bool] = {}
    for p in pairs:
        pair = (p["dept"], p["resource"])
        if pair not in seen:
            seen[pair] = policy.lookup(conn, subscriber(p["dept"], p["sid"], p["key_id"]),
                                       p["resource"])[1] is not None
        status = "pending" if seen[pair] and p["key_live"] else "skipped"
        conn.execute("INSERT INTO push_delivery (subscription_id, step_id, status) VALUES "
                     "(%s, %s, %s) ON CONFLICT DO NOTHING", (p["sid"], p["step"], status))
    return [r[0] for r in conn.execute(_ORPHANS, (TASK,)).fetchall()]


def _job(delivery_id: int):
    lock = f"push:{delivery_id}"
    return push_job.configure(lock=lock, queueing_lock=lock)


def enqueue(ids: Iterable[int]) -> None:
    """Defer one push job per delivery (sync: the server, the CLI)."""
    for did in ids:
        try:
            _job(did).defer(delivery_id=did)
        except AlreadyEnqueued:
            pass  # a job for it is already waiting


async def _enqueue_async(ids: Iterable[int]) -> None:
    for did in ids:
        try:
            await _job(did).defer_async(delivery_id=did)
        except AlreadyEnqueued:
            pass


# -- one attempt -----------------------------------------------------------------------

_LOAD = (
    "SELECT p.id, p.status, p.step_id, s.id AS sid, s.url, s.secret, s.signing_key_id, "
    "s.with_changes, s.active, s.key_id, d.code AS dept, st.kind AS event, st.from_version, "
    "st.to_version, st.at, st.layer_id, l.name AS resource FROM push_delivery p "
    "JOIN subscription s ON s.id = p.subscription_id JOIN department d ON d.id = s.dept_id "
    "JOIN layer_step st ON st.id = p.step_id JOIN layer l ON l.id = st.layer_id "
    "WHERE p.id = %s")


def pull_link(resource: str, since: int | None) -> str:
    base = f"{get_settings().base_url}/exchange/feeds/{resource}"
    return f"{base}?since={since}" if since else base


def change_set(conn: psycopg.Connection, d: dict[str, Any], layer: dict[str, Any],
               access: Access) -> dict[str, Any]:
    """The step's changes (``from_version`` → ``to_version``, exactly: the version range
    is the step's even when later versions exist) as the department sees them."""
    from exchange.feeds import Feed, FeedRefused

    cap = get_settings().push_max_changes
    to = conn.execute("SELECT table_name, to_regclass(table_name) IS NOT NULL FROM "
                      "layer_version WHERE layer_id = %s AND version = %s",
                      (d["layer_id"], d["to_version"])).fetchone()
    if to is None or not to[1]:
        return {"omitted": f"version {d['to_version']} is no longer kept",
                "next": pull_link(d["resource"], d["from_version"])}
    row = {**layer, "current_version": d["to_version"], "table_name": to[0]}
    try:
        with conn.transaction():
            feed = Feed.open(conn, row, access, d["from_version"])
            records: list[dict[str, Any]] = []
            truncated = False
            for rec in feed.records(conn):
                if len(records) >= cap:
                    truncated = True
                    break
                if rec.get("geometry") is not None:
                    rec["geometry"] = json.loads(rec["geometry"])
                records.append(rec)
    except (FeedRefused, changes.BadVersion, changes.HistoryGone) as exc:
        return {"omitted": str(exc), "next": pull_link(d["resource"], d["from_version"])}
    out = {**feed.describe(), "count": len(records), "truncated": truncated,
           "records": records}
    if truncated:
        out["next"] = pull_link(d["resource"], d["from_version"])
    return out


def _payload(conn: psycopg.Connection, d: dict[str, Any], layer: dict[str, Any],
             access: Access) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": d["event"], "delivery": d["id"], "subscription": d["sid"],
        "resource": d["resource"], "from_version": d["from_version"],
        "to_version": d["to_version"], "step": d["step_id"], "at": d["at"].isoformat(),
        "pull": pull_link(d["resource"], d["from_version"])}
    if d["with_changes"]:
        body["changes"] = change_set(conn, d, layer, access)
    return body


def _finish(conn: psycopg.Connection, did: int, status: str, code: int | None,
            error: str | None, nbytes: int | None) -> None:
    conn.execute(
        "UPDATE push_delivery SET status = %s, attempts = attempts + 1, last_status = %s, "
        "last_error = %s, bytes = coalesce(%s, bytes), attempted_at = now(), delivered_at = "
        "CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END "
        "WHERE id = %s AND status = 'pending'",
        (status, code, error[:1000] if error else None, nbytes, status, did))


def _post(d: dict[str, Any], body: bytes) -> tuple[int | None, str | None]:
    """POST once; (status, error) — error None for a 2xx."""
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": f"jmgeo-push/{__version__}",
               "X-Jmgeo-Event": d["event"], "X-Jmgeo-Delivery": str(d["id"]),
               "X-Jmgeo-Timestamp": ts, "X-Jmgeo-Key-Id": d["signing_key_id"],
               "X-Jmgeo-Signature": sign(d["secret"], ts, body)}
    try:
        r = httpx.post(d["url"], content=body, headers=headers, follow_redirects=False,
                       timeout=get_settings().push_timeout)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= r.status_code < 300:
        return r.status_code, None
    return r.status_code, f"HTTP {r.status_code}: {r.text[:200]}"


def attempt(delivery_id: int, *, last: bool) -> str:
    """One try of one delivery; its status after it. Raises :class:`PushFailed` when the
    receiver failed and attempts remain (the job is retried); on the ``last`` attempt a
    failure makes it a dead letter."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        d = conn.cursor(row_factory=dict_row).execute(_LOAD, (delivery_id,)).fetchone()
        if d is None or d["status"] != "pending":
            return d["status"] if d else "gone"
        if not d["active"]:
            _finish(conn, delivery_id, "dead", None, "subscription removed", None)
            return "dead"
        caller = subscriber(d["dept"], d["sid"], d["key_id"])
        layer, access = policy.lookup(conn, caller, d["resource"])
        if access is None:  # the grant ended since: say nothing, not even that it changed
            _finish(conn, delivery_id, "skipped", None, "no access at push time", None)
            return "skipped"
        code, error, nbytes, rows = None, None, None, None
        try:
            payload = _payload(conn, d, dict(layer), access)
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                              default=str).encode()
            nbytes = len(body)
            rows = payload.get("changes", {}).get("count")
            if rows is not None and access.audited:
                from layers.audit import record_access  # no audit row, no data
                from layers.record_log import Records

                record_access(caller, access, "push", f"/exchange/subscriptions/{d['sid']}",
                              f"delivery={delivery_id}", rows=rows, method="POST",
                              records=Records(layer=d["resource"], version=d["to_version"],
                                              step=d["step_id"]))
            code, error = _post(d, body)
        except Exception as exc:  # noqa: BLE001 — every failure is an attempt on record
            LOG.exception("push %s failed before or while sending", delivery_id)
            error = f"{type(exc).__name__}: {exc}"
        status = "delivered" if error is None else ("dead" if last else "pending")
        _finish(conn, delivery_id, status, code, error, nbytes)
        if status == "delivered" and rows is not None:
            deliveries.record(conn, layer=d["resource"], dept=d["dept"], mode="system",
                              rows=rows, nbytes=nbytes or 0, request_id=access.request_id,
                              detail=f"push {delivery_id} v{d['from_version']}→"
                                     f"v{d['to_version']}")
    if status == "pending":
        raise PushFailed(error)
    return status


# -- the jobs ------------------------------------------------------------------------

class PushBackoff(BaseRetryStrategy):
    """Exponential backoff from the settings, read when a job fails (not at import)."""

    def get_retry_decision(self, *, exception: BaseException, job) -> RetryDecision | None:
        s = get_settings()
        if job.attempts + 1 >= s.push_max_attempts:
            return None
        return RetryDecision(retry_in={"seconds": s.push_retry_base * 2 ** job.attempts})


@app.task(name=TASK, pass_context=True, retry=PushBackoff())
def push_job(context, delivery_id: int) -> str:
    """Push one delivery (the job's ``attempts`` says whether this is the last try)."""
    last = context.job.attempts + 1 >= get_settings().push_max_attempts
    return attempt(delivery_id, last=last)


def _dispatch_once() -> list[int]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return dispatch(conn)


@app.periodic(cron=cron(get_settings().push_dispatch_every), periodic_id="push_dispatch")
@app.task(name="exchange.push_dispatch", queueing_lock="exchange.push_dispatch")
async def dispatch_job(timestamp: int | None = None) -> int:
    """The outbox into deliveries and push jobs; how many jobs it deferred."""
    ids = await asyncio.to_thread(_dispatch_once)
    await _enqueue_async(ids)
    return len(ids)
