"""Integration (整合): several source tables → one golden record per key, published.

One transaction per run; any refusal leaves nothing published. The steps, set-based in
PostgreSQL (a million persons from three sources is ~20 million values: nothing of that
passes through Python but the distinct raw keys):

1. **check** the configuration: every source resource published, its key column and
   every mapped column present, every mapped attribute with an authority;
2. **keys**: the distinct raw keys are normalised and validated in Python with
   ``layers.identifiers`` (stdnum) and copied back; invalid ones go to the quarantine
   (``baselib_quarantine``) with the reason and the record, never dropped, never merged —
   unless a person (or a confident match, ``baselib.review``) resolved that raw key;
3. **duplicates**: two rows of one source with the same normalised key (a 15- and an
   18-digit spelling, a full-width copy) refuse the run, naming the rows;
4. **values**: each mapped column of each row becomes an observation (key, attribute,
   value, source); the **golden record** takes the authority's value, and where the
   authority is silent the newest source's (by its version's load time) — with its source;
5. **history**: ``baselib_value`` keeps every value with provenance; a changed value
   closes the old row's valid time and record time and opens a new row;
6. **cross-check**: every copy that disagrees with the authority → a verification ticket
   (``baselib.tickets``); a ticket whose disagreement is gone is closed;
7. **publish** the golden records as version N of the library's table resource
   (``layers.registry.publish``), addresses located in the framework first (town and
   county codes: ``baselib.spatial_link``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from baselib import spatial_link, tickets
from baselib.errors import BaselibError
from baselib.libraries import OWNER, Library, authorities, check_source, library, sources
from layers import audit, identifiers, policy, registry

BATCH = 50_000
SYSTEM = "system:baselib-integrate"


def mask_key(key: str | None) -> str:
    """A key as an error message may show it (the run's messages reach logs)."""
    key = key or ""
    return key[:4] + "*" * max(len(key) - 8, 0) + key[-4:] if len(key) > 8 else "*" * len(key)


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _check_config(conn, lib: Library) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    srcs = sources(conn, lib.name)
    if not srcs:
        raise BaselibError(f"基础库 {lib.name} 没有来源", f"{lib.name} has no sources",
                           f"jmgeo baselib source add {lib.name} RESOURCE --key COLUMN "
                           "--map attribute=column")
    auth = authorities(conn, lib.name)
    for s in srcs:
        check_source(conn, lib, s["resource"], s["key_column"], s["mapping"])
        if s["kind"] != "table":
            raise BaselibError(f"来源 {s['resource']} 不是数据表资源", f"source "
                               f"{s['resource']!r} is a {s['kind']} resource, not a table",
                               "load the source with --kind table")
        orphan = [a for a in s["mapping"] if a not in auth]
        if orphan:
            raise BaselibError(
                f"属性 {', '.join(orphan)} 未声明权威部门（来源 {s['resource']}）",
                f"no authority declared for {', '.join(orphan)} (mapped by {s['resource']})",
                f"jmgeo baselib authority set {lib.name} {orphan[0]} --dept DEPT --basis TEXT")
    return srcs, auth


def _temp_tables(conn, srcs: list[dict[str, Any]], auth: dict[str, Any]) -> None:
    conn.execute("CREATE TEMP TABLE _bl_src (src int PRIMARY KEY, resource text, dept text, "
                 "version int, loaded_at timestamptz, label text) ON COMMIT DROP")
    for i, s in enumerate(srcs):
        conn.execute("INSERT INTO _bl_src VALUES (%s, %s, %s, %s, %s, %s)",
                     (i, s["resource"], s["dept"], s["version"], s["loaded_at"],
                      f"{s['dept']}:{s['resource']}@v{s['version']}"))
    conn.execute("CREATE TEMP TABLE _bl_auth (attribute text PRIMARY KEY, dept text) "
                 "ON COMMIT DROP")
    for attr, a in auth.items():
        conn.execute("INSERT INTO _bl_auth VALUES (%s, %s)", (attr, a["dept"]))
    conn.execute("CREATE TEMP TABLE _bl_raw (src int, fid bigint, raw text) ON COMMIT DROP")
    for i, s in enumerate(srcs):
        conn.execute(sql.SQL("INSERT INTO _bl_raw SELECT %s, fid, coalesce(btrim({k}::text), "
                             "'') FROM {t}").format(
            k=sql.Identifier(s["key_column"]),
            t=sql.Identifier(*s["table_name"].split("."))), (i,))


def _check_keys(conn, lib: Library) -> dict[str, int]:
    """Distinct raw keys → normalised key / verdict (``_bl_keymap``), in batches."""
    conn.execute("CREATE TEMP TABLE _bl_keymap (raw text PRIMARY KEY, key text, ok boolean, "
                 "reason text, warned boolean, resolved boolean DEFAULT false) ON COMMIT DROP")
    counts = {"distinct": 0, "invalid": 0, "warnings": 0}
    with conn.cursor(name="_bl_raw_keys") as cur:
        cur.itersize = BATCH
        cur.execute("SELECT DISTINCT raw FROM _bl_raw")
        while rows := cur.fetchmany(BATCH):
            out = []
            for (raw,) in rows:
                v = identifiers.check(lib.key_kind, raw)
                out.append((raw, v.value if v.ok else None, v.ok, v.reason, bool(v.warnings)))
                counts["invalid"] += not v.ok
                counts["warnings"] += bool(v.warnings)
            counts["distinct"] += len(rows)
            with conn.cursor().copy("COPY _bl_keymap (raw, key, ok, reason, warned) FROM "
                                    "STDIN") as copy:
                for r in out:
                    copy.write_row(r)
    resolved = conn.execute(
        "UPDATE _bl_keymap m SET key = q.resolved_key, ok = true, resolved = true FROM "
        "baselib_quarantine q WHERE q.library = %s AND q.status = 'applied' AND "
        "q.raw_key = m.raw AND NOT m.ok", (lib.name,)).rowcount
    counts["resolved_by_review"] = resolved
    conn.execute("CREATE TEMP TABLE _bl_keys ON COMMIT DROP AS SELECT r.src, r.fid, m.key "
                 "FROM _bl_raw r JOIN _bl_keymap m USING (raw) WHERE m.ok")
    conn.execute("CREATE INDEX ON _bl_keys (src, fid)")
    return counts


def _refuse_duplicates(conn, lib: Library) -> None:
    dups = _q(conn, "SELECT s.resource, k.key, array_agg(k.fid ORDER BY k.fid) AS fids FROM "
                    "_bl_keys k JOIN _bl_src s USING (src) GROUP BY s.resource, k.key HAVING "
                    "count(*) > 1 ORDER BY s.resource, min(k.fid) LIMIT 5").fetchall()
    if not dups:
        return
    where = "; ".join(f"{d['resource']} 第 {', '.join(map(str, d['fids'][:5]))} 行 "
                      f"({lib.key_label} {mask_key(d['key'])})" for d in dups)
    raise BaselibError(f"同一来源中{lib.key_label}重复：{where}",
                       f"duplicate {lib.key} in one source after normalisation (15/18 digits, "
                       f"full-width): {where.replace('第 ', 'rows (fid) ').replace(' 行', '')}",
                       "keep one row per key in the source and load it again; nothing "
                       "was published", code="duplicate_keys")


def _quarantine(conn, lib: Library, srcs: list[dict[str, Any]], run_id: int) -> int:
    """Invalid keys → ``baselib_quarantine`` (pending rows are replaced each run; decided
    ones stay). The record is kept whole (the mapped columns) for review."""
    _q(conn, "DELETE FROM baselib_quarantine WHERE library = %s AND status = 'pending'",
       (lib.name,))
    n = 0
    for i, s in enumerate(srcs):
        pairs = [sql.SQL("{}, t.{}::text").format(sql.Literal(a), sql.Identifier(c))
                 for a, c in s["mapping"].items()]
        n += conn.execute(sql.SQL(
            "INSERT INTO baselib_quarantine (library, resource, resource_version, fid, "
            "raw_key, reason, record, run_id) SELECT %s, %s, %s, r.fid, r.raw, "
            "coalesce(m.reason, 'invalid key'), jsonb_strip_nulls(jsonb_build_object({p})), "
            "%s FROM _bl_raw r JOIN _bl_keymap m USING (raw) JOIN {t} t ON t.fid = r.fid "
            "WHERE r.src = %s AND NOT m.ok AND NOT EXISTS (SELECT 1 FROM baselib_quarantine q "
            "WHERE q.library = %s AND q.status = 'rejected' AND q.resource = %s AND "
            "q.raw_key = r.raw)").format(
                p=sql.SQL(", ").join(pairs), t=sql.Identifier(*s["table_name"].split("."))),
            (lib.name, s["resource"], s["version"], run_id, i, lib.name, s["resource"])
        ).rowcount
    return n


def _observations(conn, srcs: list[dict[str, Any]]) -> int:
    conn.execute("CREATE TEMP TABLE _bl_obs (key text, attribute text, value text, src int) "
                 "ON COMMIT DROP")
    n = 0
    for i, s in enumerate(srcs):
        values = [sql.SQL("({}, NULLIF(btrim(t.{}::text), ''))").format(
            sql.Literal(a), sql.Identifier(c)) for a, c in s["mapping"].items()]
        n += conn.execute(sql.SQL(
            "INSERT INTO _bl_obs SELECT k.key, m.attribute, m.value, %s FROM _bl_keys k "
            "JOIN {t} t ON t.fid = k.fid CROSS JOIN LATERAL (VALUES {v}) m(attribute, value) "
            "WHERE k.src = %s AND m.value IS NOT NULL").format(
                t=sql.Identifier(*s["table_name"].split(".")), v=sql.SQL(", ").join(values)),
            (i, i)).rowcount
    conn.execute("CREATE INDEX ON _bl_obs (key, attribute)")
    conn.execute("ANALYZE _bl_obs")
    return n


def _golden(conn) -> int:
    """The authority's value, else the newest source's (``_bl_golden``), and every copy
    that disagrees with the authority (``_bl_dis``). Values compare without case and
    white space (a copy in full-width or with spaces is the same value)."""
    conn.execute(
        "CREATE TEMP TABLE _bl_golden ON COMMIT DROP AS SELECT DISTINCT ON (o.key, "
        "o.attribute) o.key, o.attribute, o.value, o.src, (s.dept = a.dept) AS authoritative "
        "FROM _bl_obs o JOIN _bl_src s USING (src) JOIN _bl_auth a USING (attribute) "
        "ORDER BY o.key, o.attribute, (s.dept = a.dept) DESC, s.loaded_at DESC, o.src")
    conn.execute("CREATE INDEX ON _bl_golden (key, attribute)")
    norm = "regexp_replace(lower(normalize({}, NFKC)), '\\s', '', 'g')"
    conn.execute(
        "CREATE TEMP TABLE _bl_dis ON COMMIT DROP AS SELECT o.key, o.attribute, g.src AS "
        "auth_src, g.value AS auth_value, o.src AS copy_src, o.value AS copy_value FROM "
        "_bl_obs o JOIN _bl_golden g USING (key, attribute) JOIN _bl_src s ON s.src = o.src "
        "JOIN _bl_auth a ON a.attribute = o.attribute WHERE g.authoritative AND "
        f"s.dept <> a.dept AND {norm.format('o.value')} <> {norm.format('g.value')}")
    return conn.execute("SELECT count(*) FROM _bl_dis").fetchone()[0]


def _history(conn, lib: Library, run_id: int, now: datetime) -> dict[str, int]:
    closed = conn.execute(
        "UPDATE baselib_value v SET superseded_at = %s, valid_to = coalesce(v.valid_to, "
        "s.loaded_at) FROM _bl_src s WHERE v.library = %s AND v.superseded_at IS NULL AND "
        "v.resource = s.resource AND NOT EXISTS (SELECT 1 FROM _bl_obs o WHERE o.src = s.src "
        "AND o.key = v.key AND o.attribute = v.attribute AND o.value = v.value)",
        (now, lib.name)).rowcount
    added = conn.execute(
        "INSERT INTO baselib_value (library, key, attribute, value, dept_code, resource, "
        "resource_version, loaded_at, valid_from, recorded_at, run_id) SELECT %s, o.key, "
        "o.attribute, o.value, s.dept, s.resource, s.version, s.loaded_at, s.loaded_at, %s, "
        "%s FROM _bl_obs o JOIN _bl_src s USING (src) WHERE NOT EXISTS (SELECT 1 FROM "
        "baselib_value v WHERE v.library = %s AND v.resource = s.resource AND "
        "v.attribute = o.attribute AND v.key = o.key AND v.superseded_at IS NULL)",
        (lib.name, now, run_id, lib.name)).rowcount
    return {"values_added": added, "values_superseded": closed}


def _publish(conn, lib: Library, version: int, by: str | None,
             report: dict[str, Any]) -> tuple[dict[str, Any], int]:
    cols = [registry.Column(lib.key, "text", lib.key_label)]
    cols += [registry.Column(a, "text", label) for a, label in lib.attributes.items()]
    cols += [registry.Column(a, "text", label) for a, label in lib.derived.items()]
    cols.append(registry.Column("sources", "jsonb", "来源（属性 → 部门:资源@版本）"))
    table = registry.create_data_table(conn, lib.name, version, None, cols, title=lib.title)
    pivot = [sql.SQL("max(g.value) FILTER (WHERE g.attribute = {})").format(sql.Literal(a))
             for a in lib.attributes]
    names = [sql.Identifier(c) for c in [lib.key, *lib.attributes]]
    rows = conn.execute(sql.SQL(
        "INSERT INTO {t} (fid, {n}, sources) SELECT row_number() OVER (ORDER BY k.key), k.key, "
        "{p}, coalesce(jsonb_object_agg(g.attribute, s.label) FILTER (WHERE g.attribute IS "
        "NOT NULL), '{{}}'::jsonb) FROM (SELECT DISTINCT key FROM _bl_keys) k LEFT JOIN "
        "_bl_golden g ON g.key = k.key LEFT JOIN _bl_src s ON s.src = g.src GROUP BY k.key"
    ).format(t=sql.Identifier(*table.split(".")), n=sql.SQL(", ").join(names),
             p=sql.SQL(", ").join(pivot))).rowcount
    if "town_code" in lib.derived:
        report["located"] = spatial_link.locate_addresses(conn, table)
    registry.index_key(conn, table, lib.key)
    registry.finish_data_table(conn, table)
    labels = {lib.key: lib.key_label, **lib.attributes, **lib.derived}
    return registry.publish(
        conn, layer=lib.name, version=version, table_name=table, feature_count=rows,
        report=report, source_name="baselib:integrate", loaded_by=by or SYSTEM,
        title=lib.title, dept=OWNER, theme=lib.theme, sharing_class="unconditional",
        update_cycle="daily", kind="table", key_field=lib.key,
        description=f"{lib.title}：一数一源、多元校核（{', '.join(lib.attributes.values())}）",
        sensitive_fields=lib.sensitive, field_labels=labels), rows


def integrate(conn, lib_name: str, *, by: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Integrate the library's sources into its next version (see the module docstring);
    returns the run's report. Raises :class:`BaselibError` — nothing published — on a bad
    configuration or duplicate keys."""
    lib = library(lib_name)
    now = now or datetime.now(UTC)
    t0 = time.monotonic()
    with conn.transaction():
        registry.lock_layer(conn, lib.name)
        # sorts and hashes of millions of values in memory rather than temp files
        conn.execute("SET LOCAL work_mem = '128MB'")
        srcs, auth = _check_config(conn, lib)
        version = registry.next_version(conn, lib.name)
        run_id = _q(conn, "INSERT INTO baselib_run (library, version, started_at, run_by) "
                          "VALUES (%s, %s, %s, %s) RETURNING id",
                    (lib.name, version, now, by)).fetchone()["id"]
        _temp_tables(conn, srcs, auth)
        keys = _check_keys(conn, lib)
        _refuse_duplicates(conn, lib)
        quarantined = _quarantine(conn, lib, srcs, run_id)
        observed = _observations(conn, srcs)
        disagreements = _golden(conn)
        history = _history(conn, lib, run_id, now)
        ticket_counts = tickets.sync(conn, lib.name, run_id, now)
        report: dict[str, Any] = {
            "library": lib.name, "version": version, "run": run_id,
            "sources": [{"resource": s["resource"], "dept": s["dept"],
                         "version": s["version"]} for s in srcs],
            "keys": keys, "quarantined": quarantined, "values": observed,
            "disagreements": disagreements, **history, "tickets": ticket_counts}
        report["records"] = _publish(conn, lib, version, by, report)[1]
        report["seconds"] = round(time.monotonic() - t0, 2)
        _q(conn, "UPDATE baselib_run SET finished_at = now(), report = %s WHERE id = %s",
           (Jsonb(report), run_id))
        audit.record(conn, action="baselib.integrate", caller=policy.system("baselib"),
                     layer=lib.name, request={"run": run_id, "version": version, "by": by,
                                              "tickets": ticket_counts},
                     rows=report["records"])
    return report


def value_history(conn, lib_name: str, key: str) -> list[dict[str, Any]]:
    """Every value ever given for ``key`` with provenance and both times (newest first) —
    for the bureau (owner of the library): the CLI, never an unmasked way out."""
    lib = library(lib_name)
    v = identifiers.check(lib.key_kind, key)
    return _q(conn, "SELECT attribute, value, dept_code, resource, resource_version, "
                    "loaded_at, valid_from, valid_to, recorded_at, superseded_at FROM "
                    "baselib_value WHERE library = %s AND key = %s ORDER BY attribute, "
                    "recorded_at DESC, id DESC", (lib.name, v.value or key)).fetchall()
