"""``jmgeo dept|key|grant|audit`` — identity, grants and the audit log from the shell.

Whoever runs these commands has the database credentials: they act as the coordinating
bureau (admin). Changes to keys and grants are themselves written to the audit log
(caller ``cli:<os user>``).
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import UTC, datetime
from typing import Any


def register_cli(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("dept", help="部门 / departments (统一社会信用代码 checked)")
    dsub = d.add_subparsers(dest="dept_cmd", required=True)
    a = dsub.add_parser("add", help="register a department")
    a.add_argument("code", help="short ascii code, e.g. jy")
    a.add_argument("name", help="中文名称, e.g. 江门市教育局")
    a.add_argument("uscc", help="统一社会信用代码 (18 characters)")
    a.set_defaults(func=_dept_add)
    ls = dsub.add_parser("list", help="list departments")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_dept_list)

    k = sub.add_parser("key", help="API 密钥 / API keys (stored hashed; shown once)")
    ksub = k.add_subparsers(dest="key_cmd", required=True)
    c = ksub.add_parser("create", help="create a key for a user or machine client")
    c.add_argument("principal", help="user or client name, e.g. gh-gis-server")
    c.add_argument("--dept", help="department code (required for role department)")
    c.add_argument("--role", choices=("department", "admin", "auditor"), default="department")
    c.add_argument("--client", action="store_true", help="a machine client, not a person")
    c.add_argument("--expires", help="expiry date/time, ISO 8601 (e.g. 2027-06-30)")
    c.add_argument("--label")
    c.set_defaults(func=_key_create)
    r = ksub.add_parser("revoke", help="revoke a key by id or prefix")
    r.add_argument("key")
    r.set_defaults(func=_key_revoke)
    kl = ksub.add_parser("list", help="list keys (never the tokens)")
    kl.add_argument("--dept")
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=_key_list)

    g = sub.add_parser("grant", help="共享授权 / grants on conditional layers")
    gsub = g.add_subparsers(dest="grant_cmd", required=True)
    ga = gsub.add_parser("add", help="grant a department a conditional layer's data")
    ga.add_argument("layer")
    ga.add_argument("dept")
    ga.add_argument("--purpose", required=True, help="用途")
    ga.add_argument("--approved-by", required=True, help="审批人 / who approved it")
    ga.add_argument("--fields", help="comma-separated fields (default: all)")
    ga.add_argument("--regions", help="comma-separated region codes (default: whole city)")
    ga.add_argument("--from", dest="valid_from", help="start, ISO 8601 (default: now)")
    ga.add_argument("--to", dest="valid_to", help="end (exclusive), ISO 8601")
    ga.add_argument("--notes")
    ga.set_defaults(func=_grant_add)
    gr = gsub.add_parser("revoke", help="revoke a grant")
    gr.add_argument("grant_id", type=int)
    gr.set_defaults(func=_grant_revoke)
    gl = gsub.add_parser("list", help="list grants with their status")
    gl.add_argument("--layer")
    gl.add_argument("--dept")
    gl.add_argument("--json", action="store_true")
    gl.set_defaults(func=_grant_list)

    au = sub.add_parser("audit", help="审计日志 / the audit log")
    asub = au.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="check the keyed chain against the checkpoints; exit 1 "
                                       "at the first fault")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_audit_verify)
    cp = asub.add_parser("checkpoint", help="write a signed checkpoint of the chain's head "
                                            "(the worker does every few minutes)")
    cp.set_defaults(func=_audit_checkpoint)
    rk = asub.add_parser("rotate-key", help="add a new HMAC key and make it current (old keys "
                                            "are kept to verify old rows)")
    rk.set_defaults(func=_audit_rotate_key)
    s = asub.add_parser("show", help="show audit rows, newest first")
    s.add_argument("--dept")
    s.add_argument("--layer")
    s.add_argument("--since", help="ISO 8601 date/time")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_audit_show)


# -- helpers ------------------------------------------------------------------------

def _conn():
    import psycopg

    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True)


def _when(value: str | None, what: str) -> datetime | None:
    from jmgeo.errors import UserError

    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{what} 日期格式无效：{value!r} / {what}: use ISO 8601, e.g. "
                        "2027-06-30 or 2027-06-30T18:00+08:00") from exc
    if dt.tzinfo is None:  # a bare date/time means Beijing time (UTC+8)
        from datetime import timedelta, timezone

        dt = dt.replace(tzinfo=timezone(timedelta(hours=8)))
    return dt


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _print(rows: list[dict[str, Any]], as_json: bool, cols: list[str]) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for r in rows:
        print("  ".join(_fmt(r.get(c)) for c in cols))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def _cli_caller():
    from layers.policy import Caller

    return Caller(kind="admin", name=f"cli:{getpass.getuser()}")


def _run(fn):
    """Map the modules' own errors to the CLI's one-line UserError."""
    from jmgeo.errors import UserError
    from layers.grants import GrantError
    from layers.identity import IdentityError

    try:
        return fn()
    except (GrantError, IdentityError) as exc:
        raise UserError(str(exc)) from exc


# -- commands -----------------------------------------------------------------------

def _dept_add(args) -> None:
    from layers.identity import add_department

    with _conn() as conn:
        _run(lambda: add_department(conn, args.code, args.name, args.uscc))
    print(f"部门已登记 / department registered: {args.code} {args.name}")


def _dept_list(args) -> None:
    from layers.identity import list_departments

    with _conn() as conn:
        _print(list_departments(conn), args.json, ["code", "uscc", "layers", "name"])


def _key_create(args) -> None:
    from layers import audit
    from layers.identity import create_key

    with _conn() as conn, conn.transaction():
        key = _run(lambda: create_key(
            conn, args.principal, role=args.role, dept=args.dept,
            kind="client" if args.client else "user", label=args.label,
            expires_at=_when(args.expires, "--expires")))
        audit.record(conn, action="key.create", caller=_cli_caller(),
                     request={"key_id": key["id"], "prefix": key["prefix"],
                              "principal": args.principal, "role": args.role,
                              "dept": args.dept})
    print(f"key {key['id']} for {args.principal}: {key['token']}")
    print("请妥善保存，此密钥只显示这一次 / store it now: the key is shown only once")


def _key_revoke(args) -> None:
    from layers import audit
    from layers.identity import revoke_key

    with _conn() as conn, conn.transaction():
        row = _run(lambda: revoke_key(conn, args.key))
        audit.record(conn, action="key.revoke", caller=_cli_caller(),
                     request={"key_id": row["id"], "prefix": row["prefix"]})
    print(f"密钥已撤销 / key {row['id']} ({row['prefix']}) revoked; running servers refuse "
          "it within 5 s")


def _key_list(args) -> None:
    from layers.identity import list_keys

    with _conn() as conn:
        _print(list_keys(conn, args.dept), args.json,
               ["id", "prefix", "status", "role", "dept", "principal", "expires_at"])


def _grant_add(args) -> None:
    from layers import audit
    from layers.grants import add_grant

    with _conn() as conn, conn.transaction():
        gid = _run(lambda: add_grant(
            conn, layer=args.layer, dept=args.dept, purpose=args.purpose,
            approved_by=args.approved_by, fields=_csv(args.fields),
            regions=_csv(args.regions), valid_from=_when(args.valid_from, "--from"),
            valid_to=_when(args.valid_to, "--to"), notes=args.notes, source="cli"))
        # no approval on record: supervision (`jmgeo request list`) shows it as such
        audit.record(conn, action="grant.add", caller=_cli_caller(), layer=args.layer,
                     request={"grant_id": gid, "source": "cli", "dept": args.dept,
                              "purpose": args.purpose,
                              "fields": _csv(args.fields), "regions": _csv(args.regions),
                              "approved_by": args.approved_by})
    print(f"授权 {gid} 已生效 / grant {gid}: {args.dept} may read {args.layer} "
          f"for {args.purpose!r}")


def _grant_revoke(args) -> None:
    from layers import audit
    from layers.grants import revoke_grant

    by = f"cli:{getpass.getuser()}"
    with _conn() as conn, conn.transaction():
        _run(lambda: revoke_grant(conn, args.grant_id, by))
        audit.record(conn, action="grant.revoke", caller=_cli_caller(),
                     request={"grant_id": args.grant_id})
    print(f"授权 {args.grant_id} 已撤销 / grant {args.grant_id} revoked (effective at once)")


def _grant_list(args) -> None:
    from layers.grants import list_grants

    with _conn() as conn:
        _print(list_grants(conn, args.layer, args.dept), args.json,
               ["id", "status", "layer", "dept", "source", "request_id", "fields", "regions",
                "valid_to", "purpose"])


def _audit_verify(args) -> int:
    import json
    import sys

    from layers import audit_checkpoint

    with _conn() as conn:
        result = audit_checkpoint.report(conn)
    if args.json:
        print(json.dumps(result, default=str, ensure_ascii=False, indent=1))
        return 0 if result["intact"] else 1
    for warning in result["warnings"]:
        print(warning, file=sys.stderr)
    cp = result["checkpoint"]
    against = (f"检查点 #{cp['seq']}（{cp['at']}，第 {cp['row_id']} 行，{cp['count']} 行）/ "
               f"checkpoint #{cp['seq']} ({cp['at']}, row {cp['row_id']}, {cp['count']} rows)"
               if cp else "无检查点 / no checkpoint")
    if not result["intact"]:
        print(result["broken"]["message"])
        print(f"对照 / verified against: {against}")
        return 1
    head = result["head"]
    print(f"审计链完整 / audit chain intact: head row {head['id'] if head else '-'} "
          f"{head['hash'] if head else ''}; 对照 / verified against {against}")
    return 0


def _audit_checkpoint(args) -> None:
    from layers import audit_checkpoint

    with _conn() as conn:
        entry = audit_checkpoint.write(conn)
    if entry is None:
        print("审计链头未变，未写检查点 / the head has not moved since the last checkpoint")
    else:
        print(f"检查点 #{entry['seq']} / checkpoint #{entry['seq']}: row {entry['row_id']}, "
              f"{entry['count']} rows")


def _audit_rotate_key(args) -> None:
    from layers import audit, audit_checkpoint, audit_keys

    new = audit_keys.rotate()
    with _conn() as conn:
        audit.record(conn, action="audit.rotate_key", caller=_cli_caller(),
                     request={"key_id": new})
        audit_checkpoint.write(conn)
    print(f"新密钥 / new key {new} (旧密钥保留用于核验 / old keys kept to verify old rows); "
          f"back up {audit_keys.load().path}")


def _audit_show(args) -> None:
    from layers import audit

    with _conn() as conn:
        rows = audit.show(conn, args.dept, args.layer, _when(args.since, "--since"),
                          args.limit)
    _print(rows, args.json, ["id", "at", "dept_code", "caller", "action", "layer", "grant_id",
                             "rows", "request"])
