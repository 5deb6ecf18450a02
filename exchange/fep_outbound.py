"""前置机 outbound (issue 11 §3): a department's copy of what one grant lets it see, kept
in a database on the department's side, synced on the grant's frequency and reconciled
after every sync.

**Job-driven materialisation, not logical replication.** A PostgreSQL publication could
carry a table's rows with a column list and a row filter, but none of the three parts of
a grant fits it: a row filter may not call functions that are not immutable built-ins,
so no PostGIS — the region scope (``ST_Intersects`` with ``region_part``) cannot be said;
a publication sends stored values, and a mask is a function of the value (138****1234),
so masked fields would have to be withheld entirely or sent in clear; and every publish
is a *new* version table (``layers.registry``), so the publication would be re-pointed
and the subscriber re-seeded on every publish. Replication would also bypass the one
access seam (``layers.policy`` → ``layers.access_sql``) and hand the department a
replication slot on the platform (WAL kept while it is offline). A copy is instead a
**job** (``exchange.fep_outbound_tasks``) that reads the department's own feed —
:class:`exchange.feeds.Feed`: the grant's department as a caller, the policy's
``Access``, fields, masks and region scope exactly as every other way out — in full for
the first sync, as the change set by key since the version the copy holds afterwards,
and writes it in one target transaction (:mod:`exchange.fep_target`).

A sync, step by step (:func:`sync_copy`): the grant is checked (not live → the copy's
table is **dropped** and its metadata row says ``revoked``); the copy's version is read
from the target's metadata row; access is decided once by the policy and audited
(``fep_sync``) before any row leaves; the change set (or everything, when the copy is
new, its shape or access changed, the history it needs was pruned, or it drifted) is
piped in one target transaction together with the metadata row; then the copy is
**reconciled**: row count and content hash of the copy against the granted view,
computed the same way on both sides → ``in_sync`` or ``drift`` (with what differs; the
next sync is then a full one). The delivery is counted (``exchange.deliveries``, mode
``fep``). One sync per copy at a time: a session advisory lock on the platform, which a
killed worker's connection releases.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from exchange import deliveries
from exchange import fep_target as tgt
from exchange.feeds import Feed
from exchange.fep_target import FepError, Shape, redact
from jmgeo.errors import bilingual
from layers import audit, changes, record_log
from layers.grants import LIVE_SQL, list_grants
from layers.policy import Caller, lookup, may_manage_copies

DEFAULT_SCHEMA = "jmgeo"
_LOCK_CLASS = 0x6A6D_6670  # "jmfp": advisory locks of copy syncs (objid = copy id)


def _q(conn: psycopg.Connection, query: Any, params: Any = None) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _require(caller: Caller) -> None:
    if not may_manage_copies(caller):
        raise FepError(bilingual("只有市网信统筹局可以登记和同步前置机副本（--as-bureau）",
                                 "only the bureau (wxtc) registers and syncs front-end-"
                                 "processor copies"))


def _grant(conn: psycopg.Connection, grant_id: int) -> dict[str, Any]:
    rows = list_grants(conn, grant_id=grant_id)
    if not rows:
        raise FepError(bilingual(f"授权 {grant_id} 不存在；见 `jmgeo grant list`",
                                 f"no grant {grant_id}: see `jmgeo grant list`"))
    return rows[0]


def department_caller(dept: str, copy_id: int | str) -> Caller:
    """Whose data a copy holds: the grant's department, named after the copy."""
    return Caller(kind="department", dept_code=dept, name=f"fep:copy-{copy_id}@{dept}")


def _shape(feed: Feed) -> Shape:
    """The copy table of a feed: its columns as the caller gets them, and the signature
    of the columns and of the access (any change → a full rebuild)."""
    cols = tuple((n, "text" if feed.new.masked(n) else feed.new.table_columns[n])
                 for n in feed.names)
    geometry = None if feed.is_table else (feed.layer.get("geometry_type") or "Geometry")
    digest = hashlib.md5(json.dumps([feed.key, cols, geometry, feed.access.fingerprint()],
                                    default=str, ensure_ascii=False).encode()).hexdigest()
    return Shape(feed.key, feed.key_type, cols, geometry, digest)


# -- registering -------------------------------------------------------------------------

def add_copy(conn: psycopg.Connection, caller: Caller, *, grant_id: int, target_url: str,
             schema: str | None = None, table: str | None = None,
             every_minutes: int = 60) -> dict[str, Any]:
    """Register a copy of grant ``grant_id``'s view in ``target_url`` (``schema.table``:
    default ``jmgeo.<resource>``), synced every ``every_minutes`` and on every publish.
    Refuses a grant that is not live, a view without its key, an invalid name, an
    unreachable target (or one without PostGIS for a layer) and a target table that is
    not a copy of ours."""
    _require(caller)
    if every_minutes < 1:
        raise FepError(bilingual("同步间隔至少 1 分钟（--every-minutes）",
                                 "--every-minutes must be at least 1"))
    grant = _grant(conn, grant_id)
    if grant["status"] != "live":
        raise FepError(bilingual(
            f"授权 {grant_id} 当前状态为 {grant['status']}（非有效），不能登记前置机副本；请先续期或重新申请",
            f"grant {grant_id} is {grant['status']}, not live: a copy needs a live grant "
            "(renew it or file a new request)"))
    schema = tgt.check_ident(schema or DEFAULT_SCHEMA, "schema")
    table = tgt.check_ident(table or grant["layer"], "table")
    row, access = lookup(conn, department_caller(grant["dept"], "new"), grant["layer"])
    if row is None or access is None:
        raise FepError(bilingual(f"部门 {grant['dept']} 当前不能获得 {grant['layer']} 的数据",
                                 f"department {grant['dept']} may not have the data of "
                                 f"{grant['layer']} now"))
    Feed.open(conn, row, access, None)  # FeedRefused: no key, key withheld or masked
    with tgt.connect(target_url) as target:
        if row["kind"] != "table" and not tgt.has_postgis(target):
            raise FepError(bilingual(
                f"目标库 {redact(target_url)} 未安装 PostGIS，无法存放图层 {grant['layer']}；请在目标库执行 "
                "CREATE EXTENSION postgis",
                f"the target {redact(target_url)} has no PostGIS, so it cannot hold layer "
                f"{grant['layer']}: run CREATE EXTENSION postgis there"))
        if tgt.table_exists(target, schema, table) and \
                tgt.read_meta(target, schema, table) is None:
            raise FepError(bilingual(
                f"目标库已有表 {schema}.{table} 且不是本平台的副本；请用 --table 另选表名",
                f"the target already has a table {schema}.{table} that is not a platform "
                "copy: choose another --table"))
    try:
        new = _q(conn,
            "INSERT INTO fep_copy (grant_id, target_url, target_schema, target_table, "
            "every_minutes, created_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (grant_id, target_url, schema, table, every_minutes, caller.name)).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise FepError(bilingual(f"目标 {schema}.{table} 已登记为另一个副本；请用 --table 另选表名",
                                 f"{schema}.{table} in that target is already another "
                                 "copy: choose another --table")) from exc
    return list_copies(conn, caller, copy_id=new["id"])[0]


def list_copies(conn: psycopg.Connection, caller: Caller,
                copy_id: int | None = None) -> list[dict[str, Any]]:
    """Every copy (or one), with its grant, resource, department and last finding; the
    target URL without its password."""
    _require(caller)
    rows = _q(conn,
        "SELECT c.id, c.grant_id, l.name AS resource, d.code AS dept, c.target_url, "
        "c.target_schema, c.target_table, c.every_minutes, c.synced_version, "
        "l.current_version, c.synced_at, c.row_count, c.content_hash, c.status, c.detail, "
        "c.last_error, c.reconciled_at, c.attempted_at FROM fep_copy c "
        "JOIN layer_grant g ON g.id = c.grant_id JOIN layer l ON l.id = g.layer_id "
        "JOIN department d ON d.id = g.dept_id WHERE (%(id)s::int IS NULL OR c.id = %(id)s) "
        "ORDER BY c.id", {"id": copy_id}).fetchall()
    for r in rows:
        r["target_url"] = redact(r["target_url"])
    return rows


def due_copies(conn: psycopg.Connection) -> list[int]:
    """The copies a sync is due for: grant ended but copy not yet emptied; or grant live
    and never tried, its interval passed since the last try, or a newer version (or a
    live grant again) waiting — a failing target waits its interval."""
    rows = conn.execute(
        "SELECT c.id FROM fep_copy c JOIN layer_grant g ON g.id = c.grant_id "
        "JOIN layer l ON l.id = g.layer_id WHERE CASE WHEN " + LIVE_SQL + " THEN "
        "c.attempted_at IS NULL OR c.attempted_at + make_interval(mins => c.every_minutes) "
        "<= now() OR (c.status <> 'failed' AND c.synced_version IS DISTINCT FROM "
        "l.current_version) ELSE c.status <> 'revoked' END ORDER BY c.id").fetchall()
    return [r[0] for r in rows]


# -- syncing -----------------------------------------------------------------------------

@contextmanager
def _sync_lock(conn: psycopg.Connection, copy_id: int) -> Iterator[None]:
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, copy_id)
                       ).fetchone()[0]
    if not got:
        raise FepError(bilingual(f"副本 {copy_id} 正在由另一进程同步，请稍后再试",
                                 f"copy {copy_id} is being synced by another process: try "
                                 "again later"))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_CLASS, copy_id))


def sync_copy(conn: psycopg.Connection, copy_id: int, *, full: bool = False) -> dict[str, Any]:
    """Sync one copy now (``conn``: the platform, autocommit); returns what was done:
    ``mode`` (full | incremental | none | revoked), versions, rows, bytes, the
    reconciliation and timings. Raises :class:`FepError` (and records ``failed``) when
    the target cannot be reached or written."""
    copy = _q(conn, "SELECT * FROM fep_copy WHERE id = %s", (copy_id,)).fetchone()
    if copy is None:
        raise FepError(bilingual(f"副本 {copy_id} 不存在；见 `jmgeo fep copy list`",
                                 f"no copy {copy_id}: see `jmgeo fep copy list`"))
    with _sync_lock(conn, copy_id):
        conn.execute("UPDATE fep_copy SET attempted_at = now() WHERE id = %s", (copy_id,))
        try:
            return _sync(conn, copy, full or copy["status"] in ("drift", "failed"))
        except (FepError, psycopg.Error) as exc:
            conn.execute("UPDATE fep_copy SET status = 'failed', last_error = %s "
                         "WHERE id = %s", (str(exc)[:2000], copy_id))
            if isinstance(exc, FepError):
                raise
            raise FepError(bilingual(f"副本 {copy_id} 同步失败：{exc}",
                                     f"sync of copy {copy_id} failed: {exc}")) from exc


def _revoke(conn: psycopg.Connection, target: psycopg.Connection, copy: dict[str, Any],
            why: str) -> dict[str, Any]:
    """The grant ended: drop the copy's table; its metadata row stays, saying revoked."""
    schema, table = copy["target_schema"], copy["target_table"]
    with target.transaction():
        dropped = tgt.drop_copy(target, schema, table)
        if dropped or tgt.read_meta(target, schema, table) is not None:
            tgt.write_meta(target, schema, table, copy_id=copy["id"], version=None,
                           status="revoked", signature=None, row_count=0, content_hash=None)
    conn.execute(
        "UPDATE fep_copy SET status = 'revoked', synced_version = NULL, row_count = 0, "
        "content_hash = NULL, detail = %s, last_error = NULL, reconciled_at = now() "
        "WHERE id = %s", (why, copy["id"]))
    return {"copy": copy["id"], "mode": "revoked", "dropped": dropped, "status": "revoked",
            "detail": why}


def _literal(conn: psycopg.Connection, query: sql.Composable, params: list[Any]) -> str:
    """A query with its parameters inlined (COPY takes none), quoted by psycopg."""
    return psycopg.ClientCursor(conn).mogrify(query, params)


def _sync(conn: psycopg.Connection, copy: dict[str, Any], full: bool) -> dict[str, Any]:
    copy_id, schema, table = copy["id"], copy["target_schema"], copy["target_table"]
    grant = _grant(conn, copy["grant_id"])
    caller = department_caller(grant["dept"], copy_id)
    with tgt.connect(copy["target_url"]) as target:
        if grant["status"] != "live":
            zh = {"revoked": "撤销", "expired": "过期"}.get(grant["status"], "失效")
            return _revoke(conn, target, copy, bilingual(
                f"授权 {grant['id']} 已{zh}，副本数据已删除",
                f"grant {grant['id']} is {grant['status']}: the copy's data was dropped"))
        row, access = lookup(conn, caller, grant["layer"])
        if row is None or access is None:
            return _revoke(conn, target, copy, bilingual(
                f"部门 {grant['dept']} 已不能获得 {grant['layer']} 的数据，副本数据已删除",
                f"department {grant['dept']} may no longer have {grant['layer']}: the "
                "copy's data was dropped"))
        view = Feed.open(conn, row, access, None)
        shape = _shape(view)
        t0 = time.monotonic()
        with target.transaction():
            meta = tgt.read_meta(target, schema, table)
            since = None
            if not full and meta is not None and meta["signature"] == shape.signature and \
                    meta["status"] == "synced" and tgt.table_exists(target, schema, table):
                since = meta["version"]
            try:
                feed = Feed.open(conn, row, access, since) if since else view
            except (changes.HistoryGone, changes.BadVersion):
                feed = view  # the version the copy holds is gone: rebuild
            info = {"copy": copy_id, "resource": grant["layer"], "dept": grant["dept"],
                    "from_version": feed.plan.from_version, "to_version": feed.plan.to_version,
                    "mode": "none" if feed.plan.empty else
                    ("full" if feed.plan.old_table is None else "incremental")}
            rows = nbytes = 0
            if not feed.plan.empty:  # no audit row, no data
                with conn.transaction():
                    aid = audit.record(
                        conn, action="fep_sync", caller=caller, access=access,
                        request={"copy": copy_id, "target": redact(copy["target_url"]),
                                 "table": f"{schema}.{table}", **info,
                                 "share_request": access.request_id})
                    records = record_log.for_plan(grant["layer"], feed.plan)
                    if records is not None:
                        record_log.write(conn, caller, access, records, "fep_sync", aid)
            if info["mode"] == "full":
                vq, vparams = view.query(raw_geometry=True)
                query = _literal(conn, sql.SQL("SELECT {} FROM ({}) f").format(
                    sql.SQL(", ").join(_outputs(view)), vq), vparams)
                comment = (f"江门市空间数据平台前置机副本 / platform copy {copy_id}: "
                           f"{grant['layer']} for {grant['dept']} (grant {grant['id']}); "
                           "managed by the platform, do not edit")
                rows, nbytes = tgt.rebuild(conn, query, target, schema, table, shape,
                                           comment, copy_id)
            elif info["mode"] == "incremental":
                q, params = feed.query(raw_geometry=True)
                rows, nbytes = tgt.apply_changes(conn, _literal(conn, q, params), target,
                                                 schema, table, shape)
            # the counts and hash of the view come with the reconciliation, below
            tgt.write_meta(target, schema, table, copy_id=copy_id, resource=grant["layer"],
                           grant_id=grant["id"], version=feed.plan.to_version,
                           status="synced", signature=shape.signature, row_count=None,
                           content_hash=None)
        t1 = time.monotonic()
        info.update(rows=rows, bytes=nbytes, sync_seconds=round(t1 - t0, 3))
        if rows or nbytes:
            deliveries.record(conn, layer=grant["layer"], dept=grant["dept"], mode="fep",
                              rows=rows, nbytes=nbytes, request_id=access.request_id,
                              detail=f"copy {copy_id} {info['mode']} "
                                     f"v{info['from_version']}→v{info['to_version']}")
        info.update(reconcile(conn, target, copy, view, shape))
        info["reconcile_seconds"] = round(time.monotonic() - t1, 3)
    return info


def _outputs(view: Feed) -> list[sql.Composable]:
    """The columns of a view's rows as the copy holds them (over the feed query ``f``)."""
    return [sql.Identifier("f", n) for n in view.names] + \
        ([] if view.is_table else [sql.Identifier("f", "__geometry")])


def reconcile(conn: psycopg.Connection, target: psycopg.Connection, copy: dict[str, Any],
              view: Feed, shape: Shape) -> dict[str, Any]:
    """Compare the copy as it is now with the granted view of the version it holds
    (``view``: its table never changes), count and hash computed the same way on both
    sides; the view's figures go into the target's metadata row (the department can
    check its copy against them), the finding into ``fep_copy``."""
    vq, vparams = view.query(raw_geometry=True)
    view_count, view_hash = tgt.content(conn, sql.SQL("({}) f").format(vq), _outputs(view),
                                        vparams)
    schema, table = copy["target_schema"], copy["target_table"]
    tgt.write_meta(target, schema, table, row_count=view_count, content_hash=view_hash)
    got = tgt.copy_content(target, schema, table, shape)
    count, digest = got if got is not None else (0, None)
    if got is not None and (count, digest) == (view_count, view_hash):
        status, detail = "in_sync", None
    else:
        status = "drift"
        detail = bilingual(
            f"副本 {count} 行，授权视图 {view_count} 行；内容哈希"
            f"{'一致' if digest == view_hash else '不一致'}；下次同步将全量重建",
            f"the copy has {count} rows, the granted view {view_count}; the content hash "
            f"{'matches' if digest == view_hash else 'differs'}; the next sync rebuilds it "
            "in full")
    conn.execute(
        "UPDATE fep_copy SET synced_version = %s, synced_at = now(), row_count = %s, "
        "content_hash = %s, status = %s, detail = %s, last_error = NULL, "
        "reconciled_at = now() WHERE id = %s",
        (view.plan.to_version, count, digest, status, detail, copy["id"]))
    return {"status": status, "row_count": count, "content_hash": digest,
            "view_row_count": view_count, "view_hash": view_hash, "detail": detail}


def cli_caller() -> Caller:
    """The bureau at the shell (``jmgeo fep …``)."""
    return Caller(kind="admin", dept_code="wxtc", name=f"cli:{getpass.getuser()}@wxtc")
