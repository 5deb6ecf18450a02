"""The tile cache (open layers only, version-keyed, seeded), TileJSON 3.0, the layers'
MapLibre styles (default and the owner's), and ``f=png`` on vector tiles.

A hit is proven by changing the version's table behind the cache's back: the cached
bytes still come back; a new version (a new table) is a new key and comes back new.
"""

from __future__ import annotations

import json

import mapbox_vector_tile
import pytest
from policy_fixtures import GRANT_FIELDS, create_callers, create_layers, layer_name

LAYER = "tcache_parcels"
TMS = "WebMercatorQuad"
PARCEL = "MULTIPOLYGON(((113.08 22.58, 113.09 22.58, 113.09 22.59, 113.08 22.59, 113.08 22.58)))"
IN_PENGJIANG = (113.085, 22.585)


def _publish(conn, version: int, name: str) -> None:
    from layers.registry import Column, create_data_table, publish

    with conn.transaction():
        table = create_data_table(conn, LAYER, version, "MultiPolygon",
                                  [Column("dkmc", label="地块名称"),
                                   Column("mj", "double precision", label="面积")])
        conn.execute(f"INSERT INTO {table} (fid, geom, dkmc, mj) VALUES "
                     "(1, ST_GeomFromText(%s, 4490), %s, 10.5)", (PARCEL, name))
        publish(conn, layer=LAYER, version=version, table_name=table, feature_count=1,
                report={}, title="缓存测试地块", dept="gtzy", theme="land",
                sharing_class="open", field_labels={"dkmc": "地块名称", "mj": "面积"})


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layers(conn)
        callers = create_callers(conn)
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            _publish(conn, 1, "北街地块")
    return callers


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def tile_of(z: int, lon: float, lat: float) -> tuple[int, int]:
    from jmgeo.ogc.tileseed import tiles_in_bbox

    ((row, col),) = list(tiles_in_bbox(TMS, z, (lon, lat, lon, lat)))
    return row, col


def fetch(client, layer, z, row, col, headers=None, f="mvt"):
    return client.get(f"/ogc/collections/{layer}/tiles/{TMS}/{z}/{row}/{col}?f={f}",
                      headers=headers or {})


def props(content: bytes, layer: str) -> list[dict]:
    return [f["properties"] for f in mapbox_vector_tile.decode(content)[layer]["features"]]


def cached_files(layer: str) -> list:
    from jmgeo.ogc.tilecache import database_namespace, tile_cache

    root = tile_cache().root / database_namespace() / layer
    return [p for p in root.rglob("*.mvt")] if root.exists() else []


def current_table(db, layer: str) -> str:
    return db.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = "
                      "l.id AND v.version = l.current_version WHERE l.name = %s",
                      (layer,)).fetchone()[0]


def test_cache_hit_returns_identical_bytes_and_new_version_new_tiles(app_client, world, db):
    row, col = tile_of(14, *IN_PENGJIANG)
    first = fetch(app_client, LAYER, 14, row, col)
    assert first.status_code == 200, first.text
    assert any(p.read_bytes() == first.content for p in cached_files(LAYER))
    # behind the cache's back (a version's table never changes in the product): a hit
    # still answers the cached bytes
    db.execute(f"UPDATE {current_table(db, LAYER)} SET dkmc = '改过的名称'")
    second = fetch(app_client, LAYER, 14, row, col)
    assert second.status_code == 200
    assert second.content == first.content
    assert props(second.content, LAYER)[0]["dkmc"] == "北街地块"
    # a new version is a new key: never answered with the old version's tile
    version = db.execute("SELECT current_version FROM layer WHERE name = %s",
                         (LAYER,)).fetchone()[0]
    _publish(db, version + 1, "新版地块")
    third = fetch(app_client, LAYER, 14, row, col)
    assert third.status_code == 200
    assert props(third.content, LAYER)[0]["dkmc"] == "新版地块"


def test_empty_tiles_are_cached_as_204(app_client, world):
    before = len(cached_files(LAYER))
    assert fetch(app_client, LAYER, 14, 0, 0).status_code == 204
    assert fetch(app_client, LAYER, 14, 0, 0).status_code == 204
    assert len(cached_files(LAYER)) == before + 1


def test_seed_fills_the_cache(app_client, world, capsys):
    from jmgeo.cli import main
    from jmgeo.ogc.tileseed import seed

    name = layer_name("open")
    out = seed(name, [12, 13], region="440703")
    # the two 蓬江 features at z12/z13, and every other tile touching 蓬江 ∩ the data
    assert out["made"] >= 2 and out["tiles"] == out["made"] + out["empty"] + out["cached"]
    files = cached_files(name)
    assert len(files) >= out["made"]
    # a request now answers the seeded bytes
    row, col = tile_of(13, 113.08, 22.58)
    r = fetch(app_client, name, 13, row, col)
    assert r.status_code == 200
    assert r.content in {p.read_bytes() for p in files}
    assert props(r.content, name)[0]["qlr"] == "陈*明"  # seeded as the public sees it
    # the command: everything is already there
    assert main(["tiles", "seed", name, "--zoom", "12-13", "--region", "440703",
                 "--no-progress"]) == 0
    assert f"0 made, 0 empty, {out['tiles']} already cached" in capsys.readouterr().out


def test_seed_refuses_non_open_layers(world, capsys):
    from jmgeo.cli import main

    assert main(["tiles", "seed", layer_name("conditional"), "--zoom", "12"]) == 2
    assert "only open layers" in capsys.readouterr().err
    assert main(["tiles", "seed", layer_name("open"), "--zoom", "14-8"]) == 2


def test_conditional_tiles_are_not_cached_across_callers(app_client, world):
    cond = layer_name("conditional")
    row, col = tile_of(8, 113.08, 22.58)  # holds all four features
    ids = []
    for who in ("limited_grant", "owner", "limited_grant"):
        r = fetch(app_client, cond, 8, row, col, auth(world[who]))
        assert r.status_code == 200, r.text
        feats = mapbox_vector_tile.decode(r.content)[cond]["features"]
        ids.append({f["id"] for f in feats})
        if who == "limited_grant":
            assert all(set(f["properties"]) == set(GRANT_FIELDS) for f in feats)
    assert ids == [{1, 2}, {1, 2, 3, 4}, {1, 2}]
    assert cached_files(cond) == []


def test_open_layer_owner_and_public_never_share_a_tile(app_client, world):
    name = layer_name("open")
    row, col = tile_of(15, 113.08, 22.58)
    public = fetch(app_client, name, 15, row, col)
    owner = fetch(app_client, name, 15, row, col, auth(world["owner"]))
    public2 = fetch(app_client, name, 15, row, col)
    assert props(public.content, name)[0]["qlr"] == "陈*明"
    assert props(owner.content, name)[0]["qlr"] == "陈大明"
    assert public2.content == public.content


def test_tilejson(app_client, world):
    coll = app_client.get(f"/ogc/collections/{LAYER}?f=json").json()
    (link,) = [lk for lk in coll["links"] if lk["href"].endswith(f"/{TMS}/tilejson.json")]
    assert link["rel"] == "describedby"
    r = app_client.get(link["href"])
    assert r.status_code == 200, r.text
    tj = r.json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"] == [f"http://testserver/ogc/collections/{LAYER}/tiles/{TMS}"
                           "/{z}/{y}/{x}?f=mvt"]
    assert (tj["minzoom"], tj["maxzoom"]) == (0, 22)
    assert tj["bounds"] == pytest.approx([113.08, 22.58, 113.09, 22.59])  # the data's
    (vl,) = tj["vector_layers"]
    assert vl["id"] == LAYER
    assert set(vl["fields"]) == {"dkmc", "mj"}
    assert vl["fields"]["dkmc"].startswith("地块名称")
    # the grantee's TileJSON: its fields, and bounds of its rows only (蓬江区)
    cond = layer_name("conditional")
    tj = app_client.get(f"/ogc/collections/{cond}/tiles/{TMS}/tilejson.json",
                        headers=auth(world["limited_grant"])).json()
    assert set(tj["vector_layers"][0]["fields"]) == set(GRANT_FIELDS)
    assert tj["bounds"] == pytest.approx([113.07, 22.58, 113.08, 22.61])
    # hidden: like a layer that does not exist
    assert app_client.get(f"/ogc/collections/{cond}/tiles/{TMS}/tilejson.json"
                          ).status_code == 404


def test_default_style_is_valid_and_references_the_tilejson(app_client, world):
    from layers.styles import symbology, validate_style

    coll = app_client.get(f"/ogc/collections/{LAYER}?f=json").json()
    (link,) = [lk for lk in coll["links"] if lk["rel"] == "stylesheet"]
    r = app_client.get(link["href"])
    assert r.status_code == 200, r.text
    style = validate_style(r.json())
    assert style["version"] == 8
    source = style["sources"][LAYER]
    assert source["type"] == "vector"
    assert source["url"].endswith(f"/collections/{LAYER}/tiles/{TMS}/tilejson.json")
    tj = app_client.get(source["url"]).json()
    kinds = [lyr["type"] for lyr in style["layers"]]
    assert kinds == ["fill", "line", "symbol"]  # a polygon layer, labelled
    for lyr in style["layers"]:
        assert lyr["source"] == LAYER and lyr["source-layer"] == tj["vector_layers"][0]["id"]
    assert symbology(style)["label_field"] == "dkmc"  # 地块名称
    glyphs = style["glyphs"].replace("{fontstack}", "Noto Sans Regular").replace(
        "{range}", "0-255")
    assert app_client.get(glyphs).status_code == 200
    listing = app_client.get(f"/ogc/collections/{LAYER}/styles").json()
    assert listing["default"] == "default"
    # points get circles; a masked person name is never the label
    pts = app_client.get(f"/ogc/collections/{layer_name('open')}/styles/default").json()
    assert [lyr["type"] for lyr in pts["layers"]] == ["circle", "symbol"]
    assert symbology(pts)["label_field"] == "name"


def test_style_replace_is_the_owners(app_client, world, db, tmp_path, capsys):
    from jmgeo.cli import main

    name = layer_name("unconditional")
    url = f"/ogc/collections/{name}/styles/default"
    mine = {"version": 8, "name": "自定义", "sources": {"s": {"type": "vector", "url":
            f"http://testserver/ogc/collections/{name}/tiles/{TMS}/tilejson.json"}},
            "layers": [{"id": "pts", "type": "circle", "source": "s", "source-layer": name,
                        "paint": {"circle-color": "#ff0000"}}]}
    body = json.dumps(mine)
    assert app_client.put(url, content=body, headers=auth(world["unrelated"])
                          ).status_code == 403
    assert app_client.put(url, content=body).status_code in (401, 403, 404)
    assert app_client.put("/ogc/collections/no_such_layer/styles/default", content=body,
                          headers=auth(world["owner"])).status_code == 404
    bad = app_client.put(url, content=json.dumps({**mine, "version": 7}),
                         headers=auth(world["owner"]))
    assert bad.status_code == 400 and "version" in bad.json()["description"]
    ok = app_client.put(url, content=body, headers=auth(world["owner"]))
    assert ok.status_code == 200, ok.text
    assert app_client.get(url, headers=auth(world["unrelated"])).json() == mine
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'layer.style' AND "
                      "layer = %s", (name,)).fetchone()[0] >= 1
    # the command: a department that does not own the layer is refused; the owner is not
    path = tmp_path / "style.json"
    path.write_text(json.dumps({**mine, "name": "命令行样式"}), encoding="utf-8")
    assert main(["layer", "style", name, str(path), "--dept", "hb"]) == 2
    assert "owner" in capsys.readouterr().err
    assert main(["layer", "style", name, str(path), "--dept", "gtzy"]) == 0
    assert app_client.get(url).status_code == 404  # unconditional: not for the public
    assert app_client.get(url, headers=auth(world["owner"])).json()["name"] == "命令行样式"
    path.write_text("{not json", encoding="utf-8")
    assert main(["layer", "style", name, str(path)]) == 2
    assert "JSON" in capsys.readouterr().err
    assert main(["layer", "style", name, "--reset"]) == 0
    assert app_client.get(url, headers=auth(world["owner"])).json()["metadata"][
        "jmgeo:default"] is True


@pytest.mark.parametrize("f", ["png", "jpeg", "json"])
def test_non_mvt_format_on_vector_tiles_is_400(app_client, world, f):
    row, col = tile_of(14, *IN_PENGJIANG)
    r = fetch(app_client, LAYER, 14, row, col, f=f)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "InvalidParameterValue"
    assert f"f={f}" in body["description"] and "mvt" in body["description"]
    # the same for a collection that does not exist (no oracle)
    assert fetch(app_client, "no_such_layer", 14, row, col, f=f).status_code == 400
