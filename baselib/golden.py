"""The golden record (权威值), its disagreements and its history — built from one wide row
per key.

Survivorship is a rule over *sources*, not over values: for an attribute, the sources
that map it are ranked once per run (the authority's department first, then the newest
load, then the order the sources were added), so the golden value is the first non-empty
value in that order — a ``coalesce`` over columns. That lets the whole integration work
on one row per key (``_bl_rec``: the key, the row id in each source, every mapped value)
instead of one row per value: a million persons from three sources are a million wide
rows, not twelve million narrow ones to sort, index and compare (measured: the narrow
form spent most of a 12-minute run sorting and writing them).

The same ranking gives the authority's value (the first non-empty value of the
authority's own sources) and every copy to cross-check against it; the history keeps one
row per key and source (``baselib_record``: the mapped values as a JSON object), written
only when the source's record changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

# values compare without case and white space: a copy in full-width or with spaces is
# the same value
NORMALISED = "regexp_replace(lower(normalize({}, NFKC)), '\\s', '', 'g')"


@dataclass(frozen=True)
class Ranking:
    """For one attribute: the sources that map it, best first, and the authority's."""

    attribute: str
    order: tuple[int, ...]  # source indexes, the survivorship order
    authority: tuple[int, ...]  # the authority department's own sources, in that order

    def copies(self) -> tuple[int, ...]:
        return tuple(i for i in self.order if i not in self.authority)


def source_label(s: dict[str, Any]) -> str:
    """``dept:resource@vN`` — how the golden record names the source of a value."""
    return f"{s['dept']}:{s['resource']}@v{s['version']}"


def value_column(src: int, attribute: str) -> sql.Identifier:
    """The column of ``_bl_rec`` that holds source ``src``'s value of ``attribute``."""
    return sql.Identifier(f"s{src}_{attribute}")


def fid_column(src: int) -> sql.Identifier:
    return sql.Identifier(f"f{src}")


def rankings(srcs: list[dict[str, Any]], auth: dict[str, Any],
             attributes: list[str]) -> list[Ranking]:
    """The survivorship order of every mapped attribute (in the library's order)."""
    out = []
    for attr in attributes:
        mapped = [i for i, s in enumerate(srcs) if attr in s["mapping"]]
        if not mapped:
            continue
        dept = auth[attr]["dept"]
        order = sorted(mapped, key=lambda i: (srcs[i]["dept"] != dept,
                                              -srcs[i]["loaded_at"].timestamp(), i))
        out.append(Ranking(attr, tuple(order),
                           tuple(i for i in order if srcs[i]["dept"] == dept)))
    return out


def first_value(order: tuple[int, ...], attribute: str) -> sql.Composable:
    """The first non-empty value of ``attribute`` among the sources in ``order``."""
    if not order:
        return sql.SQL("NULL::text")
    return sql.SQL("coalesce({})").format(
        sql.SQL(", ").join(value_column(i, attribute) for i in order))


def first_source(order: tuple[int, ...], attribute: str,
                 what: list[sql.Composable]) -> sql.Composable:
    """``what[i]`` of the source whose value :func:`first_value` took (NULL if none)."""
    if not order:
        return sql.SQL("NULL")
    return sql.SQL("CASE {} END").format(sql.SQL(" ").join(
        sql.SQL("WHEN {} IS NOT NULL THEN {}").format(value_column(i, attribute), what[i])
        for i in order))


def group_keys(conn, n_sources: int) -> None:
    """``_bl_keyfid``: one row per valid key — its row id in the golden table (``fid``,
    in key order), its row id in each source, and whether a source has it twice
    (``dup``: refused by the caller, which names the rows)."""
    fids = [sql.SQL("max(fid) FILTER (WHERE src = {}) AS {}").format(sql.Literal(i),
                                                                      fid_column(i))
            for i in range(n_sources)]
    dup = sql.SQL(" OR ").join(sql.SQL("count(*) FILTER (WHERE src = {}) > 1").format(
        sql.Literal(i)) for i in range(n_sources))
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE _bl_keyfid ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY "
        "key) AS fid, key, {f}, {d} AS dup FROM _bl_keys GROUP BY key").format(
            f=sql.SQL(", ").join(fids), d=dup))


def build_records(conn, srcs: list[dict[str, Any]]) -> int:
    """``_bl_rec``: for each key of ``_bl_keyfid``, each mapped value of each source
    (trimmed; empty is NULL). Returns the number of keys."""
    values, joins = [], []
    for i, s in enumerate(srcs):
        alias = sql.Identifier(f"t{i}")
        joins.append(sql.SQL("LEFT JOIN {t} {a} ON {a}.fid = k.{f}").format(
            t=sql.Identifier(*s["table_name"].split(".")), a=alias, f=fid_column(i)))
        values += [sql.SQL("NULLIF(btrim({a}.{c}::text), '') AS {v}").format(
            a=alias, c=sql.Identifier(c), v=value_column(i, attr))
            for attr, c in s["mapping"].items()]
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE _bl_rec ON COMMIT DROP AS SELECT k.fid, k.key, {f}, {v} FROM "
        "_bl_keyfid k {j}").format(
            f=sql.SQL(", ").join(sql.SQL("k.{}").format(fid_column(i))
                                 for i in range(len(srcs))),
            v=sql.SQL(", ").join(values), j=sql.SQL(" ").join(joins)))
    conn.execute("ANALYZE _bl_rec")
    return conn.execute("SELECT count(*) FROM _bl_rec").fetchone()[0]


def count_values(conn, srcs: list[dict[str, Any]]) -> int:
    """How many non-empty values the sources gave (the report's ``values``)."""
    counts = [sql.SQL("count({})").format(value_column(i, a))
              for i, s in enumerate(srcs) for a in s["mapping"]]
    if not counts:
        return 0
    return conn.execute(sql.SQL("SELECT {} FROM _bl_rec").format(
        sql.SQL(" + ").join(counts))).fetchone()[0]


def disagreements(conn, ranks: list[Ranking]) -> int:
    """``_bl_dis``: every copy whose non-empty value differs (normalised) from the
    authority's non-empty value — one scan of ``_bl_rec``."""
    pairs = []
    for r in ranks:
        if not r.authority:
            continue
        auth_src = first_source(r.authority, r.attribute,
                                [sql.Literal(i) for i in range(max(r.order) + 1)])
        for j in r.copies():
            pairs.append(sql.SQL("({}, {}, {}, {}, {})").format(
                sql.Literal(r.attribute), auth_src, first_value(r.authority, r.attribute),
                sql.Literal(j), value_column(j, r.attribute)))
    conn.execute("CREATE TEMP TABLE _bl_dis (key text, attribute text, auth_src int, "
                 "auth_value text, copy_src int, copy_value text) ON COMMIT DROP")
    if pairs:
        conn.execute(sql.SQL(
            "INSERT INTO _bl_dis SELECT r.key, d.* FROM _bl_rec r CROSS JOIN LATERAL "
            "(VALUES {}) d(attribute, auth_src, auth_value, copy_src, copy_value) WHERE "
            "d.copy_value <> d.auth_value AND {} <> {}").format(
                sql.SQL(", ").join(pairs), sql.SQL(NORMALISED.format("d.copy_value")),
                sql.SQL(NORMALISED.format("d.auth_value"))))
    conn.execute("ANALYZE _bl_dis")
    return conn.execute("SELECT count(*) FROM _bl_dis").fetchone()[0]


def golden_for_tickets(conn, library: str, ranks: list[Ranking]) -> None:
    """``_bl_golden`` (key, attribute, value) for the keys with a live ticket only — what
    closing a ticket compares with (``baselib.tickets.sync``)."""
    conn.execute("CREATE TEMP TABLE _bl_golden (key text, attribute text, value text) "
                 "ON COMMIT DROP")
    if ranks:
        conn.execute(sql.SQL(
            "INSERT INTO _bl_golden SELECT r.key, g.attribute, g.value FROM _bl_rec r "
            "CROSS JOIN LATERAL (VALUES {}) g(attribute, value) WHERE r.key IN (SELECT "
            "key FROM baselib_ticket WHERE library = %s AND status <> 'closed')").format(
                sql.SQL(", ").join(sql.SQL("({}, {})").format(
                    sql.Literal(r.attribute), first_value(r.order, r.attribute))
                    for r in ranks)), (library,))
    conn.execute("CREATE INDEX ON _bl_golden (key, attribute)")


def golden_select(srcs: list[dict[str, Any]], ranks: list[Ranking],
                  attributes: list[str]) -> tuple[list[sql.Composable], sql.Composable]:
    """The golden value of each attribute (NULL where no source maps it) and the
    ``sources`` object (attribute → ``dept:resource@vN`` of the value taken)."""
    by_attr = {r.attribute: r for r in ranks}
    labels = [sql.Literal(source_label(s)) for s in srcs]
    values = [first_value(by_attr[a].order, a) if a in by_attr else sql.SQL("NULL::text")
              for a in attributes]
    pairs = [sql.SQL("{}, {}").format(sql.Literal(r.attribute),
                                      first_source(r.order, r.attribute, labels))
             for r in ranks]
    origin = sql.SQL("jsonb_strip_nulls(jsonb_build_object({}))").format(
        sql.SQL(", ").join(pairs)) if pairs else sql.SQL("'{}'::jsonb")
    return values, origin


def unchanged_sources(conn, library: str, srcs: list[dict[str, Any]],
                      run_id: int) -> set[int]:
    """The sources whose records cannot have changed since the library's last finished
    run: the same resource version (a version's table never changes) under the same
    mapping, and no quarantined key decided since (a decision adds a key's record)."""
    last = conn.execute(
        "SELECT started_at, report -> 'sources' FROM baselib_run WHERE library = %s AND "
        "finished_at IS NOT NULL AND id <> %s ORDER BY id DESC LIMIT 1",
        (library, run_id)).fetchone()
    if last is None or conn.execute(
            "SELECT 1 FROM baselib_quarantine WHERE library = %s AND decided_at >= %s "
            "LIMIT 1", (library, last[0])).fetchone():
        return set()
    seen = {(p.get("resource"), p.get("version"), json_key(p.get("mapping")))
            for p in last[1] or []}
    return {i for i, s in enumerate(srcs)
            if (s["resource"], s["version"], json_key(s["mapping"])) in seen}


def json_key(mapping: dict[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    return tuple(sorted(mapping.items())) if mapping else None


def record_history(conn, library: str, srcs: list[dict[str, Any]], run_id: int,
                   now, skip: set[int] = frozenset()) -> dict[str, Any]:
    """Per source, compare each key's record (its mapped values) with the live row of
    ``baselib_record``: a changed or vanished record closes the live row (record time
    now, valid time at the new load), a new or changed one opens a row. Unchanged records
    write nothing; a source in ``skip`` (:func:`unchanged_sources`) is not compared at
    all, so a run with nothing changed costs no history work."""
    added = closed = 0
    for i, s in enumerate(srcs):
        if i in skip:
            continue
        obj = sql.SQL("jsonb_strip_nulls(jsonb_build_object({}))").format(
            sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(a), value_column(i, a))
                               for a in s["mapping"]))
        cur = sql.SQL("SELECT key, rec FROM (SELECT key, {o} AS rec FROM _bl_rec WHERE {f} "
                      "IS NOT NULL) x WHERE rec <> '{{}}'::jsonb").format(o=obj,
                                                                          f=fid_column(i))
        params = {"lib": library, "res": s["resource"], "now": now, "run": run_id,
                  "dept": s["dept"], "ver": s["version"], "at": s["loaded_at"]}
        insert = ("INSERT INTO baselib_record (library, key, resource, resource_version, "
                  "dept_code, loaded_at, record, valid_from, recorded_at, run_id) SELECT "
                  "%(lib)s, c.key, %(res)s, %(ver)s, %(dept)s, %(at)s, c.rec, %(at)s, "
                  "%(now)s, %(run)s FROM ({}) c")
        if not conn.execute("SELECT 1 FROM baselib_record WHERE library = %(lib)s AND "
                            "resource = %(res)s LIMIT 1", params).fetchone():
            # a new source: every record is new (in key order: the index fills in order)
            added += conn.execute(sql.SQL(insert + " ORDER BY c.key").format(cur),
                                  params).rowcount
            continue
        conn.execute(sql.SQL("CREATE TEMP TABLE _bl_cur ON COMMIT DROP AS {}").format(cur))
        conn.execute("ANALYZE _bl_cur")
        closed += conn.execute(
            "UPDATE baselib_record v SET superseded_at = %(now)s, valid_to = "
            "coalesce(v.valid_to, %(at)s) FROM (SELECT id, key, record FROM baselib_record "
            "WHERE library = %(lib)s AND resource = %(res)s AND superseded_at IS NULL) l "
            "LEFT JOIN _bl_cur c ON c.key = l.key WHERE v.id = l.id AND c.rec IS DISTINCT "
            "FROM l.record", params).rowcount
        added += conn.execute(sql.SQL(insert + " WHERE NOT EXISTS (SELECT 1 FROM "
                                      "baselib_record v WHERE v.library = %(lib)s AND "
                                      "v.resource = %(res)s AND v.key = c.key AND "
                                      "v.superseded_at IS NULL)").format(
            sql.SQL("SELECT * FROM _bl_cur")), params).rowcount
        conn.execute("DROP TABLE _bl_cur")
    return {"records_added": added, "records_superseded": closed,
            "history_skipped": sorted(srcs[i]["resource"] for i in skip)}
