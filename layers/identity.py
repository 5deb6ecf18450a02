"""Identity (身份): departments, their users and machine clients, and API keys.

A key is the token ``jmk_<prefix>_<secret>``: ``prefix`` is 8 hex characters stored in
clear (unique index, for lookup), ``secret`` 32 random bytes (base64url). The database
keeps only ``sha256(token)`` — the token is high-entropy, so a fast hash is safe and no
password stretching is needed — and ``jmgeo.auth`` compares with ``hmac.compare_digest``.
The token is shown once, when created; it cannot be recovered, only revoked.

Principals (``principal``) have a role: ``department`` (belongs to one department),
``admin`` (the coordinating bureau: manages registry and grants; data as its
department only) or ``auditor`` (reads the audit log).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from jmgeo.errors import UserError
from layers.departments import DEMO_DEPARTMENTS, InvalidUSCC, make_uscc, validate_uscc

TOKEN_RE = re.compile(r"^jmk_([0-9a-f]{8})_([A-Za-z0-9_-]{32,64})$")
ROLES = ("department", "admin", "auditor")
KINDS = ("user", "client")
DEPT_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class IdentityError(UserError, ValueError):
    """A department, principal or key request that cannot be done as asked."""


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


# called with the prefix of every key revoked in this process: the server's
# authentication (``jmgeo.auth``) registers its cache's ``forget`` here, so a revocation
# takes effect at once in this process; other processes see it within their cache TTL.
# (This package sits below the server and does not import it.)
_revocation_hooks: list[Callable[[str], None]] = []


def on_revoke(hook: Callable[[str], None]) -> None:
    """Call ``hook(prefix)`` after every key revoked in this process (idempotent)."""
    if hook not in _revocation_hooks:
        _revocation_hooks.append(hook)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token(token: str) -> str | None:
    """The lookup prefix of a well-formed token, or None."""
    m = TOKEN_RE.match(token)
    return m.group(1) if m else None


# -- departments --------------------------------------------------------------------

def add_department(conn, code: str, name: str, uscc: str) -> int:
    if not DEPT_CODE_RE.match(code or ""):
        raise IdentityError(f"部门代码无效：{code!r}，应为小写字母开头的字母数字 / department code "
                            f"{code!r} must be lowercase ascii letters/digits, e.g. 'jy'")
    if not (name or "").strip():
        raise IdentityError("部门名称不能为空 / the department name is required")
    try:
        norm = validate_uscc(uscc)
    except InvalidUSCC as exc:
        raise IdentityError(str(exc)) from exc
    clash = _q(conn, "SELECT code FROM department WHERE code = %s OR uscc = %s",
               (code, norm)).fetchone()
    if clash:
        raise IdentityError(f"部门代码或信用代码已登记（{clash['code']}）/ department code or "
                            f"USCC already registered as {clash['code']!r}")
    return _q(conn, "INSERT INTO department (code, name, uscc) VALUES (%s, %s, %s) "
                    "RETURNING id", (code, name.strip(), norm)).fetchone()["id"]


def list_departments(conn) -> list[dict[str, Any]]:
    return _q(conn, "SELECT d.code, d.name, d.uscc, d.created_at, "
                    "(SELECT count(*) FROM layer l WHERE l.owner_dept_id = d.id) AS layers "
                    "FROM department d ORDER BY d.code").fetchall()


# -- principals and keys ------------------------------------------------------------

def ensure_principal(conn, name: str, role: str = "department", dept: str | None = None,
                     kind: str = "user") -> int:
    """Create the principal if absent (same name → same principal); returns its id."""
    if role not in ROLES:
        raise IdentityError(f"角色无效：{role!r} / role must be one of {', '.join(ROLES)}")
    if kind not in KINDS:
        raise IdentityError(f"类型无效：{kind!r} / kind must be user or client")
    dept_id = None
    if dept is not None:
        row = _q(conn, "SELECT id FROM department WHERE code = %s", (dept,)).fetchone()
        if row is None:
            raise IdentityError(f"部门 {dept!r} 不存在 / unknown department {dept!r}: see "
                                "`jmgeo dept list`")
        dept_id = row["id"]
    if role == "department" and dept_id is None:
        raise IdentityError("部门用户必须属于一个部门 / a department user needs --dept")
    existing = _q(conn, "SELECT id, role, dept_id FROM principal WHERE name = %s",
                  (name,)).fetchone()
    if existing:
        if existing["role"] != role or existing["dept_id"] != dept_id:
            raise IdentityError(f"用户 {name!r} 已存在且角色/部门不同 / principal {name!r} "
                                "exists with another role or department")
        return existing["id"]
    return _q(conn, "INSERT INTO principal (name, kind, role, dept_id) VALUES (%s, %s, %s, %s) "
                    "RETURNING id", (name, kind, role, dept_id)).fetchone()["id"]


def create_key(conn, principal: str, *, role: str = "department", dept: str | None = None,
               kind: str = "user", label: str | None = None,
               expires_at: datetime | None = None, token: str | None = None) -> dict[str, Any]:
    """Create a key for a principal (created if absent). Returns id, prefix and the token —
    the only time the token is visible. ``token`` is for deterministic demo keys only."""
    pid = ensure_principal(conn, principal, role, dept, kind)
    if token is None:
        token = f"jmk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
    prefix = parse_token(token)
    if prefix is None:
        raise IdentityError("密钥格式无效 / malformed key token")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise IdentityError("有效期已过 / expires_at is in the past")
    row = _q(conn, "INSERT INTO api_key (principal_id, prefix, key_hash, label, expires_at) "
                   "VALUES (%s, %s, %s, %s, %s) RETURNING id",
             (pid, prefix, hash_token(token), label, expires_at)).fetchone()
    return {"id": row["id"], "prefix": prefix, "token": token, "principal": principal}


def revoke_key(conn, key: int | str) -> dict[str, Any]:
    """Revoke by prefix (8 hex characters, as `key list` shows) or by id. Takes effect at
    once in this process (:func:`on_revoke`) and on every worker within the auth cache
    TTL. A prefix may be all digits (12345678): it is
    tried as a prefix first, then as an id."""
    text = str(key)
    attempts: list[tuple[str, Any]] = []
    if not isinstance(key, int) and re.fullmatch(r"[0-9a-f]{8}", text):
        attempts.append(("prefix", text))
    if isinstance(key, int) or text.isdigit():
        attempts.append(("id", int(text)))
    if not attempts:
        attempts.append(("prefix", text))
    row = None
    for col, value in attempts:
        row = _q(conn, f"UPDATE api_key SET revoked_at = now() WHERE {col} = %s "
                       "AND revoked_at IS NULL RETURNING id, prefix", (value,)).fetchone()
        if row is not None:
            break
    if row is None:
        raise IdentityError(f"密钥 {key} 不存在或已撤销 / no active key {key}: see "
                            "`jmgeo key list`")
    for hook in _revocation_hooks:
        hook(row["prefix"])
    return row


def list_keys(conn, dept: str | None = None) -> list[dict[str, Any]]:
    query = ("SELECT k.id, k.prefix, p.name AS principal, p.kind, p.role, d.code AS dept, "
             "k.label, k.created_at, k.expires_at, k.revoked_at, "
             "CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked' "
             "WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired' "
             "ELSE 'active' END AS status FROM api_key k "
             "JOIN principal p ON p.id = k.principal_id "
             "LEFT JOIN department d ON d.id = p.dept_id")
    params: list[Any] = []
    if dept:
        query += " WHERE d.code = %s"
        params.append(dept)
    return _q(conn, query + " ORDER BY k.id", params).fetchall()


def lookup(conn, prefix: str) -> dict[str, Any] | None:
    """The one indexed query authentication needs (by the unique prefix)."""
    return _q(conn,
        "SELECT k.id, k.key_hash, k.expires_at, k.revoked_at, p.name, p.role, "
        "p.disabled_at, d.code AS dept_code FROM api_key k "
        "JOIN principal p ON p.id = k.principal_id "
        "LEFT JOIN department d ON d.id = p.dept_id WHERE k.prefix = %s", (prefix,)).fetchone()


def caller_for_key(conn, key_id: int):
    """The caller an API key stands for *now* — None when it was revoked or expired, or
    its principal disabled: work queued under the key (an export, a load) must not run."""
    from layers.policy import Caller

    key = _q(conn,
        "SELECT k.id, p.name, p.role, d.code AS dept_code FROM api_key k JOIN principal p "
        "ON p.id = k.principal_id LEFT JOIN department d ON d.id = p.dept_id WHERE k.id = %s "
        "AND k.revoked_at IS NULL AND p.disabled_at IS NULL AND (k.expires_at IS NULL OR "
        "k.expires_at > now())", (key_id,)).fetchone()
    if key is None:
        return None
    return Caller(kind=key["role"], dept_code=key["dept_code"], name=key["name"],
                  key_id=key["id"])


# -- demo ---------------------------------------------------------------------------

DEMO_SECRET = b"jmgeo-demo-only-not-for-production"
DEMO_EXTRA_DEPARTMENTS = [
    {"code": "jy", "name": "江门市教育局", "uscc": make_uscc("11", "440700", "00701008")},
]
DEMO_LAYER = "land_parcels"  # the conditional demo layer the demo grants refer to
DEMO_TABLE = "enterprises"  # the conditional demo table resource (企业名录, key USCC)


def demo_token(name: str) -> str:
    """A deterministic DEMO-ONLY token (derived from a fixed, public secret)."""
    digest = hmac.new(DEMO_SECRET, name.encode(), hashlib.sha256).digest()
    import base64

    secret = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"jmk_{digest[:4].hex()}_{secret}"


# name -> (role, dept, description)
DEMO_IDENTITIES: dict[str, tuple[str, str | None, str]] = {
    "demo-gtzy": ("department", "gtzy", "owner: 国土资源局 (land layers)"),
    "demo-sw": ("department", "sw", "owner: 水务局 (water layers)"),
    "demo-jt": ("department", "jt", "owner: 交通运输局 (transport layers)"),
    "demo-rf": ("department", "rf", "owner: 人民防空办公室 (civil defence layers)"),
    "demo-scjg": ("department", "scjg", f"owner: 市场监督管理局 (the {DEMO_TABLE} table)"),
    "demo-hb": ("department", "hb", "unrelated department: 环境保护局, no grants"),
    "demo-gh": ("department", "gh", f"城乡规划局 with a live grant on {DEMO_LAYER}: 蓬江区 "
                                    f"(440703) only, fields without 权利人; and on {DEMO_TABLE}: "
                                    "fields without 法定代表人 and phone"),
    "demo-jy": ("department", "jy", f"教育局 with an EXPIRED grant on {DEMO_LAYER}"),
    "demo-admin": ("admin", "wxtc", "coordinating bureau 网信统筹局: manages registry and "
                                    "grants; data as 网信统筹局 only"),
    "demo-auditor": ("auditor", None, "auditor: GET /audit only"),
}


def _owner_columns(conn, layer: str) -> set[str]:
    """Columns of the layer that hold the 权利人 (right holder)."""
    row = _q(conn, "SELECT field_labels FROM layer WHERE name = %s", (layer,)).fetchone()
    labels = (row or {}).get("field_labels") or {}
    return {c for c, label in labels.items() if "权利人" in str(label)} | {"权利人", "qlr"}


def _ensure_demo_grants(conn, layer: str) -> list[str]:
    from layers.grants import add_grant, layer_fields, list_grants

    notes = []
    row = _q(conn, "SELECT sharing_class FROM layer WHERE name = %s AND current_version "
                   "IS NOT NULL", (layer,)).fetchone()
    if row is None or row["sharing_class"] != "conditional":
        return [f"demo grants skipped: no conditional layer {layer!r} loaded yet"]
    existing = {(g["dept"], g["notes"]) for g in list_grants(conn, layer=layer)}
    if ("gh", "demo grant") not in existing:
        fields = [f for f in layer_fields(conn, layer)
                  if f not in _owner_columns(conn, layer)]
        add_grant(conn, layer=layer, dept="gh", purpose="蓬江区控制性详细规划编制",
                  approved_by="网信统筹局 demo-admin", fields=fields, regions=["440703"],
                  valid_to=datetime.now(UTC) + timedelta(days=3650), notes="demo grant")
        notes.append(f"grant: gh on {layer}, 440703, fields {', '.join(fields)}")
    if ("jy", "demo grant") not in existing:
        start = datetime(2025, 9, 1, tzinfo=UTC)
        add_grant(conn, layer=layer, dept="jy", purpose="学校布点规划（已结束）",
                  approved_by="网信统筹局 demo-admin", valid_from=start,
                  valid_to=start + timedelta(days=90), notes="demo grant")
        notes.append(f"grant: jy on {layer}, expired 2025-11-30")
    return notes


def _ensure_demo_table_grant(conn, table: str) -> list[str]:
    """gh's grant on the demo table: every field but the legal representative's name and
    phone (a table takes field limits, never regions)."""
    from layers.grants import add_grant, layer_fields, list_grants

    row = _q(conn, "SELECT sharing_class FROM layer WHERE name = %s AND current_version "
                   "IS NOT NULL", (table,)).fetchone()
    if row is None or row["sharing_class"] != "conditional":
        return [f"demo table grant skipped: no conditional table {table!r} loaded yet"]
    if any(g["dept"] == "gh" and g["notes"] == "demo grant"
           for g in list_grants(conn, layer=table)):
        return []
    fields = [f for f in layer_fields(conn, table) if not f.startswith("legal_rep")]
    add_grant(conn, layer=table, dept="gh", purpose="产业园区规划企业摸底",
              approved_by="网信统筹局 demo-admin", fields=fields,
              valid_to=datetime.now(UTC) + timedelta(days=3650), notes="demo grant")
    return [f"grant: gh on {table}, fields {', '.join(fields)}"]


def ensure_demo_identities(conn, path: Path | None = None,
                           layer: str = DEMO_LAYER) -> dict[str, Any]:
    """Create (idempotently) one DEMO key per kind of caller, the demo grants, and write
    the tokens to ``var/demo_keys.txt`` (mode 0600). Returns {name: token, ...} under
    "keys" plus "notes". The tokens are derived from a fixed public secret: DEMO ONLY."""
    from layers.departments import ensure_departments

    ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
    keys: dict[str, str] = {}
    for name, (role, dept, _desc) in DEMO_IDENTITIES.items():
        token = demo_token(name)
        prefix = parse_token(token)
        ensure_principal(conn, name, role, dept)
        if _q(conn, "SELECT 1 FROM api_key WHERE prefix = %s", (prefix,)).fetchone() is None:
            create_key(conn, name, role=role, dept=dept, label="demo key (DEMO ONLY)",
                       token=token)
        keys[name] = token
    notes = _ensure_demo_grants(conn, layer) + _ensure_demo_table_grant(conn, DEMO_TABLE)
    if path is None:
        from jmgeo.settings import get_settings

        path = get_settings().var_dir / "demo_keys.txt"
    lines = ["# jmgeo DEMO keys — derived from a fixed public demo secret: NEVER use in "
             "production.", "# Try: curl -H 'X-API-Key: <token>' "
             "http://127.0.0.1:5000/ogc/collections?f=json", ""]
    for name, token in keys.items():
        lines.append(f"{name:14} {token}  # {DEMO_IDENTITIES[name][2]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return {"keys": keys, "notes": notes, "file": str(path)}
