"""系统对接 subscriptions: a department system's webhook, registered once, pushed on every
publish or rollback of a resource the department may see (:mod:`exchange.push`).

A subscription belongs to a department (the one of the API key that registered it): its
pushes carry exactly what that department may have of the resource *at push time*
(``layers.policy``), never more. Registration refuses what could never be delivered — a
URL that is not http(s), has no host or resolves nowhere, credentials in the URL, a
resource the department cannot see (the same words as an unknown one: no oracle) — with
422 naming the field and the fix.

The HMAC secret is generated here and shown once, in the answer to the registration;
the platform keeps it to sign (it cannot be hashed: signing needs it), and no listing
ever returns it. ``signing_key_id`` names the secret in every push (``X-Jmgeo-Key-Id``).

Who may do what is ``layers.policy`` (``may_subscribe``, ``subscription_filter``,
``may_read_subscription``, ``may_change_subscription``): a subscription or delivery the
caller may not read answers exactly like one that does not exist (404).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from exchange.errors import Conflict, Forbidden, Invalid, NotFound
from jmgeo.errors import bilingual
from layers import policy
from layers.policy import Caller

MAX_URL = 2000
MAX_RESOURCES = 200
DELIVERY_STATUSES = ("pending", "delivered", "dead")  # 'skipped' is never listed

_COLUMNS = ("s.id, d.code AS dept, s.url, s.resources, s.with_changes, s.active, "
            "s.signing_key_id, s.created_by, s.created_at")


def _rows(cur: psycopg.Cursor) -> list[dict[str, Any]]:
    return list(cur.fetchall())


def _dict(conn: psycopg.Connection) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row)


# -- registration ----------------------------------------------------------------------

def check_url(url: str) -> str:
    """The webhook URL, or :class:`Invalid` saying what is wrong and how to fix it: http(s)
    only, a host that resolves (``socket.getaddrinfo``), no user:password in it."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise Invalid(bilingual(f"字段 url：请给出接收推送的 http(s) 地址（不超过 {MAX_URL} 个字符）",
                                f"field url: give the receiver's http(s) address (at most "
                                f"{MAX_URL} characters)"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(bilingual(f"字段 url：地址无法解析（{exc}）；请写成 https://主机:端口/路径",
                                f"field url: not a valid URL ({exc}); write it as "
                                "https://host:port/path")) from exc
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise Invalid(bilingual(f"字段 url：只接受 http:// 或 https:// 地址（收到 {scheme}）；"
                                "请给出部门系统接收推送的 Web 地址",
                                f"field url: only http:// and https:// URLs are accepted (got "
                                f"{scheme}); give the web address where your system receives "
                                "pushes"))
    host = parts.hostname
    if not host:
        raise Invalid(bilingual("字段 url：地址缺少主机名；请写成 https://主机:端口/路径",
                                "field url: the URL has no host; write it as "
                                "https://host:port/path"))
    if parts.username is not None or parts.password is not None:
        raise Invalid(bilingual("字段 url：地址中不能含用户名或密码；推送以 HMAC 签名认证，请去掉 user:password@",
                                "field url: no user name or password in the URL — pushes are "
                                "authenticated by their HMAC signature; remove user:password@"))
    try:
        socket.getaddrinfo(host, port or (443 if parts.scheme.lower() == "https" else 80),
                           type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Invalid(bilingual(f"字段 url：主机 {host} 无法解析（DNS 中没有该名称）；请检查主机名，"
                                "或使用平台可达的地址",
                                f"field url: host {host} does not resolve (no DNS entry); check "
                                "the host name or use an address the platform can reach")
                      ) from exc
    return url


def _check_resources(conn: psycopg.Connection, caller: Caller, names: Sequence[str],
                     with_changes: bool) -> list[str]:
    """The names, deduplicated, each one the department may see; a change set also needs
    the resource to be feedable by key (``exchange.feeds``)."""
    from exchange.feeds import Feed, FeedRefused

    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise Invalid(bilingual("字段 resources：列表为空；请列出资源名称，或省略该字段以订阅可见的全部资源",
                                "field resources: the list is empty; name resources, or omit "
                                "the field to subscribe to every resource you may see"))
    if len(names) > MAX_RESOURCES:
        raise Invalid(bilingual(f"字段 resources：最多 {MAX_RESOURCES} 个资源",
                                f"field resources: at most {MAX_RESOURCES} resources"))
    unknown = []
    for name in names:
        row, access = policy.lookup(conn, caller, name)
        if access is None:  # absent and not visible: the same words
            unknown.append(name)
            continue
        if with_changes:
            try:
                Feed.open(conn, dict(row), access, None)
            except FeedRefused as exc:
                raise Invalid(bilingual(f"字段 resources：{name} 不能附带变更集",
                                        f"field resources: {name} cannot carry change sets")
                              + f" — {exc}") from exc
    if unknown:
        listed = ", ".join(unknown)
        raise Invalid(bilingual(f"字段 resources：没有名为 {listed} 的资源；请按 GET /catalog 或 "
                                "`jmgeo layer list` 中的名称填写",
                                f"field resources: no resource named {listed}; use names "
                                "from GET /catalog or `jmgeo layer list`"))
    return names


def register(conn: psycopg.Connection, caller: Caller, *, url: str,
             resources: Sequence[str] | None = None, with_changes: bool = False
             ) -> dict[str, Any]:
    """Register a webhook for the caller's department; the answer holds the ``secret``
    (shown this once) and the ``signing_key_id``. Only steps after now are pushed."""
    if not policy.may_subscribe(caller):
        raise Forbidden(bilingual("只有部门（凭其 API 密钥）可以订阅推送；审计员只读",
                                  "only a department (with its API key) may subscribe to "
                                  "pushes; the auditor is read-only"))
    url = check_url(url)
    names = None if resources is None else _check_resources(conn, caller, resources,
                                                           with_changes)
    secret = secrets.token_urlsafe(32)
    key_id = f"whk_{secrets.token_hex(8)}"
    row = _dict(conn).execute(
        "INSERT INTO subscription (dept_id, key_id, url, secret, signing_key_id, resources, "
        "with_changes, created_by, after_step) SELECT d.id, %s, %s, %s, %s, %s, %s, %s, "
        "(SELECT coalesce(max(id), 0) FROM layer_step) FROM department d WHERE d.code = %s "
        "RETURNING id", (caller.key_id, url, secret, key_id, names, bool(with_changes),
                         caller.name, caller.data_dept)).fetchone()
    if row is None:
        raise Invalid(bilingual(f"部门 {caller.data_dept} 不存在", f"no department "
                                f"{caller.data_dept}"))
    out = get(conn, caller, row["id"])
    out["secret"] = secret
    out["signature"] = {
        "header": "X-Jmgeo-Signature",
        "scheme": "sha256=<hex HMAC-SHA256(secret, X-Jmgeo-Timestamp + '.' + body)>",
        "note": bilingual("密钥仅显示这一次，请妥善保存", "the secret is shown only this once: "
                          "store it now")}
    return out


# -- reading and changing --------------------------------------------------------------

def not_found(sid: int) -> NotFound:
    return NotFound(bilingual(f"订阅 {sid} 不存在", f"no subscription {sid} (or not one of "
                              "yours): see GET /exchange/subscriptions"))


def list_subscriptions(conn: psycopg.Connection, caller: Caller) -> list[dict[str, Any]]:
    """The caller's department's subscriptions (the bureau and the auditor: all), with the
    count of dead letters."""
    f = policy.subscription_filter(caller)
    return _rows(_dict(conn).execute(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM push_delivery p WHERE "
        "p.subscription_id = s.id AND p.status = 'dead') AS dead FROM subscription s "
        f"JOIN department d ON d.id = s.dept_id WHERE {f.sql} ORDER BY s.id", f.params))


def get(conn: psycopg.Connection, caller: Caller, sid: int) -> dict[str, Any]:
    """One subscription (never its secret), or 404 when it is not the caller's to see."""
    row = _dict(conn).execute(
        f"SELECT {_COLUMNS} FROM subscription s JOIN department d ON d.id = s.dept_id "
        "WHERE s.id = %s", (sid,)).fetchone()
    if row is None or not policy.may_read_subscription(caller, row["dept"]):
        raise not_found(sid)
    return row


def _changeable(conn: psycopg.Connection, caller: Caller, sid: int) -> dict[str, Any]:
    row = get(conn, caller, sid)
    if not policy.may_change_subscription(caller, row["dept"]):
        raise Forbidden(bilingual("只有订阅所属部门或市网信统筹局可以更改该订阅",
                                  "only the subscribing department or the bureau may change "
                                  "this subscription"))
    return row


def remove(conn: psycopg.Connection, caller: Caller, sid: int) -> dict[str, Any]:
    """Stop a subscription. It is kept, inactive, with its delivery log (supervision);
    its pending deliveries end as dead letters when their turn comes."""
    row = _changeable(conn, caller, sid)
    if not row["active"]:
        raise Conflict(bilingual(f"订阅 {sid} 已取消", f"subscription {sid} is already removed"))
    conn.execute("UPDATE subscription SET active = false WHERE id = %s", (sid,))
    return {**row, "active": False}


_DELIVERY = (
    "SELECT p.id, p.subscription_id AS subscription, p.step_id AS step, l.name AS resource, "
    "st.kind AS event, st.from_version, st.to_version, p.status, p.attempts, p.last_status, "
    "p.last_error, p.bytes, p.created_at, p.attempted_at, p.delivered_at FROM push_delivery p "
    "JOIN layer_step st ON st.id = p.step_id JOIN layer l ON l.id = st.layer_id ")


def deliveries(conn: psycopg.Connection, caller: Caller, sid: int, *,
               status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The delivery log of one subscription, newest first; ``status='dead'``: its
    dead-letter list."""
    get(conn, caller, sid)
    if status is not None and status not in DELIVERY_STATUSES:
        raise Invalid(bilingual(f"参数 status：应为 {' | '.join(DELIVERY_STATUSES)}",
                                f"parameter status: use one of {', '.join(DELIVERY_STATUSES)}"))
    return _rows(_dict(conn).execute(
        _DELIVERY + "WHERE p.subscription_id = %s AND p.status <> 'skipped' AND "
        "(%s::text IS NULL OR p.status = %s) ORDER BY p.id DESC LIMIT %s",
        (sid, status, status, limit)))


def requeue(conn: psycopg.Connection, caller: Caller, sid: int, did: int) -> dict[str, Any]:
    """Put a dead letter back in the queue: pending again, a push job deferred now, a new
    round of attempts (``attempts`` keeps counting)."""
    sub = _changeable(conn, caller, sid)
    row = _dict(conn).execute(_DELIVERY + "WHERE p.id = %s AND p.subscription_id = %s "
                              "AND p.status <> 'skipped'", (did, sid)).fetchone()
    if row is None:
        raise NotFound(bilingual(f"订阅 {sid} 没有投递 {did}",
                                 f"subscription {sid} has no delivery {did}: see its "
                                 "deliveries"))
    if not sub["active"]:
        raise Conflict(bilingual(f"订阅 {sid} 已取消，不能重投", f"subscription {sid} is "
                                 "removed: nothing is pushed to it any more"))
    changed = conn.execute("UPDATE push_delivery SET status = 'pending', last_error = NULL "
                           "WHERE id = %s AND status = 'dead'", (did,)).rowcount
    if not changed:
        raise Conflict(bilingual(f"投递 {did} 的状态是 {row['status']}，只有死信（dead）可以重投",
                                 f"delivery {did} is {row['status']}: only a dead letter can "
                                 "be retried"))
    from exchange.push import enqueue

    enqueue([did])
    return {**row, "status": "pending", "last_error": None}
