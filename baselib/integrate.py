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
4. **records**: one wide row per key (``baselib.golden``: the row id in each source and
   every mapped value); the **golden record** takes the authority's value, and where the
   authority is silent the newest source's (by its version's load time) — with its source
   — a ranking of the sources per attribute, so a ``coalesce`` over columns;
5. **history**: ``baselib_record`` keeps every source's record (its values) with
   provenance; a changed record closes the old row's valid time and record time and
   opens a new row; an unchanged one writes nothing;
6. **cross-check**: every copy that disagrees with the authority → a verification ticket
   (``baselib.tickets``); a ticket whose disagreement is gone is closed;
7. **publish** the golden records as version N of the library's table resource
   (``layers.registry.publish``), addresses located in the framework first (town and
   county codes: ``baselib.spatial_link``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from baselib import golden, spatial_link, tickets
from baselib.errors import BaselibError
from baselib.libraries import OWNER, Library, authorities, check_source, library, sources
from layers import audit, identifiers, policy, record_log, registry

BATCH = 50_000
SYSTEM = "system:baselib-integrate"


STEPS = {"keys": "校验标识 / check keys", "quarantine": "隔离 / quarantine",
         "records": "逐键记录 / records per key", "golden": "校核 / cross-check",
         "history": "历史 / value history", "tickets": "校核工单 / tickets",
         "publish": "发布 / publish"}


class StepClock:
    """Seconds per step of a run (the report's ``steps``), told as it goes: a million
    persons take minutes, and the one running it should see where they are."""

    def __init__(self, tell: Callable[[str], None] | None = None) -> None:
        self.steps: dict[str, float] = {}
        self.tell = tell

    @contextmanager
    def step(self, name: str):
        t0 = time.monotonic()
        if self.tell:
            self.tell(f"整合 / integrate: {STEPS[name]} …")
        yield
        self.steps[name] = round(time.monotonic() - t0, 2)
        if self.tell:
            self.tell(f"整合 / integrate: {STEPS[name]} {self.steps[name]:.1f} s")


def tell_stderr(line: str) -> None:
    """Progress for a terminal (stderr: stdout carries the report)."""
    print(line, file=sys.stderr, flush=True)


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


def _temp_tables(conn, srcs: list[dict[str, Any]]) -> None:
    """``_bl_src`` (the sources, numbered: what the tickets join) and ``_bl_raw`` (every
    source row's raw key)."""
    conn.execute("CREATE TEMP TABLE _bl_src (src int PRIMARY KEY, resource text, dept text, "
                 "version int) ON COMMIT DROP")
    for i, s in enumerate(srcs):
        conn.execute("INSERT INTO _bl_src VALUES (%s, %s, %s, %s)",
                     (i, s["resource"], s["dept"], s["version"]))
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
    return counts


def _refuse_duplicates(conn, lib: Library) -> None:
    dups = _q(conn, "SELECT s.resource, k.key, array_agg(k.fid ORDER BY k.fid) AS fids FROM "
                    "_bl_keys k JOIN _bl_src s USING (src) WHERE k.key IN (SELECT key FROM "
                    "_bl_keyfid WHERE dup) GROUP BY s.resource, k.key HAVING "
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


def _publish(conn, lib: Library, version: int, by: str | None, report: dict[str, Any],
             srcs: list[dict[str, Any]], ranks: list[golden.Ranking]
             ) -> tuple[dict[str, Any], int]:
    cols = [registry.Column(lib.key, "text", lib.key_label)]
    cols += [registry.Column(a, "text", label) for a, label in lib.attributes.items()]
    cols += [registry.Column(a, "text", label) for a, label in lib.derived.items()]
    cols.append(registry.Column("sources", "jsonb", "来源（属性 → 部门:资源@版本）"))
    table = registry.create_data_table(conn, lib.name, version, None, cols, title=lib.title)
    values, origin = golden.golden_select(srcs, ranks, list(lib.attributes))
    names = [sql.Identifier(c) for c in [lib.key, *lib.attributes]]
    located = "town_code" in lib.derived
    join, codes = sql.SQL(""), []
    if located:  # the register-form pass of the spatial link as the rows are written
        spatial_link.prepare_towns(conn)
        join, town, county = spatial_link.register_form_join(sql.SQL("g.address"))
        names += [sql.Identifier("town_code"), sql.Identifier("county_code")]
        codes = [town, county]
    golden_cols = sql.SQL(", ").join(sql.SQL("{} AS {}").format(v, sql.Identifier(a))
                                     for v, a in zip(values, lib.attributes, strict=True))
    rows = conn.execute(sql.SQL(
        "INSERT INTO {t} (fid, {n}, sources) SELECT g.fid, {out}, g._sources FROM (SELECT "
        "fid, key, {g}, {o} AS _sources FROM _bl_rec) g {j}"
    ).format(t=sql.Identifier(*table.split(".")), n=sql.SQL(", ").join(names),
             g=golden_cols, o=origin, j=join, out=sql.SQL(", ").join(
                 [sql.SQL("g.{}").format(sql.Identifier(c)) for c in ["key", *lib.attributes]]
                 + codes))).rowcount
    if located:
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


def _roomy_temp_buffers(conn) -> None:
    """A million-row temp table in 8 MB of local buffers spills page by page; PostgreSQL
    lets a session raise ``temp_buffers`` only before its first temp table, so this is
    best effort (a connection that already used one keeps its size)."""
    try:
        with conn.transaction():
            conn.execute("SET temp_buffers = '256MB'")
    except psycopg.errors.InvalidParameterValue:
        pass


def integrate(conn, lib_name: str, *, by: str | None = None, now: datetime | None = None,
              tell: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Integrate the library's sources into its next version (see the module docstring);
    returns the run's report (with seconds per step). Raises :class:`BaselibError` —
    nothing published — on a bad configuration or duplicate keys. ``tell`` receives a
    progress line at each step."""
    lib = library(lib_name)
    clock = StepClock(tell)
    now = now or datetime.now(UTC)
    t0 = time.monotonic()
    _roomy_temp_buffers(conn)
    with conn.transaction():
        registry.lock_layer(conn, lib.name)
        # hashes of millions of rows in memory rather than temp files
        conn.execute("SET LOCAL work_mem = '256MB'")
        srcs, auth = _check_config(conn, lib)
        version = registry.next_version(conn, lib.name)
        run_id = _q(conn, "INSERT INTO baselib_run (library, version, started_at, run_by) "
                          "VALUES (%s, %s, %s, %s) RETURNING id",
                    (lib.name, version, now, by)).fetchone()["id"]
        with clock.step("keys"):
            _temp_tables(conn, srcs)
            keys = _check_keys(conn, lib)
            golden.group_keys(conn, len(srcs))
            _refuse_duplicates(conn, lib)
        with clock.step("quarantine"):
            quarantined = _quarantine(conn, lib, srcs, run_id)
        ranks = golden.rankings(srcs, auth, list(lib.attributes))
        with clock.step("records"):
            golden.build_records(conn, srcs)
            observed = golden.count_values(conn, srcs)
        with clock.step("golden"):
            disagreements = golden.disagreements(conn, ranks)
        with clock.step("history"):
            history = golden.record_history(
                conn, lib.name, srcs, run_id, now,
                golden.unchanged_sources(conn, lib.name, srcs, run_id))
        with clock.step("tickets"):
            golden.golden_for_tickets(conn, lib.name, ranks)
            ticket_counts = tickets.sync(conn, lib.name, run_id, now)
        report: dict[str, Any] = {
            "library": lib.name, "version": version, "run": run_id,
            "sources": [{"resource": s["resource"], "dept": s["dept"],
                         "version": s["version"], "mapping": s["mapping"]} for s in srcs],
            "keys": keys, "quarantined": quarantined, "values": observed,
            "disagreements": disagreements, **history, "tickets": ticket_counts}
        with clock.step("publish"):
            report["records"] = _publish(conn, lib, version, by, report, srcs, ranks)[1]
            record_log.mark(conn, lib.name)  # who looked at this person, on every way out
        report["steps"] = clock.steps
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
    for the bureau (owner of the library): the CLI, never an unmasked way out.

    History is stored per source record (``baselib_record``); a value's life is the run
    of consecutive records of one source that gave it (gaps and islands), so an
    attribute that did not change shows once however often its neighbours did."""
    lib = library(lib_name)
    v = identifiers.check(lib.key_kind, key)
    return _q(conn, """
        WITH vals AS (
            SELECT r.id, r.resource, a.attribute, r.record ->> a.attribute AS value,
                   r.dept_code, r.resource_version, r.loaded_at, r.valid_from, r.valid_to,
                   r.recorded_at, r.superseded_at
            FROM baselib_record r CROSS JOIN unnest(%s::text[]) a(attribute)
            WHERE r.library = %s AND r.key = %s),
        runs AS (
            SELECT *, sum(changed) OVER (PARTITION BY resource, attribute ORDER BY
                       recorded_at, id) AS run
            FROM (SELECT *, CASE WHEN value IS NOT DISTINCT FROM lag(value) OVER (
                         PARTITION BY resource, attribute ORDER BY recorded_at, id)
                         THEN 0 ELSE 1 END AS changed FROM vals) x)
        SELECT attribute, value, (array_agg(dept_code ORDER BY recorded_at, id))[1]
               AS dept_code, resource, min(resource_version) AS resource_version,
               min(loaded_at) AS loaded_at, min(valid_from) AS valid_from,
               (array_agg(valid_to ORDER BY recorded_at DESC, id DESC))[1] AS valid_to,
               min(recorded_at) AS recorded_at,
               (array_agg(superseded_at ORDER BY recorded_at DESC, id DESC))[1]
               AS superseded_at
        FROM runs WHERE value IS NOT NULL GROUP BY resource, attribute, run, value
        ORDER BY attribute, min(recorded_at) DESC, resource""",
              (list(lib.attributes), lib.name, v.value or key)).fetchall()
