"""Share requests (共享申请): file, answer, amend, renew, revoke, withdraw, appeal.

The states (DESIGN §2): ``submitted`` → ``approved`` / ``partly_approved`` / ``refused``
/ ``withdrawn`` / ``expired``; a refusal of a not_shared resource may be ``appealed`` to
the bureau (提请市政府审定). What happens at filing depends on the sharing class:

* ``open``, ``unconditional`` (and one's own resource): no request — :class:`NoRequestNeeded`
  points to the data — except, for an unconditional resource, a request naming masked
  (sensitive) fields to see in clear (``layers.policy.request_needed``): it goes to the
  owner like a conditional one, and its approval is an *unmasking* grant (every region);
* ``conditional``: goes to the owner, due in the working days of the active answer rule;
* ``not_shared``: refused at once citing the recorded legal basis, with the appeal route.

An approval makes the grant (``layers.grants.add_grant(source="request")``); an amendment
or renewal is a new answer on the same request — a new grant, the old one revoked — each
kept (events) and diffable. Revoking ends the grant (the request keeps its status;
``grant_status`` says ``revoked``). Who may do what is ``layers.policy`` (may_file,
may_answer, is_applicant, request_filter). Every function takes an autocommit connection,
opens its own transaction, and changes nothing when it raises.

``now`` (a keyword of the transitions) lets tests and the demo place a request in time;
the platform passes nothing (the current time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from exchange import checks, clock, store
from exchange.deadlines import check_deadlines
from exchange.errors import (
    Conflict,
    ExchangeError,
    Forbidden,
    Invalid,
    NoRequestNeeded,
    NotFound,
    request_not_found,
    resource_not_found,
)
from exchange.notify import mark_read, notifications, notify
from jmgeo.errors import bilingual
from layers import policy
from layers.grants import GrantError, add_grant, revoke_grant
from layers.policy import Caller

__all__ = ["Conflict", "ExchangeError", "Forbidden", "Invalid", "NoRequestNeeded", "NotFound",
           "MODES", "STATUSES", "amend", "answer", "appeal", "check_deadlines", "current_rule",
           "file_request", "rules",
           "get_request", "list_requests", "mark_read", "notifications", "renew", "revoke",
           "withdraw"]

MODES = ("system", "fep", "query", "download")
STATUSES = ("submitted", "approved", "partly_approved", "refused", "withdrawn", "expired",
            "appealed")
DECISIONS = ("approve", "approve_part", "refuse")
BOXES = ("outbox", "inbox", "all")
APPEAL_ROUTE = bilingual("可向市网信统筹局提请市政府审定（jmgeo request appeal）",
                         "you may appeal to the bureau for the city government's decision "
                         "(提请市政府审定: `jmgeo request appeal`, POST /exchange/requests/<id>/appeal)")


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _resource(conn, caller: Caller, name: str) -> dict[str, Any]:
    """The published resource as the caller may list it, with its id and legal basis."""
    found = policy.access_row(conn, name)
    if found is None or not policy.listed(caller, found):
        raise resource_not_found(name)
    extra = store.q(conn, "SELECT id, legal_basis FROM layer WHERE name = %s",
                    (name,)).fetchone()
    return {**found, **extra}


def file_request(conn, caller: Caller, *, resource: str, purpose: str,
                 basis: str | None = None, fields: list[str] | None = None,
                 regions: list[str] | None = None, period_from: date | None = None,
                 period_to: date | None = None, mode: str = "download",
                 contact: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """File a request; see the module docstring for what each sharing class does."""
    if not policy.may_file(caller):
        if caller.kind == "anonymous":
            raise resource_not_found(resource)
        raise Forbidden(bilingual("只有部门可以提交共享申请",
                                  f"only a department files share requests ({caller.kind} "
                                  "callers do not)"))
    now = _now(now)
    with conn.transaction():
        res = _resource(conn, caller, resource)
        links = {"collection": f"/ogc/collections/{res['name']}",
                 "download": f"/downloads/{res['name']}"}
        if policy.owns(caller, res["owner_code"]):
            raise NoRequestNeeded(bilingual(
                f"{resource} 为本部门资源，无需申请", f"{resource!r} is your department's own "
                f"resource: no request needed, see {links['collection']}"), links)
        if not policy.request_needed(res, fields):
            zh = "开放" if res["sharing_class"] == "open" else "无条件共享"
            masked = sorted(res.get("sensitive_fields") or {})
            hint = (f"；如需明文查看脱敏字段，请在申请中列明（{', '.join(masked)}）", f"; to "
                    f"see a masked field in clear, name it in fields ({', '.join(masked)})"
                    ) if res["sharing_class"] == "unconditional" and masked else ("", "")
            raise NoRequestNeeded(bilingual(
                f"{resource} 为{zh}资源，无需申请，可直接使用：{links['collection']}、"
                f"{links['download']}{hint[0]}", f"{resource!r} is {res['sharing_class']}: "
                f"no request needed, the data is at {links['collection']} and "
                f"{links['download']}{hint[1]}"), links)
        if res["sharing_class"] == "unconditional" and regions:
            raise Invalid(bilingual(
                "无条件共享资源的脱敏字段申请覆盖全部区域，请勿限定区域",
                "an unmasking request on an unconditional resource covers every region: "
                "leave regions out"))
        purpose = _text(purpose)
        if purpose is None:
            raise Invalid(bilingual("共享申请必须写明用途", "a share request needs a purpose "
                                    "(用途), e.g. '控制性详细规划编制'"))
        if mode not in MODES:
            raise Invalid(bilingual(f"交换方式 {mode!r} 无效", f"unknown exchange mode {mode!r}: "
                                    f"use one of {', '.join(MODES)}"))
        fields = checks.clean_fields(conn, resource, fields)
        regions = checks.clean_regions(conn, res, regions)
        checks.check_period(period_from, period_to)
        rule = store.active_rule(conn)
        due, warning = clock.deadline_and_warning(now, rule["working_days"])
        not_shared = res["sharing_class"] == "not_shared"
        status = "refused" if not_shared else "submitted"
        row = store.q(conn,
            "INSERT INTO share_request (layer_id, applicant_dept_id, purpose, basis, fields, "
            "regions, period_from, period_to, mode, contact, status, rule_id, submitted_at, "
            "deadline, answered_at, created_by) SELECT %s, id, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s FROM department WHERE code = %s RETURNING id",
            (res["id"], purpose, _text(basis), fields, regions, period_from, period_to, mode,
             _text(contact), status, rule["id"], now, due, now if not_shared else None,
             caller.name, caller.dept_code)).fetchone()
        if row is None:
            raise Forbidden(bilingual(f"部门 {caller.dept_code} 不存在",
                                      f"unknown department {caller.dept_code!r}"))
        rid = row["id"]
        base = {"id": rid, "resource": resource, "status": None}
        store.record(conn, caller, base, "submit", to_status="submitted", now=now)
        if not_shared:
            reason = bilingual(f"不予共享，依据：{res['legal_basis'] or '（未登记）'}；{APPEAL_ROUTE}",
                               f"not shared by law: {res['legal_basis'] or '(not recorded)'}")
            store.record(conn, policy.system("exchange"), {**base, "status": "submitted"},
                         "refuse_not_shared", to_status="refused", reason=reason, now=now)
            notify(conn, caller.dept_code, "refused", bilingual(
                f"共享申请 {rid}（{resource}）不予共享：{res['legal_basis']}",
                f"share request {rid} ({resource}) is refused: not shared by law"), rid, now)
        else:
            notify(conn, res["owner_code"], "new_request", bilingual(
                f"{caller.dept_code} 申请共享 {resource}（申请 {rid}），请于 {due} 前答复",
                f"{caller.dept_code} requests {resource} (request {rid}): answer by {due}"),
                rid, now)
        out = store.public(store.load(conn, policy.system("exchange"), rid))
    out["calendar_warning"] = warning
    return out


def _load_for_change(conn, caller: Caller, request_id: int) -> dict[str, Any]:
    row = store.load(conn, caller, request_id, lock=True)
    if row is None:
        raise request_not_found(request_id)
    if caller.kind == "auditor":
        raise Forbidden(bilingual("审计员只读，不能改动共享申请",
                                  "the auditor reads requests and changes nothing"))
    return row


def _require_owner(caller: Caller, row: dict[str, Any]) -> None:
    if not policy.may_answer(caller, row["owner"]):
        raise Forbidden(bilingual(
            f"只有资源 {row['resource']} 的所有部门（{row['owner']}）或市网信统筹局可以答复",
            f"only the owner of {row['resource']!r} ({row['owner']}) or the bureau answers "
            f"this request"))


def _require_status(row: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    if row["status"] not in allowed:
        raise Conflict(bilingual(
            f"申请 {row['id']} 状态为 {row['status']}，不能{what}",
            f"request {row['id']} is {row['status']}: cannot {what} it (only when "
            f"{' / '.join(allowed)})"))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=clock.CHINA)




def _grant(conn, caller: Caller, row: dict[str, Any], *, fields, regions, valid_from, valid_to,
           now: datetime) -> int:
    start = now if valid_from is None or _day_start(valid_from) <= now \
        else _day_start(valid_from)
    end = None if valid_to is None else _day_start(valid_to + timedelta(days=1))
    if end is not None and end <= now:
        raise Invalid(bilingual(f"授权期限 {valid_to} 已过", f"the validity ends {valid_to}, "
                                "already past: give a later valid_to"))
    try:
        return add_grant(conn, layer=row["resource"], dept=row["applicant"],
                         purpose=row["purpose"], approved_by=f"{caller.name} ({caller.dept_code})",
                         fields=fields, regions=regions, valid_from=start, valid_to=end,
                         notes=f"共享申请 {row['id']} / share request {row['id']}",
                         request_id=row["id"], source="request")
    except GrantError as exc:
        raise Invalid(str(exc)) from exc


def _answer_doc(fields, regions, valid_from, valid_to) -> dict[str, Any]:
    return {"fields": fields, "regions": regions,
            "valid_from": valid_from.isoformat() if valid_from else None,
            "valid_to": valid_to.isoformat() if valid_to else None}


def answer(conn, caller: Caller, request_id: int, *, decision: str, reason: str | None = None,
           fields: list[str] | None = None, regions: list[str] | None = None,
           valid_from: date | None = None, valid_to: date | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """The owner's (or the bureau's, for it) answer to a submitted request. ``fields``,
    ``regions``, ``valid_*`` default to what was asked; narrower is a partial approval
    (also when ``decision='approve'``: the status says what was given)."""
    now = _now(now)
    check_deadlines(conn, clock.local_date(now), now=now, request_id=request_id)
    with conn.transaction():
        row = _load_for_change(conn, caller, request_id)
        _require_owner(caller, row)
        if decision not in DECISIONS:
            raise Invalid(bilingual(f"答复 {decision!r} 无效", f"unknown decision {decision!r}: "
                                    f"use one of {', '.join(DECISIONS)}"))
        _require_status(row, ("submitted",), "答复 / answer")
        reason = _text(reason)
        if decision == "refuse":
            if reason is None:
                raise Invalid(bilingual("拒绝必须说明理由（申请部门可见）", "a refusal needs a "
                                        "reason (the applicant reads it)"))
            _set(conn, row["id"], status="refused", answered_at=now)
            store.record(conn, caller, row, "refuse", to_status="refused", reason=reason,
                         now=now, owner=row["owner"])
            notify(conn, row["applicant"], "refused", bilingual(
                f"共享申请 {row['id']}（{row['resource']}）被拒绝：{reason}",
                f"share request {row['id']} ({row['resource']}) was refused"), row["id"], now)
            return _fresh(conn, row["id"])
        fields, regions = _chosen(conn, row, row, fields, regions)
        asked_from = _date(row["period_from"])
        asked_to = _date(row["period_to"])
        valid_from = asked_from if valid_from is None else valid_from
        valid_to = asked_to if valid_to is None else valid_to
        checks.check_period(valid_from, valid_to)
        narrower = checks.within(row["fields"], fields, "字段 / fields")
        narrower |= checks.within(row["regions"], regions, "区域 / regions")
        if asked_to is not None and (valid_to is None or valid_to > asked_to):
            raise Invalid(bilingual(f"授权期限不能超出申请的期限（{asked_to}）",
                                    f"the validity cannot go beyond the period asked "
                                    f"(until {asked_to})"))
        if asked_from is not None and valid_from is not None and valid_from < asked_from:
            raise Invalid(bilingual(f"授权期限不能早于申请的开始日期（{asked_from}）",
                                    f"the validity cannot start before the period asked "
                                    f"(from {asked_from})"))
        narrower |= valid_to != asked_to or valid_from != asked_from
        if decision == "approve_part" and not narrower:
            raise Invalid(bilingual("部分同意须缩小字段、区域或期限，否则请用同意",
                                    "approve_part needs narrower fields, regions or period "
                                    "than asked; otherwise approve"))
        status = "partly_approved" if narrower else "approved"
        action = "approve_part" if narrower else "approve"
        gid = _grant(conn, caller, row, fields=fields, regions=regions, valid_from=valid_from,
                     valid_to=valid_to, now=now)
        _set(conn, row["id"], status=status, answered_at=now, grant_id=gid)
        store.record(conn, caller, row, action, to_status=status, reason=reason,
                     answer=_answer_doc(fields, regions, valid_from, valid_to), grant_id=gid,
                     now=now, owner=row["owner"])
        notify(conn, row["applicant"], action, bilingual(
            f"共享申请 {row['id']}（{row['resource']}）已{'部分' if narrower else ''}同意，授权 {gid}",
            f"share request {row['id']} ({row['resource']}) was "
            f"{'partly ' if narrower else ''}approved: grant {gid}"), row["id"], now)
        return _fresh(conn, row["id"])


def _date(value) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _res_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["resource"], "kind": row["kind"]}


def _set(conn, request_id: int, **values: Any) -> None:
    cols = ", ".join(f"{k} = %s" for k in values)
    if "answered_at" in values:
        cols = cols.replace("answered_at = %s", "answered_at = coalesce(answered_at, %s)")
    conn.execute(f"UPDATE share_request SET {cols} WHERE id = %s",
                 (*values.values(), request_id))


def _fresh(conn, request_id: int) -> dict[str, Any]:
    return store.public(store.load(conn, policy.system("exchange"), request_id))


def _chosen(conn, row: dict[str, Any], base: dict[str, Any], fields: list[str] | None,
            regions: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """The fields and regions an answer gives: the ones given (checked against the
    resource and the framework), else ``base``'s (what was asked, or the current answer)."""
    if fields is not None:
        fields = checks.clean_fields(conn, row["resource"], fields)
    else:
        fields = base["fields"]
    if regions is not None:
        regions = checks.clean_regions(conn, _res_of(row), regions)
    else:
        regions = base["regions"]
    return fields, regions


def _current_answer(conn, row: dict[str, Any]) -> dict[str, Any]:
    g = store.q(conn, "SELECT fields, regions, valid_from, valid_to FROM layer_grant "
                      "WHERE id = %s", (row["grant_id"],)).fetchone()
    return g


def _reanswer(conn, caller: Caller, request_id: int, action: str, *, fields, regions, valid_to,
              reason, now: datetime | None) -> dict[str, Any]:
    """amend / renew: a new grant replacing the request's current one, the old revoked."""
    now = _now(now)
    with conn.transaction():
        row = _load_for_change(conn, caller, request_id)
        _require_owner(caller, row)
        allowed = ("approved", "partly_approved") + (("expired",) if action == "renew" else ())
        _require_status(row, allowed, "修改或续期 / amend or renew")
        if row["grant_id"] is None or row["grant_status"] == "revoked":
            raise Conflict(bilingual(f"申请 {row['id']} 的授权已撤销，请重新申请",
                                     f"the grant of request {row['id']} was revoked: file a "
                                     "new request"))
        cur = _current_answer(conn, row)
        fields, regions = _chosen(conn, row, cur, fields, regions)
        checks.within(row["fields"], fields, "字段 / fields")
        checks.within(row["regions"], regions, "区域 / regions")
        old_to = (cur["valid_to"].astimezone(clock.CHINA).date() - timedelta(days=1)
                  if cur["valid_to"] else None)
        if action == "renew":
            if valid_to is None or (old_to is not None and valid_to <= old_to):
                raise Invalid(bilingual(f"续期须晚于当前期限（{old_to}）", f"a renewal needs a "
                                        f"valid_to after the current one ({old_to})"))
        elif valid_to is None:
            valid_to = old_to
        gid = _grant(conn, caller, row, fields=fields, regions=regions, valid_from=None,
                     valid_to=valid_to, now=now)
        revoke_grant(conn, row["grant_id"], f"{caller.name}: {action} → grant {gid}")
        asked_to = _date(row["period_to"])
        narrower = (fields is not None and set(fields) != set(row["fields"] or [])) or \
            (regions is not None and set(regions) != set(row["regions"] or [])) or \
            (asked_to is not None and valid_to is not None and valid_to < asked_to)
        status = "partly_approved" if narrower else "approved"
        _set(conn, row["id"], status=status, grant_id=gid)
        store.record(conn, caller, row, action, to_status=status, reason=_text(reason),
                     answer=_answer_doc(fields, regions, None, valid_to), grant_id=gid, now=now,
                     owner=row["owner"])
        notify(conn, row["applicant"], action, bilingual(
            f"共享申请 {row['id']}（{row['resource']}）的授权已{'修改' if action == 'amend' else '续期'}"
            f"：授权 {gid}", f"the grant of share request {row['id']} ({row['resource']}) was "
            f"{action}ed: grant {gid}"), row["id"], now)
        return _fresh(conn, row["id"])


def amend(conn, caller: Caller, request_id: int, *, fields: list[str] | None = None,
          regions: list[str] | None = None, valid_to: date | None = None,
          reason: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A new answer on an approved request (within what was asked): new grant, old revoked."""
    if fields is None and regions is None and valid_to is None:
        raise Invalid(bilingual("修改须给出新的字段、区域或期限",
                                "an amendment needs new fields, regions or valid_to"))
    return _reanswer(conn, caller, request_id, "amend", fields=fields, regions=regions,
                     valid_to=valid_to, reason=reason, now=now)


def renew(conn, caller: Caller, request_id: int, *, valid_to: date, reason: str | None = None,
          now: datetime | None = None) -> dict[str, Any]:
    """Extend an approved (or expired) request's grant to ``valid_to``."""
    return _reanswer(conn, caller, request_id, "renew", fields=None, regions=None,
                     valid_to=valid_to, reason=reason, now=now)


def revoke(conn, caller: Caller, request_id: int, *, reason: str,
           now: datetime | None = None) -> dict[str, Any]:
    """End the request's grant at once (the data stops); recorded on the request."""
    now = _now(now)
    with conn.transaction():
        row = _load_for_change(conn, caller, request_id)
        _require_owner(caller, row)
        _require_status(row, ("approved", "partly_approved"), "撤销 / revoke")
        if _text(reason) is None:
            raise Invalid(bilingual("撤销授权必须说明理由", "a revocation needs a reason"))
        if row["grant_status"] == "revoked":
            raise Conflict(bilingual(f"申请 {row['id']} 的授权已撤销",
                                     f"the grant of request {row['id']} is already revoked"))
        revoke_grant(conn, row["grant_id"], f"{caller.name}: request {row['id']} revoked")
        store.record(conn, caller, row, "revoke", to_status=row["status"],
                     reason=_text(reason), grant_id=row["grant_id"], now=now,
                     owner=row["owner"])
        notify(conn, row["applicant"], "revoke", bilingual(
            f"共享申请 {row['id']}（{row['resource']}）的授权已撤销：{_text(reason)}",
            f"the grant of share request {row['id']} ({row['resource']}) was revoked"),
            row["id"], now)
        return _fresh(conn, row["id"])


def _require_applicant(caller: Caller, row: dict[str, Any], what: str) -> None:
    if not policy.is_applicant(caller, row["applicant"]):
        raise Forbidden(bilingual(f"只有申请部门（{row['applicant']}）可以{what}",
                                  f"only the applicant ({row['applicant']}) may {what} it"))


def withdraw(conn, caller: Caller, request_id: int, *, reason: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """The applicant withdraws a request not yet answered (or an appeal)."""
    now = _now(now)
    with conn.transaction():
        row = _load_for_change(conn, caller, request_id)
        _require_applicant(caller, row, "撤回 / withdraw")
        _require_status(row, ("submitted", "appealed"), "撤回 / withdraw")
        _set(conn, row["id"], status="withdrawn")
        store.record(conn, caller, row, "withdraw", to_status="withdrawn",
                     reason=_text(reason), now=now)
        notify(conn, row["owner"], "withdraw", bilingual(
            f"{row['applicant']} 撤回了共享申请 {row['id']}（{row['resource']}）",
            f"{row['applicant']} withdrew share request {row['id']} ({row['resource']})"),
            row["id"], now)
        return _fresh(conn, row["id"])


def appeal(conn, caller: Caller, request_id: int, *, reason: str,
           now: datetime | None = None) -> dict[str, Any]:
    """The applicant appeals a refusal to the bureau (提请市政府审定): recorded, bureau told."""
    now = _now(now)
    with conn.transaction():
        row = _load_for_change(conn, caller, request_id)
        _require_applicant(caller, row, "申诉 / appeal")
        _require_status(row, ("refused",), "申诉 / appeal")
        if _text(reason) is None:
            raise Invalid(bilingual("申诉必须说明理由", "an appeal needs a reason"))
        _set(conn, row["id"], status="appealed")
        store.record(conn, caller, row, "appeal", to_status="appealed", reason=_text(reason),
                     now=now)
        notify(conn, store.escalate_to(conn, row["id"]), "appeal", bilingual(
            f"{row['applicant']} 就共享申请 {row['id']}（{row['resource']}）提请市政府审定：{_text(reason)}",
            f"{row['applicant']} appeals the refusal of share request {row['id']} "
            f"({row['resource']}) for the city government's decision"), row["id"], now)
        return _fresh(conn, row["id"])


def rules(conn) -> list[dict[str, Any]]:
    """Every answer rule, newest first (``applies``: the one new requests get)."""
    from exchange.rules import list_rules

    return list_rules(conn)


def current_rule(conn) -> dict[str, Any]:
    """The rule a request filed now is answered under."""
    return store.active_rule(conn)


def get_request(conn, caller: Caller, request_id: int) -> dict[str, Any]:
    """One request with its events and the diffs between its answers."""
    row = store.load(conn, caller, request_id)
    if row is None:
        raise request_not_found(request_id)
    evs = store.events(conn, request_id)
    out = store.public(row)
    out["events"] = [{k: e[k] for k in ("action", "actor", "actor_dept", "for_dept", "at",
                                         "reason", "answer", "from_status", "to_status",
                                         "grant_id")} for e in evs]
    out["diffs"] = store.diffs(conn, row, evs)
    return out


def list_requests(conn, caller: Caller, *, box: str = "all", status: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The caller's outbox (filed), inbox (for its resources) or all it may see."""
    if box not in BOXES:
        raise Invalid(bilingual(f"列表 {box!r} 无效", f"unknown box {box!r}: use one of "
                                f"{', '.join(BOXES)}"))
    if status is not None and status not in STATUSES:
        raise Invalid(bilingual(f"状态 {status!r} 无效", f"unknown status {status!r}: use one "
                                f"of {', '.join(STATUSES)}"))
    if limit < 1 or limit > 1000 or offset < 0:
        raise Invalid(bilingual("分页参数无效", "limit must be 1–1000 and offset ≥ 0"))
    return store.listing(conn, caller, box=box, status=status, limit=limit, offset=offset)
