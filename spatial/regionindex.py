"""A layer version's region index (区划索引): which regions each feature lies in, and its
Gauss-Krüger area or length — the table region statistics group by.

One table per version (``layer_data.<table>__rgn``: fid, region_code, area_m2,
length_m). Each feature is assigned to every region whose subdivided polygon
(``region_part``) its point on surface falls in — counted once per region even where the
point touches two parts of it — and measured in CGCS2000 3-degree Gauss-Krüger, the zone
chosen per feature by that point (DESIGN §4): west of 112.5° E zone 37 (EPSG:4546), else
zone 38 (EPSG:4547), so figures stay right across the zone boundary that cuts 台山 / 开平 /
恩平. Version tables never change, so neither does their index; reloading the region
boundaries drops them all.

Two ways to the same table:

- :class:`LoadIndex` — while a version loads: the loader holds every feature's geometry
  in EPSG:4490 already, so the index is computed from those arrays (GEOS point on surface,
  an STRtree of the parts, PROJ for the two zones, the shoelace sum on the projected
  rings) in a background thread and written in the load's own transaction. The index is
  there the moment the version is: the first statistics call of a new million-feature
  version answers in a fraction of a second instead of waiting for a build of 5–12 s.
- :func:`ensure_region_index` — in PostgreSQL, for versions loaded before, after a
  boundary reload, or when the loader could not (rasters have none). Race-free: one
  builder, the others wait for it.

``tests/test_region_index_load.py`` holds the two equal, row for row.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import tuple_row

from spatial.crs import domain_sql, get_transformer, output_domain

ZONE_SPLIT_LON = 112.5          # west of it Gauss-Krüger zone 37, else zone 38
WEST_SRID, EAST_SRID = 4546, 4547
_GK_PER_FEATURE = (
    f"ST_Transform({{g}}, CASE WHEN ST_X({{pos}}) < {ZONE_SPLIT_LON} THEN {WEST_SRID} "
    f"ELSE {EAST_SRID} END)")
# region boundaries are rebuilt under this lock; a load's index holds it shared until commit
PARTS_LOCK = "jmgeo.region_part"


def region_index_name(table: str) -> tuple[str, str]:
    """(schema, name) of the region index of one layer-version table."""
    schema, name = table.split(".", 1) if "." in table else ("public", table)
    idx = f"{name}__rgn"
    if len(idx) > 63:
        idx = f"{name[:48]}_{hashlib.md5(name.encode()).hexdigest()[:8]}__rgn"
    return schema, idx


def _relation_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    """Whether the table exists, read from ``pg_class`` with this statement's snapshot.

    Not ``to_regclass``: it reads the backend's catalog cache, which keeps a "no such
    relation" entry until the backend next processes invalidations — an advisory lock does
    not make it do so. A session that waited on the builder's lock would still see no
    index, build it again and fail with ``DuplicateTable`` (the first concurrent region
    statistics of a new version answered 500)."""
    return _one(conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
        (schema, name))[0]


def _one(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple:
    """One row as a tuple, whatever row factory the caller's connection has."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchone()


def _finish(conn: psycopg.Connection, ident: sql.Composable) -> None:
    conn.execute(sql.SQL("CREATE INDEX ON {} (region_code, fid)").format(ident))
    conn.execute(sql.SQL("CREATE INDEX ON {} (fid)").format(ident))


def ensure_region_index(conn: psycopg.Connection, table: str) -> sql.Composable:
    """The version's region index, built in PostgreSQL if it is not there yet (once per
    version: the others wait for the one builder and then find it)."""
    schema, idx = region_index_name(table)
    ident = sql.Identifier(schema, idx)
    if _relation_exists(conn, schema, idx):
        return ident
    src_schema, src = table.split(".", 1) if "." in table else ("public", table)
    # clipped to where both zones' transforms succeed (absurd vertices of old loads)
    gk = sql.SQL(_GK_PER_FEATURE).format(g=domain_sql(sql.SQL("t.geom"), WEST_SRID, EAST_SRID),
                                        pos=sql.SQL("t.pos"))
    with conn.transaction():
        # one builder per index; the others wait here and then find it built
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{idx}",))
        if _relation_exists(conn, schema, idx):
            return ident
        # region parts outside, the layer's GIST inside: each part's polygon is tested
        # against the points of the features in its box one after another (PostGIS
        # prepares a geometry it meets repeatedly), and the parts split over parallel
        # workers — 2.5× faster than probing the parts once per feature
        conn.execute("SET LOCAL parallel_setup_cost = 0")
        conn.execute("SET LOCAL parallel_tuple_cost = 0")
        conn.execute("SET LOCAL min_parallel_table_scan_size = 0")
        conn.execute(sql.SQL(
            "CREATE TABLE {idx} AS SELECT DISTINCT ON (t.fid, p.code) t.fid, "
            "p.code AS region_code, "
            "CASE WHEN GeometryType(t.geom) LIKE '%%POLYGON' THEN ST_Area({gk}) END AS area_m2, "
            "CASE WHEN GeometryType(t.geom) LIKE '%%LINESTRING' THEN ST_Length({gk}) END "
            "AS length_m FROM public.region_part p CROSS JOIN LATERAL (SELECT t.fid, t.geom, "
            "ST_PointOnSurface(t.geom) AS pos FROM {src} t WHERE t.geom && p.geom) t "
            "WHERE ST_Intersects(p.geom, t.pos) ORDER BY t.fid, p.code").format(
                idx=ident, gk=gk, src=sql.Identifier(src_schema, src)))
        _finish(conn, ident)
    conn.execute(sql.SQL("ANALYZE {}").format(ident))
    return ident


def _parts_signature(rows: list) -> tuple[int, int, int]:
    ids = [r[0] for r in rows]
    return (len(ids), min(ids, default=0), max(ids, default=0))


def _zones(lon: np.ndarray) -> tuple[tuple[np.ndarray, int], ...]:
    west = lon < ZONE_SPLIT_LON
    return (west, WEST_SRID), (~west, EAST_SRID)


def _measure_geoms(geoms: np.ndarray, lon: np.ndarray, family: str) -> np.ndarray:
    """The general way: each zone's geometries transformed whole, then GEOS measures."""
    out = np.empty(len(geoms))
    for mask, srid in _zones(lon):
        if mask.any():
            tr = get_transformer(4490, srid)
            gk = shapely.transform(geoms[mask], lambda xy, tr=tr: np.column_stack(
                tr.transform(xy[:, 0], xy[:, 1])))
            out[mask] = shapely.area(gk) if family == "polygon" else shapely.length(gk)
    return out


def _flat(geoms: np.ndarray, family: str) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """All coordinates, and the offsets that group them (``shapely.to_ragged_array``'s):
    ring/line ends, then rings per polygon, then parts per Multi. Single lines and
    polygons without holes (most cadastral and network data) have them from the
    coordinate counts alone, at a third of the cost."""
    single = 3 if family == "polygon" else 1
    if (shapely.get_type_id(geoms) == single).all() and (
            family == "line" or not shapely.get_num_interior_rings(geoms).any()):
        ends = np.zeros(len(geoms) + 1, dtype=np.int64)
        np.cumsum(shapely.get_num_coordinates(geoms), out=ends[1:])
        one_each = (np.arange(len(geoms) + 1),) if family == "polygon" else ()
        return shapely.get_coordinates(geoms), (ends, *one_each)
    _, xy, offsets = shapely.to_ragged_array(geoms)
    return xy, offsets


def _domain_box() -> tuple[float, float, float, float]:
    w, e = output_domain(WEST_SRID), output_domain(EAST_SRID)
    return max(w[0], e[0]), max(w[1], e[1]), min(w[2], e[2]), min(w[3], e[3])


def measure_parts(geoms: np.ndarray, lon: np.ndarray, family: str
                  ) -> tuple[np.ndarray, tuple[np.ndarray, ...]] | np.ndarray:
    """What :func:`measure_flat` needs of the geometries — their coordinates and
    offsets — or, for a batch the flat way cannot take (more than one geometry type, a
    vertex outside where both zones' transforms succeed: clipped first, as the SQL build
    does), the measures themselves."""
    box = _domain_box()
    try:
        xy, offsets = _flat(geoms, family)
    except ValueError:                      # more than one geometry type in the batch
        return _measure_geoms(geoms, lon, family)
    if not len(xy) or (xy[:, 0] < box[0]).any() or (xy[:, 1] < box[1]).any() or \
            (xy[:, 0] > box[2]).any() or (xy[:, 1] > box[3]).any():
        return _measure_geoms(shapely.clip_by_rect(geoms, *box), lon, family)
    return xy, offsets


def measure_flat(xy: np.ndarray, offsets: tuple[np.ndarray, ...], lon: np.ndarray,
                 family: str) -> np.ndarray:
    """Area (m², polygons) or length (m, lines) per geometry from its EPSG:4490
    coordinates, in the zone its ``lon`` picks: one PROJ call per zone, then the
    shoelace (or segment) sums — half the cost of rebuilding projected geometries."""
    ends = offsets[0]                       # ring / line boundaries in the coordinates
    feature = ends                          # each geometry's first coordinate, via its parts
    for o in offsets[1:]:
        feature = feature[o]
    x, y = np.empty(len(xy)), np.empty(len(xy))
    for mask, srid in _zones(np.repeat(lon, np.diff(feature))):
        if mask.any():
            x[mask], y[mask] = get_transformer(4490, srid).transform(xy[mask, 0], xy[mask, 1])
    start, last = ends[:-1], ends[1:] - 1   # no segment from one ring's end to the next
    if family == "line":
        seg = np.append(np.hypot(np.diff(x), np.diff(y)), 0.0)
        seg[last] = 0.0
        per_line = np.add.reduceat(seg, start)
        return np.add.reduceat(per_line, offsets[1][:-1]) if len(offsets) > 1 else per_line
    # shoelace per ring about its first vertex (keeps the products small, as GEOS does)
    n = np.diff(ends)
    dx, dy = x - np.repeat(x[start], n), y - np.repeat(y[start], n)
    cross = np.append(dx[:-1] * dy[1:] - dx[1:] * dy[:-1], 0.0)
    cross[last] = 0.0
    ring = np.abs(np.add.reduceat(cross, start)) / 2
    polys = offsets[1]                      # each polygon's rings: shell first, then holes
    shell = np.zeros(len(ring), dtype=bool)
    shell[polys[:-1]] = True
    per_poly = np.add.reduceat(np.where(shell, ring, -ring), polys[:-1])
    return np.add.reduceat(per_poly, offsets[2][:-1]) if len(offsets) > 2 else per_poly


def gauss_kruger_measure(geoms: np.ndarray, lon: np.ndarray, family: str) -> np.ndarray:
    """Area (m², polygons) or length (m, lines) of non-empty EPSG:4490 geometries of one
    family in the Gauss-Krüger zone their ``lon`` (point on surface) picks — what
    ``ST_Area`` / ``ST_Length`` of ``ST_Transform`` give; NaN for points."""
    if family not in ("polygon", "line") or not len(geoms):
        return np.full(len(geoms), np.nan)
    parts = measure_parts(geoms, lon, family)
    return parts if isinstance(parts, np.ndarray) else measure_flat(*parts, lon, family)


class LoadIndex:
    """The region index of a version being loaded, computed beside the load.

    ``put(fids, geoms, family)`` takes each batch of kept features (EPSG:4490 shapely
    geometries) and hands their points and coordinates to a background thread (the
    region lookup, PROJ and the sums: it runs on the other core while the loader reads
    and copies); :meth:`write` creates the table in the
    load's transaction. If the region boundaries changed while the version loaded, it
    writes nothing and the SQL build takes over after publish.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        with conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute("SELECT id, code, ST_AsBinary(geom) FROM public.region_part "
                               "ORDER BY id").fetchall()
        self.signature = _parts_signature(rows)
        self.codes = sorted({r[1] for r in rows})
        code_of = {c: i for i, c in enumerate(self.codes)}
        self.part_code = np.array([code_of[r[1]] for r in rows], dtype=np.int64)
        self.tree = shapely.STRtree(shapely.from_wkb([bytes(r[2]) for r in rows])) \
            if rows else None
        # per region code, in fid order as the batches come: (fids, measures) arrays
        self.rows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.family: str | None = None
        self.error: BaseException | None = None
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.side_conn: psycopg.Connection | None = None   # start_write's connection
        self.writer: threading.Thread | None = None
        self.written = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="jmgeo-regions")
        self.thread.start()

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self._assign(*item)
                except BaseException as exc:  # noqa: BLE001 - reported by write()
                    self.error = exc

    def put(self, fids: np.ndarray, geoms: np.ndarray, family: str) -> None:
        """Take one batch (``fids`` aligned with ``geoms``, none null or empty) for the
        thread: everything else happens there (GEOS, PROJ and NumPy release the GIL, so
        it runs on the other core while this one goes on loading)."""
        if self.tree is None or not len(geoms):
            return
        self.q.put((np.asarray(fids, dtype=np.int64), geoms, family))

    def _assign(self, fids: np.ndarray, geoms: np.ndarray, family: str) -> None:
        self.family = family
        pt = shapely.point_on_surface(geoms)
        lon = shapely.get_x(pt)
        parts = measure_parts(geoms, lon, family) if family in ("polygon", "line") else None
        del geoms
        feat, part = self.tree.query(pt, predicate="intersects")
        if not len(feat):
            return
        n_codes = len(self.codes)
        pair = np.unique(feat.astype(np.int64) * n_codes + self.part_code[part])
        feat, code = np.divmod(pair, n_codes)          # sorted by feature, then code
        if parts is None:
            measure = np.full(len(fids), np.nan)
        elif isinstance(parts, np.ndarray):
            measure = parts
        else:
            measure = measure_flat(*parts, lon, family)
        measure = measure[feat]
        # 4-byte numbers where they fit: a million features' rows take ~12 MB
        fids = fids[feat].astype(np.uint32 if fids[-1] < 2 ** 32 else np.int64)
        for c in np.unique(code):
            at = code == c
            self.rows.setdefault(int(c), []).append((fids[at], measure[at]))

    def abandon(self) -> None:
        """Stop the computing thread (also after an error elsewhere)."""
        if self.thread.is_alive():
            self.q.put(None)
            self.thread.join()

    def start_write(self, load_conn: psycopg.Connection, table: str) -> None:
        """Write the index beside the load's last steps (its GIST build leaves a core
        idle): a thread finishes the queued batches, then writes the table on a second
        connection, in a transaction held open until :meth:`commit` — called once the
        load has committed, so the index never outlives a load rolled back (a crash
        between the two commits leaves a version without one: the worker builds it)."""
        self.side_conn = psycopg.connect(load_conn.info.dsn, password=load_conn.info.password,
                                         autocommit=False)
        self.writer = threading.Thread(target=self._write_beside, args=(table,), daemon=True,
                                       name="jmgeo-regions-write")
        self.writer.start()

    def _write_beside(self, table: str) -> None:
        try:
            self.written = self.write(self.side_conn, table)
        except BaseException as exc:  # noqa: BLE001 - raised by ready()
            self.error = exc

    def ready(self) -> bool:
        """Wait for the written index (before the load commits: an error fails the load,
        nothing committed); False when the boundaries changed meanwhile."""
        self.writer.join()
        if self.error is not None:
            raise self.error
        return self.written

    def commit(self) -> bool:
        """Commit the written index, right after the load's own commit."""
        try:
            self.side_conn.commit()
            return True
        except psycopg.Error:  # the version stands; a worker builds its index
            return False
        finally:
            self.close()

    def close(self) -> None:
        """Stop the threads; an uncommitted index is rolled back with its connection."""
        self.abandon()
        if self.writer is not None:
            self.writer.join()
        if self.side_conn is not None:
            self.side_conn.close()
            self.side_conn = None

    def write(self, conn: psycopg.Connection, table: str,
              progress: Callable[[str], None] | None = None) -> bool:
        """Create the version's index in ``conn``'s transaction; False (and nothing
        written) when the boundaries changed since the load began."""
        self.abandon()
        if self.error is not None:
            raise self.error
        # shared until committed: a boundary reload waits, then drops it as stale
        conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (PARTS_LOCK,))
        if _one(conn, "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) "
                "FROM public.region_part") != self.signature:
            return False
        schema, idx = region_index_name(table)
        ident = sql.Identifier(schema, idx)
        # the builder's lock (ensure_region_index): a statistics call made between the
        # load's commit and this one's waits for it instead of building a twin
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{idx}",))
        conn.execute(sql.SQL("CREATE TABLE {} (fid bigint, region_code varchar(12), "
                             "area_m2 double precision, length_m double precision)"
                             ).format(ident))
        if self.rows:
            if progress:
                progress("区划索引 / region index")
            self._copy(conn, ident)
            _finish(conn, ident)
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        return True

    def _copy(self, conn: psycopg.Connection, ident: sql.Composable) -> None:
        """Binary COPY, rows in (region, fid) order: PostgreSQL then neither parses
        numbers nor sorts much to build the (region_code, fid) index, and a region's rows
        lie together for the statistics' scans. Written a slice at a time (memory)."""
        stmt = sql.SQL("COPY {} (fid, region_code, area_m2, length_m) FROM STDIN "
                       "WITH (FORMAT binary)").format(ident)
        with conn.cursor() as cur, cur.copy(stmt) as cp:
            cp.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8))     # signature, flags, extension
            for c in sorted(self.rows):              # code numbers follow the codes' order
                for fid, measure in self.rows.pop(c):
                    cp.write(_binary_rows(fid, self.codes[c], measure, self.family))
            cp.write(b"\xff\xff")                              # end of data


def _binary_rows(fid: np.ndarray, code: str, measure: np.ndarray, family: str | None
                 ) -> bytes:
    """Rows of one region code in COPY's binary format (every row the same layout: the
    code's bytes, and area or length or neither present)."""
    raw = code.encode()
    fields = [("n", ">i2"), ("lf", ">i4"), ("fid", ">i8"), ("lc", ">i4"),
              ("code", f"S{len(raw)}"), ("la", ">i4")]
    if family == "polygon":
        fields.append(("area", ">f8"))
    fields.append(("ll", ">i4"))
    if family == "line":
        fields.append(("length", ">f8"))
    rows = np.empty(len(fid), dtype=fields)
    rows["n"], rows["lf"], rows["fid"], rows["lc"], rows["code"] = 4, 8, fid, len(raw), raw
    rows["la"] = 8 if family == "polygon" else -1
    rows["ll"] = 8 if family == "line" else -1
    if family in ("polygon", "line"):
        rows["area" if family == "polygon" else "length"] = measure
    return rows.tobytes()
