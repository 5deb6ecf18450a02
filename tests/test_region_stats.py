"""Region statistics against hand-computed figures, across the GK zone boundary."""

from __future__ import annotations

import psycopg
import pytest

from layers.departments import ensure_departments
from layers.registry import Column, create_data_table, publish
from spatial.crs import get_transformer


def _square_wkt(epsg: int, cx: float, cy: float, w: float, h: float) -> str:
    """A w×h metre rectangle centred at (cx, cy) in a GK CRS, as 4490 lon/lat WKT."""
    tr = get_transformer(epsg, 4490)
    ring = [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2),
            (cx - w / 2, cy + h / 2), (cx - w / 2, cy - h / 2)]
    # densify so the lon/lat polygon follows the GK rectangle closely
    pts = []
    for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
        for i in range(100):
            pts.append(tr.transform(x0 + (x1 - x0) * i / 100, y0 + (y1 - y0) * i / 100))
    pts.append(pts[0])
    return "MULTIPOLYGON(((" + ", ".join(f"{x:.10f} {y:.10f}" for x, y in pts) + ")))"


@pytest.fixture(scope="module")
def stats_layer(database_url):
    with psycopg.connect(database_url) as conn, conn.transaction():
        ensure_departments(conn)
        table = create_data_table(conn, "t_stats_parcels", 1, "MultiPolygon",
                                  [Column("dlmc", "text", "地类名称")])
        to47 = get_transformer(4490, 4547)
        to46 = get_transformer(4490, 4546)
        pj = to47.transform(113.08, 22.58)      # 蓬江区, zone 38
        ep = to46.transform(112.30, 22.20)      # 恩平市, zone 37
        rows = [
            (1, _square_wkt(4547, *pj, 1000, 1000), "耕地"),   # 1,000,000 m²
            (2, _square_wkt(4547, pj[0] - 1500, pj[1], 500, 200), "林地"),  # 100,000 m²
            (3, _square_wkt(4546, *ep, 2000, 500), "耕地"),   # 1,000,000 m² in zone 37
        ]
        for fid, wkt, dlmc in rows:
            conn.execute(f"INSERT INTO {table} (fid, geom, dlmc) VALUES "
                         "(%s, ST_GeomFromText(%s, 4490), %s)", (fid, wkt, dlmc))
        publish(conn, layer="t_stats_parcels", version=1, table_name=table, feature_count=3,
                report={}, title="统计测试地块", dept="gtzy", theme="land",
                sharing_class="open")
    return "t_stats_parcels"


def test_stats_by_county_hand_computed(app_client, stats_layer):
    r = app_client.get("/regions/440700/stats", params={"layer": stats_layer})
    assert r.status_code == 200, r.text
    rows = {row["region_code"]: row for row in r.json()["rows"]}
    assert rows["440703"]["count"] == 2
    assert rows["440703"]["area_m2"] == pytest.approx(1_100_000, rel=1e-4)
    assert rows["440785"]["count"] == 1
    # computed in zone 37 (EPSG:4546): exact; zone 38 would be off by ~0.1 %
    assert rows["440785"]["area_m2"] == pytest.approx(1_000_000, rel=1e-4)
    assert r.json()["totals"]["count"] == 3


def test_stats_grouped_by_property(app_client, stats_layer):
    r = app_client.get("/regions/440703/stats", params={"layer": stats_layer,
                                                        "group_by": "dlmc"})
    assert r.status_code == 200, r.text
    groups = {row["group"]: row for row in r.json()["rows"]}
    assert groups["耕地"]["area_m2"] == pytest.approx(1_000_000, rel=1e-4)
    assert groups["林地"]["area_m2"] == pytest.approx(100_000, rel=1e-4)


def test_stats_bad_input(app_client, stats_layer):
    assert app_client.get("/regions/440700/stats",
                          params={"layer": "no_such_layer"}).status_code == 404
    assert app_client.get("/regions/999999/stats",
                          params={"layer": stats_layer}).status_code == 404
    r = app_client.get("/regions/440700/stats", params={"layer": stats_layer,
                                                        "group_by": "nosuch"})
    assert r.status_code == 400 and "group_by" in r.json()["description"]


def test_region_grant_counts_rows_intersecting_its_regions(app_client, database_url):
    """A grant's region scope means what it means everywhere (issue 9): the rows whose
    geometry intersects the granted regions — a parcel reaching into 蓬江区 from outside
    is visible (and counted where its point on surface lies), one elsewhere is not."""
    from datetime import UTC, datetime

    from layers.grants import add_grant
    from layers.identity import create_key

    big = ("MULTIPOLYGON(((112.3 22.0, 113.2 22.0, 113.2 22.7, 112.3 22.7, 112.3 22.0)))")
    small = _square_wkt(4547, *get_transformer(4490, 4547).transform(113.08, 22.58), 200, 200)
    far = _square_wkt(4546, *get_transformer(4490, 4546).transform(112.30, 22.20), 200, 200)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
        with conn.transaction():
            table = create_data_table(conn, "t_stats_scope", 1, "MultiPolygon",
                                      [Column("dlmc", "text", "地类名称")])
            for fid, wkt in ((1, small), (2, big), (3, far)):
                conn.execute(f"INSERT INTO {table} (fid, geom, dlmc) VALUES "
                             "(%s, ST_GeomFromText(%s, 4490), '耕地')", (fid, wkt))
            publish(conn, layer="t_stats_scope", version=1, table_name=table,
                    feature_count=3, report={}, title="统计范围测试", dept="gtzy",
                    theme="land", sharing_class="conditional")
        add_grant(conn, layer="t_stats_scope", dept="gh", purpose="测试", approved_by="测试",
                  regions=["440703"])
        token = create_key(conn, f"stats-scope-{datetime.now(UTC).timestamp()}",
                           dept="gh")["token"]
        # the big parcel's point on surface lies outside 蓬江区: the old point-on-surface
        # scope would have hidden it
        where = conn.execute(
            "SELECT p.code FROM public.region_part p JOIN region r ON r.id = p.region_id "
            f"JOIN {table} t ON ST_Intersects(p.geom, ST_PointOnSurface(t.geom)) "
            "WHERE t.fid = 2 AND r.parent_code = '440700'").fetchone()
    assert where is not None and where[0] != "440703"
    r = app_client.get("/regions/440700/stats", params={"layer": "t_stats_scope"},
                       headers={"X-API-Key": token})
    assert r.status_code == 200, r.text
    rows = {row["region_code"]: row["count"] for row in r.json()["rows"]}
    assert rows == {"440703": 1, where[0]: 1}  # fid 1 and fid 2; never fid 3 (恩平)


def test_stats_withheld_when_the_audit_cannot_be_written(app_client, db, owner_database_url):
    """No audit row, no data: statistics of a non-open layer answer 503 (not 500) when
    the audit row cannot be written — here a trigger refusing it, a real failure."""
    from datetime import UTC, datetime

    from layers.identity import create_key

    with db.transaction():
        table = create_data_table(db, "t_stats_noaudit", 1, "MultiPolygon",
                                  [Column("dlmc", "text", "地类名称")])
        db.execute(f"INSERT INTO {table} (fid, geom, dlmc) VALUES (1, ST_GeomFromText("
                   "'MULTIPOLYGON(((113.07 22.57, 113.09 22.57, 113.09 22.59, 113.07 22.59, "
                   "113.07 22.57)))', 4490), '耕地')")
        publish(db, layer="t_stats_noaudit", version=1, table_name=table, feature_count=1,
                report={}, title="统计审计测试", dept="gtzy", theme="land",
                sharing_class="unconditional")
    token = create_key(db, f"stats-noaudit-{datetime.now(UTC).timestamp()}",
                       dept="hb")["token"]
    su = psycopg.connect(owner_database_url, autocommit=True)  # triggers: the owner's
    su.execute("""
        CREATE FUNCTION ts_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.layer = 't_stats_noaudit' THEN RAISE EXCEPTION 'audit refused'; END IF;
        RETURN NEW; END $$""")
    su.execute("CREATE TRIGGER ts_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW "
               "EXECUTE FUNCTION ts_refuse_audit()")
    try:
        r = app_client.get("/regions/440700/stats", params={"layer": "t_stats_noaudit"},
                           headers={"X-API-Key": token})
        assert r.status_code == 503 and "rows" not in r.json(), r.text
        assert r.json()["code"] == "ServiceUnavailable"
    finally:
        su.execute("DROP TRIGGER ts_refuse_audit ON audit_log")
        su.execute("DROP FUNCTION ts_refuse_audit()")
        su.close()
    r = app_client.get("/regions/440700/stats", params={"layer": "t_stats_noaudit"},
                       headers={"X-API-Key": token})
    assert r.status_code == 200 and r.json()["rows"]
