"""``jmgeo layer retire`` / ``unretire`` (issue 12 §9) and collection extents from the data
(§6). The access matrix (tests/test_access_matrix*.py) checks every way out of a retired
resource; here: the command, its refusal with live grants, the audit, the catalog, what
is kept, and that unretire restores it."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from layers.departments import ensure_departments
from layers.registry import Column, create_data_table, publish, rollback

NAME = "t_retire"


def _load(conn, name: str, version: int, n: int, day0: str = "2024-01-01") -> None:
    ensure_departments(conn)
    table = create_data_table(conn, name, version, "MultiPoint",
                              [Column("label", "text"), Column("surveyed", "date")])
    conn.execute(f"INSERT INTO {table} (fid, geom, label, surveyed) SELECT g, ST_Multi("
                 "ST_SetSRID(ST_Point(112.9 + g * 0.01, 22.3 + g * 0.01), 4490)), 'p' || g, "
                 "%s::date + g FROM generate_series(1, %s) g", (day0, n))
    publish(conn, layer=name, version=version, table_name=table, feature_count=n, report={},
            title="停用测试", dept="gtzy", theme="land", sharing_class="conditional",
            legal_basis="测试依据")


@pytest.fixture(scope="module")
def layer(database_url):
    from layers.grants import add_grant

    with psycopg.connect(database_url, autocommit=True) as conn:
        _load(conn, NAME, 1, 5)
        _load(conn, NAME, 2, 3, "2025-06-01")
        gid = add_grant(conn, layer=NAME, dept="gh", purpose="测试", approved_by="测试",
                        notes="retire")
    return gid


def cli(database_url, *args) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "jmgeo.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ, DATABASE_URL=database_url),
                          timeout=120, check=False)


def _owner_key(db) -> str:
    from layers.identity import create_key

    return create_key(db, "retire-owner", role="department", dept="gtzy")["token"]


def test_extents_come_from_the_data_and_follow_rollback(app_client, db, layer):
    key = {"X-API-Key": _owner_key(db)}
    url = f"/ogc/collections/{NAME}"
    ext = app_client.get(url, params={"f": "json"}, headers=key).json()["extent"]
    assert ext["spatial"]["bbox"][0] == pytest.approx([112.91, 22.31, 112.93, 22.33])
    assert ext["temporal"]["interval"][0][0].startswith("2025-06-02")
    assert ext["temporal"]["interval"][0][1].startswith("2025-06-04")
    rollback(db, NAME, 1)
    try:
        ext = app_client.get(url, params={"f": "json"}, headers=key).json()["extent"]
        assert ext["spatial"]["bbox"][0] == pytest.approx([112.91, 22.31, 112.95, 22.35])
        assert ext["temporal"]["interval"][0][0].startswith("2024-01-02")
    finally:
        rollback(db, NAME, 2)


def test_retire_refused_with_live_grants_then_forced_and_undone(app_client, db,
                                                                database_url, layer):
    from catalog.sync import ensure_synced

    key = {"X-API-Key": _owner_key(db)}
    ensure_synced(db)
    entry = db.execute("SELECT status FROM catalog_entry WHERE layer_name = %s",
                       (NAME,)).fetchone()
    assert entry[0] == "published"
    versions = db.execute("SELECT count(*) FROM layer_version v JOIN layer l ON l.id = "
                          "v.layer_id WHERE l.name = %s", (NAME,)).fetchone()[0]
    assert app_client.get(f"/ogc/collections/{NAME}", headers=key).status_code == 200

    r = cli(database_url, "layer", "retire", NAME, "--reason", "数据已并入新图层")
    assert r.returncode != 0 and "live grant" in r.stderr + r.stdout
    assert app_client.get(f"/ogc/collections/{NAME}", headers=key).status_code == 200

    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    r = cli(database_url, "layer", "retire", NAME, "--force", "--reason", "数据已并入新图层")
    assert r.returncode == 0, r.stderr
    rows = db.execute("SELECT action, layer, request FROM audit_log WHERE id > %s",
                      (mark,)).fetchall()
    assert [(a, lyr) for a, lyr, _ in rows] == [("layer.retire", NAME)]
    assert rows[0][2]["reason"] == "数据已并入新图层" and rows[0][2]["forced"] is True
    # hidden for its owner too, and in `jmgeo layer retire` twice is a clear error
    for path in (f"/ogc/collections/{NAME}", f"/ogc/collections/{NAME}/items",
                 f"/downloads/{NAME}"):
        assert app_client.get(path, headers=key).status_code == 404, path
    assert NAME not in app_client.get("/ogc/collections", headers=key).text
    # its style cannot be changed either, and the answer is a missing layer's (404)
    style = {"version": 8, "sources": {}, "layers": []}
    for name in (NAME, "tret_never_existed"):
        r = app_client.put(f"/ogc/collections/{name}/styles/default", json=style,
                           headers=key)
        assert r.status_code == 404, (name, r.text)
    assert "already retired" in cli(database_url, "layer", "retire", NAME).stderr
    # nor in its owner's console (listed, versions, rollback), nor rolled back by the CLI
    from fastapi.testclient import TestClient

    console = TestClient(app_client.app, base_url="http://testserver",
                         follow_redirects=False)
    assert console.post("/console/signin", data={"key": key["X-API-Key"], "next": "/console"}
                        ).status_code == 303
    assert f"/console/resources/{NAME}" not in console.get("/console/resources").text
    assert console.get(f"/console/resources/{NAME}").status_code == 404
    r = cli(database_url, "layer", "rollback", NAME, "--to", "1")
    assert r.returncode != 0 and "retired" in r.stderr, r.stderr
    # kept for history: versions, grants, catalog entry (retired), audit rows
    assert db.execute("SELECT count(*) FROM layer_version v JOIN layer l ON l.id = "
                      "v.layer_id WHERE l.name = %s", (NAME,)).fetchone()[0] == versions
    assert db.execute("SELECT revoked_at FROM layer_grant WHERE id = %s",
                      (layer,)).fetchone()[0] is None
    ensure_synced(db)
    assert db.execute("SELECT status FROM catalog_entry WHERE layer_name = %s",
                      (NAME,)).fetchone()[0] == "retired"

    r = cli(database_url, "layer", "unretire", NAME)
    assert r.returncode == 0, r.stderr
    assert app_client.get(f"/ogc/collections/{NAME}/items", headers=key).json()[
        "numberReturned"] == 3
    from layers.identity import create_key

    gh = {"X-API-Key": create_key(db, "retire-gh", role="department", dept="gh")["token"]}
    assert app_client.get(f"/ogc/collections/{NAME}", headers=gh).status_code == 200
    ensure_synced(db)
    assert db.execute("SELECT status FROM catalog_entry WHERE layer_name = %s",
                      (NAME,)).fetchone()[0] == "published"
    assert [a for (a,) in db.execute(
        "SELECT action FROM audit_log WHERE id > %s AND action LIKE 'layer.%%' ORDER BY id",
        (mark,))] == ["layer.retire", "layer.unretire"]
    assert "not retired" in cli(database_url, "layer", "unretire", NAME).stderr


def test_a_region_grant_sees_its_regions_box_not_the_data_s(app_client, database_url):
    """The data's own box (even cut to the grant's) would say where rows outside the
    grant lie: a region-limited grantee is shown its regions' box."""
    from policy_fixtures import GRANT_REGION, build_world, layer_name

    callers = build_world(database_url)
    key = {"X-API-Key": callers["limited_grant"].token}
    with psycopg.connect(database_url, autocommit=True) as conn:
        region_box = list(conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
            "ST_Extent(geom) AS e FROM public.region_part WHERE code = %s) s",
            (GRANT_REGION,)).fetchone())
    r = app_client.get(f"/ogc/collections/{layer_name('conditional')}",
                       params={"f": "json"}, headers=key)
    assert r.status_code == 200
    assert r.json()["extent"]["spatial"]["bbox"][0] == pytest.approx(region_box)
    assert "temporal" not in r.json()["extent"]
