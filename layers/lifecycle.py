"""Retiring a resource (停止服务): hidden everywhere, kept for history.

``retire`` sets ``layer.retired_at`` (with who and why); from then on the policy's one
resource query (``layers.policy.IN_SERVICE_SQL``) leaves it out, so every way out — OGC
collections, items, tiles, maps, coverages, downloads, feeds, online query, region
statistics, subscriptions, share requests — answers exactly as for a resource that never
existed, and its catalog entry is retired at the next catalog sync. Nothing is dropped:
versions and their tables, grants, the change log and the audit log stay, so
``unretire`` puts it back in service as it was. Like ``layers.registry.prune``, a
resource with live grants is refused unless ``force`` (departments rely on it; their
systems pull from it); both are written to the audit log (``layer.retire`` /
``layer.unretire``) and bump the registry epoch (every API worker rebuilds its
configuration, the catalog re-syncs).
"""

from __future__ import annotations

from typing import Any

import psycopg

from layers.registry import RegistryError, bump_epoch, lock_layer, require_layer


def live_grants(conn: psycopg.Connection, layer_id: int) -> int:
    from layers.grants import LIVE_SQL

    row = conn.execute("SELECT count(*) AS n FROM layer_grant g WHERE g.layer_id = %s AND "
                       + LIVE_SQL, (layer_id,)).fetchone()
    return int(row["n"] if isinstance(row, dict) else row[0])


def retire(conn: psycopg.Connection, name: str, *, force: bool = False,
           reason: str | None = None, by: str | None = None) -> dict[str, Any]:
    """Take resource ``name`` out of service (see the module docstring)."""
    from layers import audit

    with conn.transaction():
        lock_layer(conn, name)
        layer = require_layer(conn, name)
        if layer.get("retired_at") is not None:
            raise RegistryError(f"资源 {name} 已停止服务（{layer['retired_at']:%Y-%m-%d}）/ {name} "
                                f"is already retired: `jmgeo layer unretire {name}` puts it "
                                "back")
        live = live_grants(conn, layer["id"])
        if live and not force:
            raise RegistryError(
                f"资源 {name} 有 {live} 个有效授权，受权部门仍在使用；确需停止服务请加 --force / "
                f"{name} has {live} live grant(s) whose departments still use it: revoke "
                "them first, or add --force to retire it anyway")
        conn.execute("UPDATE layer SET retired_at = now(), retired_by = %s, "
                     "retired_reason = %s, updated_at = now() WHERE id = %s",
                     (by, reason, layer["id"]))
        epoch = bump_epoch(conn)
        audit.record(conn, action="layer.retire", layer=name,
                     request={"by": by, "reason": reason, "live_grants": live,
                              "forced": bool(live and force),
                              "version": layer["current_version"]})
    return {"layer": name, "retired": True, "live_grants": live, "epoch": epoch}


def unretire(conn: psycopg.Connection, name: str, *, by: str | None = None
             ) -> dict[str, Any]:
    """Put a retired resource back in service, as it was (same versions and grants)."""
    from layers import audit

    with conn.transaction():
        lock_layer(conn, name)
        layer = require_layer(conn, name)
        if layer.get("retired_at") is None:
            raise RegistryError(f"资源 {name} 未停止服务 / {name} is not retired")
        conn.execute("UPDATE layer SET retired_at = NULL, retired_by = NULL, "
                     "retired_reason = NULL, updated_at = now() WHERE id = %s", (layer["id"],))
        epoch = bump_epoch(conn)
        audit.record(conn, action="layer.unretire", layer=name,
                     request={"by": by, "retired_at": layer["retired_at"].isoformat(),
                              "reason": layer.get("retired_reason")})
    return {"layer": name, "retired": False, "epoch": epoch}
