"""QGIS 3.22 as Debian ships it (``python3-qgis``) against the live server: a department
opens its conditional layer through QGIS's OAPIF provider with its API key as the password
of QGIS's built-in Basic authentication, and sees exactly its granted rows and fields.

PyQGIS lives in Debian's /usr/bin/python3, not in the project's venv, so each QGIS is a
subprocess running tests/qgis_client.py (offscreen, with a temporary profile and auth
database). When the package is missing, ``jmgeo.provision.ensure_client_packages``
installs it as root (a failure to install is an error, not a skip); any other user gets
a skip that says what to install.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from policy_fixtures import FEATURES, GRANT_FIELDS, GRANT_REGION, build_world, layer_name

from jmgeo.provision import ClientPackagesMissing, ensure_client_packages

CLIENT = Path(__file__).with_name("qgis_client.py")
SYSTEM_PYTHON = "/usr/bin/python3"
COND = layer_name("conditional")
OPEN = layer_name("open")


@pytest.fixture(scope="module")
def qgis():
    """Debian's PyQGIS, installed when missing (root), else a skip naming the package."""
    try:
        ensure_client_packages(["python3-qgis"], log=print)
    except ClientPackagesMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


def run_qgis(*args: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH="")
    env.pop("PYTHONHOME", None)
    proc = subprocess.run([SYSTEM_PYTHON, str(CLIENT), *args], capture_output=True,
                          text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from QGIS:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1])


def names(result: dict) -> set[str]:
    return {f["attributes"]["name"] for f in result["features"]}


def test_department_sees_exactly_its_granted_rows_through_basic_auth(qgis, live_server,
                                                                     world):
    result = run_qgis("oapif", f"{live_server}/ogc", COND, world["limited_grant"].token)
    assert result["qgis"].startswith("3.")
    assert result["valid"], result
    granted = {f[4] for f in FEATURES if f[3] == GRANT_REGION}
    assert names(result) == granted  # not more (台山市), not fewer
    assert len(result["features"]) == len(granted)  # no row twice (paging)
    # only the granted fields reach QGIS: 权利人 and 身份证号 never
    assert set(GRANT_FIELDS) <= set(result["fields"])
    assert not {"qlr", "sfz"} & set(result["fields"])
    for feature in result["features"]:
        assert feature["wkt"] and feature["wkt"].upper().startswith(("POINT", "MULTIPOINT"))
    by_name = {f[4]: f for f in FEATURES}
    for feature in result["features"]:  # coordinates exact (lon/lat, not swapped)
        _fid, lon, lat, *_ = by_name[feature["attributes"]["name"]]
        assert f"{lon:.2f}" in feature["wkt"] and f"{lat:.2f}" in feature["wkt"]


def test_owner_sees_every_row(qgis, live_server, world):
    result = run_qgis("oapif", f"{live_server}/ogc", COND, world["owner"].token)
    assert result["valid"], result
    assert names(result) == {f[4] for f in FEATURES}
    assert {"qlr", "sfz"} <= set(result["fields"])


@pytest.mark.parametrize("who", ["anonymous", "unrelated", "expired_grant"])
def test_without_a_grant_qgis_opens_nothing(qgis, live_server, world, who):
    token = world[who].token
    result = run_qgis("oapif", f"{live_server}/ogc", COND, *([token] if token else []))
    assert not result["valid"] and not result["features"], result
    # the collection is not there for this caller (404 like one that never existed)
    assert any(r.startswith("404 ") and r.endswith(f"/collections/{COND}")
               for r in result["requests"]), result


def test_one_qgis_session_never_reuses_another_callers_answers(qgis, live_server, world):
    """Keyed, then anonymous, then keyed again in one QGIS (one network cache): each
    open sees what its own credentials allow — QGIS's cache ignores ``Vary``, so only
    the server's cache headers keep a keyed answer from being replayed (and back)."""
    key = world["limited_grant"].token
    first, anonymous, again = run_qgis("oapif-seq", f"{live_server}/ogc", COND, key,
                                       COND, "-", COND, key)["opens"]
    granted = {f[4] for f in FEATURES if f[3] == GRANT_REGION}
    assert first["valid"] and names(first) == granted, first
    assert not anonymous["valid"] and not anonymous["features"], anonymous
    assert again["valid"] and names(again) == granted, again


def test_a_wrong_key_opens_nothing(qgis, live_server, world):
    result = run_qgis("oapif", f"{live_server}/ogc", COND, "jmk_not_a_key")
    assert not result["valid"] and not result["features"], result
    assert result["requests"] and result["requests"][0].startswith("401 "), result


def test_open_layer_needs_no_key(qgis, live_server, world):
    result = run_qgis("oapif", f"{live_server}/ogc", OPEN)
    assert result["valid"], result
    assert names(result) == {f[4] for f in FEATURES}
    # open data: the sensitive fields reach QGIS masked, never as stored
    seen = {v for f in result["features"] for v in f["attributes"].values()}
    assert not {f[5] for f in FEATURES} & seen  # 权利人
    assert not {f[7] for f in FEATURES} & seen  # 身份证号


def many_points(database_url: str) -> tuple[str, set[str]]:
    """A conditional layer of MANY points, every other one in 蓬江区 (the rest in 台山市),
    granted to 规划局 (gh) for 蓬江区 only: more rows than QGIS asks for in one page (100)
    and than the server's default page, so the granted set arrives over several pages.
    Returns the layer name and the names QGIS must see."""
    import psycopg

    from layers.grants import add_grant
    from layers.registry import Column, create_data_table, publish

    name = "tqgis_many"
    points = []
    for i in range(MANY):
        county = GRANT_REGION if i % 2 == 0 else "440781"
        lon, lat = (113.08, 22.58) if county == GRANT_REGION else (112.79, 22.25)
        points.append((i + 1, lon + (i % 20) * 4e-4, lat + (i // 20) * 4e-4,
                       f"点{i + 1:04d}", county))
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_world(database_url)  # departments
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone():
            with conn.transaction():
                table = create_data_table(conn, name, 1, "MultiPoint",
                                          [Column("name"), Column("county")], title=name)
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {table} (fid, geom, name, county) VALUES (%s, "
                        "ST_Multi(ST_SetSRID(ST_MakePoint(%s, %s), 4490)), %s, %s)", points)
                publish(conn, layer=name, version=1, table_name=table,
                        feature_count=len(points), report={}, title="QGIS 分页测试",
                        dept="gtzy", theme="land", sharing_class="conditional")
            add_grant(conn, layer=name, dept="gh", purpose="分页测试",
                      approved_by="测试审批人", regions=[GRANT_REGION], notes="tqgis")
    return name, {p[3] for p in points if p[4] == GRANT_REGION}


MANY = 530


def test_qgis_pages_through_all_granted_rows_and_no_other(qgis, live_server, world,
                                                          database_url):
    name, granted = many_points(database_url)
    result = run_qgis("oapif", f"{live_server}/ogc", name, world["limited_grant"].token)
    assert result["valid"], result
    got = [f["attributes"]["name"] for f in result["features"]]
    assert len(got) == len(set(got)), "a row came twice (paging)"
    assert set(got) == granted, (f"QGIS saw {len(got)} rows of {len(granted)} granted: "
                                 f"missing {sorted(granted - set(got))[:5]}, extra "
                                 f"{sorted(set(got) - granted)[:5]}")


def test_qgis_reads_vector_tiles_of_an_open_layer(qgis, live_server, world):
    template = (f"{live_server}/ogc/collections/{OPEN}/tiles/WebMercatorQuad/"
                "{z}/{y}/{x}?f=mvt")
    _fid, lon, lat, *_ = FEATURES[0]
    result = run_qgis("vectortile", template, OPEN, "12", str(lon), str(lat))
    assert result["valid"], result
    # the 蓬江区 points are drawn; a tile's width east of them, nothing
    assert result["painted"] > 10, result
    assert result["painted_east"] == 0, result
