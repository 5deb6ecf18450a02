"""A load publishes the version's region index with the version (``spatial.regionindex``):
the first region statistics call of a new version finds it, and it is the table the SQL
build (``ensure_region_index``) makes, row for row — regions by point on surface, area and
length in the Gauss-Krüger zone the point picks — for polygons with holes, Multi parts,
repaired rings, lines, points, features across the 112.5° E zone line and outside the
city, and the real-world files."""

from __future__ import annotations

import json
import threading

import numpy as np
import psycopg
import pytest
import shapely
from psycopg import sql

from jmgeo.settings import get_settings
from layers.departments import DEMO_DEPARTMENTS, ensure_departments
from loaders.pipeline import LoadOptions, load
from spatial.regionindex import (
    PARTS_LOCK,
    LoadIndex,
    _domain_box,
    ensure_region_index,
    gauss_kruger_measure,
    region_index_name,
)


def _square(x: float, y: float, d: float = 0.01) -> list:
    return [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]


def _feature(geom: dict, i: int) -> dict:
    return {"type": "Feature", "properties": {"n": i}, "geometry": geom}


POLYGONS = [
    {"type": "Polygon", "coordinates": [_square(113.08, 22.58)]},              # 蓬江
    {"type": "Polygon", "coordinates": [_square(113.0, 22.4, 0.04),            # a hole
                                        _square(113.01, 22.41, 0.01)[::-1]]},
    {"type": "Polygon", "coordinates": [_square(112.495, 22.3)]},              # zone line
    {"type": "Polygon", "coordinates": [_square(112.3, 22.2)]},                # zone 37
    {"type": "MultiPolygon", "coordinates": [[_square(112.8, 22.1)],           # 2 parts
                                             [_square(113.1, 22.7)]]},
    {"type": "Polygon", "coordinates": [[[113.2, 22.5], [113.22, 22.52],       # bow tie:
                                         [113.22, 22.5], [113.2, 22.52],       # repaired
                                         [113.2, 22.5]]]},
    {"type": "Polygon", "coordinates": [_square(114.05, 22.55)]},              # 深圳
]
LINES = [
    {"type": "LineString", "coordinates": [[113.05, 22.55], [113.1, 22.6], [113.2, 22.6]]},
    {"type": "LineString", "coordinates": [[112.45, 22.3], [112.55, 22.31]]},  # zone line
    {"type": "MultiLineString", "coordinates": [[[112.9, 22.3], [112.95, 22.35]],
                                                [[113.0, 22.8], [113.05, 22.85]]]},
]
POINTS = [{"type": "Point", "coordinates": [113.0 + i / 100, 22.3 + i / 120]}
          for i in range(40)]


@pytest.fixture(scope="module")
def departments(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


def _load(tmp_path, database_url, name: str, geoms: list[dict], **opts):
    f = tmp_path / f"{name}.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        _feature(g, i) for i, g in enumerate(geoms)]}), encoding="utf-8")
    return load(f, LoadOptions(dept="gtzy", layer=name, theme="land", sharing="open",
                               **opts), dsn=database_url, progress=False)


def _rows(conn, schema: str, name: str) -> dict:
    return {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sql.SQL(
        "SELECT fid, region_code, area_m2, length_m FROM {}").format(
            sql.Identifier(schema, name)))}


def _same_as_the_sql_build(conn, table: str) -> dict:
    """The loader's index, then the SQL build of the same version: equal row for row."""
    schema, idx = region_index_name(table)
    loaded = _rows(conn, schema, idx)
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
        sql.Identifier(schema, idx), sql.Identifier(idx + "_l")))
    ensure_region_index(conn, table)
    built = _rows(conn, schema, idx)
    assert loaded.keys() == built.keys()
    for key, (area, length) in built.items():
        for mine, theirs in zip(loaded[key], (area, length), strict=True):
            if theirs is None:
                assert mine is None, key
            else:
                assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-6), key
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, idx + "_l")))
    return loaded


@pytest.mark.parametrize("name,geoms,measured", [
    ("rix_polygons", POLYGONS, 0), ("rix_single", POLYGONS[:4], 0),  # general / in place
    ("rix_lines", LINES, 1), ("rix_points", POINTS, None)])
def test_the_load_publishes_the_index_the_sql_build_makes(tmp_path, database_url,
                                                           departments, name, geoms,
                                                           measured, app_client):
    report = _load(tmp_path, database_url, name, geoms)
    assert report["region_index"] == "built"
    table = report["target"]["table"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        schema, idx = region_index_name(table)
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                            (f"{schema}.{idx}",)).fetchone()[0]
        rows = _same_as_the_sql_build(conn, table)
    fids = {fid for fid, _ in rows}
    if name == "rix_polygons":   # 深圳's square (fid 7) lies in no region of Jiangmen
        assert 7 not in fids and {1, 2, 3, 4, 5, 6} <= fids
    assert rows, "nothing was assigned to a region"
    for (_, _), values in rows.items():
        if measured is None:
            assert values == (None, None)
        else:
            assert values[measured] > 0 and values[1 - measured] is None
    r = app_client.get("/regions/440700/stats", params={"layer": name})
    assert r.status_code == 200, r.text
    assert sum(x["count"] for x in r.json()["rows"]) == len(fids)


def test_measures_on_either_side_of_the_zone_line_match_postgis(database_url):
    """The flat shoelace / segment sums against ST_Area / ST_Length of ST_Transform, per
    zone, for holes, Multi parts and a vertex beyond the transforms' domain (clipped)."""
    cases = [(shapely.geometry.shape(g), "polygon") for g in POLYGONS[:5]] + \
        [(shapely.geometry.shape(g), "line") for g in LINES] + \
        [(shapely.box(113.0, 22.0, 175.5, 22.1), "polygon")]       # beyond the domain
    with psycopg.connect(database_url) as conn:
        for geom, family in cases:
            pos = shapely.point_on_surface(geom)
            srid = 4546 if pos.x < 112.5 else 4547
            fn = "ST_Area" if family == "polygon" else "ST_Length"
            want = conn.execute(
                f"SELECT {fn}(ST_Transform(CASE WHEN g @ e THEN g ELSE ST_ClipByBox2D(g, e) "
                "END, %s)) FROM (SELECT ST_GeomFromText(%s, 4490) g, "
                "ST_MakeEnvelope(%s, %s, %s, %s, 4490) e) s",
                (srid, geom.wkt, *_domain_box())).fetchone()[0]
            got = gauss_kruger_measure(np.array([geom]), np.array([pos.x]), family)[0]
            assert got == pytest.approx(want, rel=1e-9), (geom.wkt[:60], family)


def test_real_world_files_give_the_same_index(tmp_path, database_url, departments):
    root = get_settings().realworld_data
    picks = [root / "admin2025-cgcs2000-cities" / "市.shp",
             root / "nfgis4m-rivers-hyd2_4l"]
    picks = [p for p in picks if p.exists()]
    if not picks:
        pytest.skip(f"real-world test data {root} is absent (setting JMGEO_REALWORLD_DATA)")
    for i, path in enumerate(picks):
        report = load(path, LoadOptions(dept="gtzy", layer=f"rix_real_{i}", theme="land",
                                        sharing="open", allow_outside=True),
                      dsn=database_url, progress=False)
        assert report["region_index"] == "built"
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert _same_as_the_sql_build(conn, report["target"]["table"])


def test_boundaries_reloaded_during_the_load_leave_the_index_to_the_sql_build(
        database_url, owner_database_url):
    """An index computed from boundaries that changed meanwhile is not written; and a
    boundary reload waits for a load that holds the parts lock, then drops its index."""
    with psycopg.connect(database_url) as conn:
        idx = LoadIndex(conn)
        idx.put(np.array([1]), np.array([shapely.box(113.08, 22.58, 113.09, 22.59)]),
                "polygon")
        with psycopg.connect(owner_database_url, autocommit=True) as other:
            other.execute("UPDATE region_part SET id = id + 100000 WHERE id = "
                          "(SELECT max(id) FROM region_part)")  # as a rebuild does
        try:
            conn.execute("CREATE TEMP TABLE rix_probe (fid bigint)")
            assert idx.write(conn, "pg_temp.rix_probe") is False
            conn.rollback()
            # a fresh index holds the lock: a reload's exclusive lock waits for the commit
            idx = LoadIndex(conn)
            conn.execute("CREATE TEMP TABLE rix_probe (fid bigint)")
            assert idx.write(conn, "pg_temp.rix_probe") is True
            waited = threading.Event()

            def reload() -> None:
                with psycopg.connect(owner_database_url) as o, o.transaction():
                    o.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PARTS_LOCK,))
                    waited.set()

            t = threading.Thread(target=reload)
            t.start()
            assert not waited.wait(1.0), "the reload did not wait for the load"
            conn.rollback()
            assert waited.wait(10)
            t.join()
        finally:
            with psycopg.connect(owner_database_url, autocommit=True) as other:
                other.execute("UPDATE region_part SET id = id - 100000 WHERE id > 100000")


def test_pruning_a_version_drops_its_region_index(tmp_path, database_url, departments):
    from layers import registry

    first = _load(tmp_path, database_url, "rix_pruned", POLYGONS[:2])
    _load(tmp_path, database_url, "rix_pruned", POLYGONS[:3])
    schema, idx = region_index_name(first["target"]["table"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        exists = "SELECT to_regclass(%s) IS NOT NULL"
        assert conn.execute(exists, (f"{schema}.{idx}",)).fetchone()[0]
        assert registry.prune(conn, "rix_pruned", 1)["dropped_versions"] == [1]
        assert not conn.execute(exists, (f"{schema}.{idx}",)).fetchone()[0]


def _index_tables(conn, name_like: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'layer_data' AND tablename "
        "LIKE %s AND tablename LIKE '%%rgn%%'", (name_like,))]


def test_a_load_refused_or_dry_run_after_the_index_was_written_leaves_none(
        tmp_path, database_url, departments):
    """The index is written on a second connection while the load finishes; it commits
    only after the load has: a dry run, or a load refused at its key check (after the
    write began), leaves no index table behind and holds no lock."""
    from loaders.errors import LoaderError

    report = _load(tmp_path, database_url, "rix_dry", POLYGONS[:3], dry_run=True)
    assert report["published"] is False
    dup = [dict(g) for g in POLYGONS[:2]]
    f = tmp_path / "rix_dupkey.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "A"}, "geometry": g} for g in dup]}),
        encoding="utf-8")
    with pytest.raises(LoaderError):
        load(f, LoadOptions(dept="gtzy", layer="rix_dupkey", theme="land", sharing="open",
                            key="code"), dsn=database_url, progress=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _index_tables(conn, "rix_dry%") == []
        assert _index_tables(conn, "rix_dupkey%") == []
        # nobody holds the parts lock: a boundary reload would not wait
        assert conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                            (PARTS_LOCK,)).fetchone()[0]
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (PARTS_LOCK,))


def test_a_statistics_call_between_the_two_commits_waits_for_the_written_index(
        tmp_path, database_url, departments):
    """Between the load's commit and its index's, a statistics call finds no index: it
    waits for the writer's lock and then uses the written one (no twin build, no
    DuplicateTable)."""
    report = _load(tmp_path, database_url, "rix_gap", POLYGONS[:4])
    table = report["target"]["table"]
    schema, name = region_index_name(table)
    with psycopg.connect(database_url, autocommit=True) as conn:
        written = _rows(conn, schema, name)
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
    with psycopg.connect(database_url) as load_conn:
        idx = LoadIndex(load_conn)
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute(sql.SQL("SELECT fid, geom FROM {} ORDER BY fid").format(
                sql.Identifier(*table.split(".", 1)))).fetchall()
        idx.put(np.array([r[0] for r in rows]),
                shapely.from_wkb([bytes.fromhex(r[1]) for r in rows]), "polygon")
        idx.start_write(load_conn, table)
        assert idx.ready() is True
        done: list = []

        def stats_call() -> None:
            with psycopg.connect(database_url, autocommit=True) as c:
                done.append(ensure_region_index(c, table))

        t = threading.Thread(target=stats_call)
        t.start()
        t.join(1.0)
        assert t.is_alive() and not done, "the statistics call did not wait"
        assert idx.commit() is True
        t.join(20)
        assert done
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _rows(conn, schema, name) == written
