"""Grants (共享授权): a conditional layer's data for one department and one purpose (用途).

A grant names the layer, the grantee department, the purpose, optionally the fields
(NULL = every field; sensitive fields stay masked unless named) and the region codes
(NULL = the whole city), a period ``[valid_from, valid_to)``, who approved it, and notes.
Revoking sets ``revoked_at``; grants are never deleted (the audit log refers to them).

Decisions, checked when a grant is created (messages Chinese first, English beside):

* Only **conditional** layers take grants. Open and unconditional layers are already
  shared (a grant would be meaningless and would suggest it restricts something) — but
  an unconditional resource with sensitive fields (a base library's ID numbers) takes a
  grant naming only sensitive fields: it unmasks them (``layers.policy.decide``);
  not_shared layers are not shared by law (their legal basis) — a grant would break it.
* The owner department needs no grant.
* Every field must exist in the layer's current version; every region code must be a
  current region with a boundary polygon (row scope is spatial, by ``region_part``).

A grant has a ``source``: ``request`` when an approved share request made it
(``exchange.requests``; ``request_id`` names the request, whose events hold the approval),
``cli`` when the bureau typed it with ``jmgeo grant add`` (no approval on record).

``layers.policy.decide`` is the only reader that turns grants into access.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row

from jmgeo.errors import UserError

STATUSES = ("live", "future", "expired", "revoked")


class GrantError(UserError, ValueError):
    """A grant that cannot be created or revoked as asked; the message says how to fix it."""


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


# THE rule of a live grant, as SQL over ``layer_grant g`` (list_grants' status 'live')
LIVE_SQL = ("g.revoked_at IS NULL AND g.valid_from <= now() "
            "AND (g.valid_to IS NULL OR g.valid_to > now())")


def next_change(conn, dept_code: str | None) -> datetime | None:
    """The next instant a grant of the department starts or ends (None: none pending).

    Not a row change, so no epoch marks it (migration 0028): whoever keeps the
    department's access in memory (``jmgeo.ogc.audiences``) keeps it no longer than
    this. Revoked grants never change again."""
    if not dept_code:
        return None
    row = _q(conn, "SELECT min(t) AS at FROM layer_grant g JOIN department d "
                   "ON d.id = g.dept_id, LATERAL (VALUES (g.valid_from), (g.valid_to)) v(t) "
                   "WHERE d.code = %s AND g.revoked_at IS NULL AND v.t > now()",
             (dept_code,)).fetchone()
    return row["at"]


def live_grants(conn, dept_code: str | None, layer: str | None = None) -> list[dict[str, Any]]:
    """The department's live grants (not revoked, now within their period)."""
    if not dept_code:
        return []
    query = ("SELECT g.id, l.name AS layer, g.fields, g.regions, g.purpose, g.valid_from, "
             "g.valid_to, g.request_id FROM layer_grant g JOIN layer l ON l.id = g.layer_id "
             "JOIN department d ON d.id = g.dept_id WHERE d.code = %s AND " + LIVE_SQL)
    params: list[Any] = [dept_code]
    if layer is not None:
        query += " AND l.name = %s"
        params.append(layer)
    return _q(conn, query + " ORDER BY g.id", params).fetchall()


def layer_fields(conn, layer: str) -> list[str]:
    """The attribute columns of a layer's current version (fid and geom excluded)."""
    rows = _q(conn,
        "SELECT a.attname FROM layer l JOIN layer_version v ON v.layer_id = l.id "
        "AND v.version = l.current_version JOIN pg_attribute a "
        "ON a.attrelid = to_regclass(v.table_name) AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE l.name = %s ORDER BY a.attnum", (layer,)).fetchall()
    return [r["attname"] for r in rows if r["attname"] not in ("fid", "geom")]


def check_fields(conn, layer: str, fields: list[str] | None) -> list[str] | None:
    """THE check of a field list a grant (or a share request) names: every field exists
    in the resource's current version, the list is not empty. Returns it de-duplicated
    (None: every field)."""
    if fields is None:
        return None
    fields = list(dict.fromkeys(f.strip() for f in fields if f and f.strip()))
    known = layer_fields(conn, layer)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise GrantError(
            f"资源 {layer} 没有字段 {', '.join(unknown)}；可用字段：{', '.join(known)} / "
            f"resource {layer!r} has no field {', '.join(map(repr, unknown))}; its fields "
            f"are {', '.join(known)}")
    if not fields:
        raise GrantError("字段列表为空 / the field list is empty: omit it for all fields")
    return fields


def check_regions(conn, layer: str, kind: str, regions: list[str] | None) -> list[str] | None:
    """THE check of a region scope: region codes of Jiangmen that have a boundary polygon
    (the rule needs one to intersect), and never on a table — its rows have no geometry,
    so a region scope could only ever mean "no rows". Returns it de-duplicated (None:
    no region limit)."""
    if regions is None:
        return None
    if kind == "table":
        raise GrantError(
            f"{layer} 是数据表，没有几何，不能按区域授权或申请：请去掉区域（--regions），或以字段限定 / "
            f"{layer!r} is a table without geometry: its rows cannot be limited by region "
            "— drop the regions (--regions), limit it by fields instead")
    regions = list(dict.fromkeys(r.strip() for r in regions if r and r.strip()))
    with_polygons = {r["code"] for r in _q(conn,
        "SELECT DISTINCT r.code FROM region r JOIN region_part p ON p.region_id = r.id "
        "WHERE r.valid_to IS NULL")}
    bad = [r for r in regions if r not in with_polygons]
    if bad or not regions:
        raise GrantError(
            f"区划代码不在江门市范围内或无边界：{', '.join(bad) or '（空）'}；可用：{', '.join(sorted(with_polygons))}"
            f" / region code(s) {', '.join(bad) or '(none)'} are not regions of Jiangmen "
            f"with a boundary polygon; use one of {', '.join(sorted(with_polygons))}")
    return regions


def _layer(conn, name: str) -> dict[str, Any]:
    row = _q(conn, "SELECT l.id, l.name, l.kind, l.sharing_class, d.code AS owner_code, "
                   "l.current_version FROM layer l JOIN department d ON d.id = l.owner_dept_id "
                   "WHERE l.name = %s", (name,)).fetchone()
    if row is None:
        raise GrantError(f"资源 {name!r} 不存在 / no layer named {name!r} (layers and tables "
                         "share one registry): see `jmgeo layer list`")
    return row


def _dept_id(conn, code: str) -> int:
    row = _q(conn, "SELECT id FROM department WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise GrantError(f"部门 {code!r} 不存在 / unknown department {code!r}: see "
                         "`jmgeo dept list`, or add it with `jmgeo dept add`")
    return row["id"]


def _unmasking_only(conn, layer: str, fields: list[str]) -> None:
    """An unconditional resource's grant may only unmask: every field it names must be
    one of the resource's sensitive fields (the rest are shared already)."""
    row = _q(conn, "SELECT sensitive_fields FROM layer WHERE name = %s", (layer,)).fetchone()
    sensitive = set((row or {}).get("sensitive_fields") or {})
    other = [f for f in fields if f not in sensitive]
    if other:
        raise GrantError(f"无条件共享资源 {layer} 的授权只能解除敏感字段脱敏，{', '.join(other)} "
                         f"不是敏感字段 / a grant on the unconditional resource {layer!r} only "
                         f"unmasks sensitive fields ({', '.join(sorted(sensitive)) or 'none'}): "
                         f"{', '.join(other)} is not one")


def add_grant(conn, *, layer: str, dept: str, purpose: str, approved_by: str,
              fields: list[str] | None = None, regions: list[str] | None = None,
              valid_from: datetime | None = None, valid_to: datetime | None = None,
              notes: str | None = None, request_id: int | None = None,
              source: str = "cli") -> int:
    """Create a grant after checking it against the registry; returns its id.

    ``source`` is ``cli`` (typed by the bureau) or ``request`` (an approval of the share
    request ``request_id``)."""
    if source not in ("cli", "request") or (source == "request") != (request_id is not None):
        raise ValueError("a grant's source is 'request' exactly when it names its request")
    lay = _layer(conn, layer)
    if lay["sharing_class"] == "unconditional" and fields:
        _unmasking_only(conn, layer, fields)
    elif lay["sharing_class"] != "conditional":
        why = {"open": "开放图层人人可用，无需授权 / open layers are available to everyone",
               "unconditional": "无条件共享图层各部门均可用，无需授权 / unconditional layers are "
                                "available to every department",
               "not_shared": "不予共享图层依法不得授权共享 / not_shared layers may not be shared "
                             "(see the layer's legal basis)"}[lay["sharing_class"]]
        raise GrantError(f"只有有条件共享图层可以授权：{layer} 为 {lay['sharing_class']}；{why} / "
                         f"only conditional layers take grants: {layer!r} is "
                         f"{lay['sharing_class']} (an unconditional resource takes only a "
                         "grant naming sensitive fields to unmask: --fields)")
    if dept == lay["owner_code"]:
        raise GrantError(f"部门 {dept} 是图层 {layer} 的所有者，无需授权 / department {dept!r} "
                         f"owns {layer!r} and needs no grant")
    dept_id = _dept_id(conn, dept)
    if not (purpose or "").strip():
        raise GrantError("授权必须写明用途 / a grant needs a purpose (用途), e.g. --purpose "
                         "'城市规划编制'")
    if not (approved_by or "").strip():
        raise GrantError("授权必须写明审批人 / a grant needs approved_by (who approved it)")
    fields = check_fields(conn, layer, fields)
    regions = check_regions(conn, layer, lay["kind"], regions)
    now = datetime.now(UTC)
    valid_from = valid_from or now
    if valid_to is not None and valid_to <= valid_from:
        raise GrantError(f"有效期结束应晚于开始 / valid_to ({valid_to:%Y-%m-%d}) must be after "
                         f"valid_from ({valid_from:%Y-%m-%d})")
    row = _q(conn,
        "INSERT INTO layer_grant (layer_id, dept_id, purpose, fields, regions, valid_from, "
        "valid_to, approved_by, notes, request_id, source) VALUES (%s, %s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, %s) RETURNING id",
        (lay["id"], dept_id, purpose.strip(), fields, regions, valid_from, valid_to,
         approved_by.strip(), notes, request_id, source)).fetchone()
    return row["id"]


def revoke_grant(conn, grant_id: int, by: str | None = None) -> dict[str, Any]:
    row = _q(conn, "UPDATE layer_grant SET revoked_at = now(), revoked_by = %s "
                   "WHERE id = %s AND revoked_at IS NULL RETURNING id, revoked_at",
             (by, grant_id)).fetchone()
    if row is None:
        exists = _q(conn, "SELECT revoked_at FROM layer_grant WHERE id = %s",
                    (grant_id,)).fetchone()
        if exists is None:
            raise GrantError(f"授权 {grant_id} 不存在 / no grant {grant_id}: see "
                             "`jmgeo grant list`")
        raise GrantError(f"授权 {grant_id} 已于 {exists['revoked_at']:%Y-%m-%d %H:%M} 撤销 / "
                         f"grant {grant_id} was already revoked")
    return row


def list_grants(conn, layer: str | None = None, dept: str | None = None,
                grant_id: int | None = None) -> list[dict[str, Any]]:
    """Every grant (newest first) with its status: live, future, expired or revoked
    (``grant_id``: that one grant, if it exists)."""
    query = ("SELECT g.id, l.name AS layer, d.code AS dept, g.purpose, g.fields, g.regions, "
             "g.valid_from, g.valid_to, g.approved_by, g.notes, g.created_at, g.revoked_at, "
             "g.source, g.request_id, CASE WHEN g.revoked_at IS NOT NULL THEN 'revoked' "
             "WHEN g.valid_from > now() THEN 'future' "
             "WHEN g.valid_to IS NOT NULL AND g.valid_to <= now() THEN 'expired' "
             "ELSE 'live' END AS status "
             "FROM layer_grant g JOIN layer l ON l.id = g.layer_id "
             "JOIN department d ON d.id = g.dept_id WHERE TRUE")
    params: list[Any] = []
    if layer:
        query += " AND l.name = %s"
        params.append(layer)
    if dept:
        query += " AND d.code = %s"
        params.append(dept)
    if grant_id is not None:
        query += " AND g.id = %s"
        params.append(grant_id)
    return _q(conn, query + " ORDER BY g.id DESC", params).fetchall()
