"""The access matrix for the ways out of issue 5 items 5–7, issue 11 §2 and §4 and issue 12
§5: vector tiles, map images, coverages, downloads, online query (/exchange/query) and
feeds (/exchange/feeds) — callers × sharing classes × these ways, with the expectations,
fixtures and checks of ``test_access_matrix`` (DESIGN.md §5), so a hidden layer answers
exactly like a nonexistent one, fields are limited and masked, a region grant limits the
rows, non-open data is never publicly cacheable and every non-open access writes one audit
row.
"""

from __future__ import annotations

import itertools
import json
import math

import mapbox_vector_tile
import pytest
from policy_fixtures import KINDS
from test_access_matrix import (  # noqa: F401
    ALL_FIDS,
    BY_FID,
    CALLERS,
    CLASSES,
    FEATURES,
    FID_BY_NAME,
    GRANT_REGION,
    Ctx,
    RetiredCtx,
    retired,
    world,
)

# one z8 WebMercatorQuad tile holds all four test features (蓬江区 and 台山市)
Z = 8
COL = int((113.08 + 180) / 360 * 2 ** Z)
ROW = int((1 - math.asinh(math.tan(math.radians(22.58))) / math.pi) / 2 * 2 ** Z)
COUNTY = {f[0]: f[3] for f in FEATURES}


def way_tiles(ctx: Ctx):
    path = f"/ogc/collections/{{c}}/tiles/WebMercatorQuad/{Z}/{ROW}/{COL}"
    if ctx.is_table and ctx.exp.visible:  # a table has no tiles: an error, never data
        mark = ctx.audit_mark()
        for p in (path.format(c=ctx.layer), f"/ogc/collections/{ctx.layer}/tiles"):
            assert ctx.get(p, f="mvt").status_code == 400
        # an attempt may be audited (the OGC audit logs requests), but it carried no rows
        assert all(row[3] in (0, None) for row in ctx.audit_since(mark))
        return
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent(path, f="mvt")
        ctx.like_nonexistent("/ogc/collections/{c}/tiles")
        ctx.like_nonexistent("/ogc/collections/{c}/tiles/WebMercatorQuad/metadata")
        ctx.check_refused(mark, 3)
        return
    mark = ctx.audit_mark()
    r = ctx.get(path.format(c=ctx.layer), f="mvt")
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content)[ctx.layer]["features"]
    assert {f["id"] for f in feats} == set(ctx.exp.fids)
    for f in feats:
        ctx.check_properties(f["id"], f["properties"])
    ctx.check_audit(mark, None, "ogc.tiles")


MAP_BOX = (112.70, 22.20, 113.15, 22.65)  # around all four test features, CRS84
MAP_SIZE = 450


def way_map(ctx: Ctx):
    """Map images (OGC API Maps): exactly the caller's rows are drawn (a pixel check at
    each feature); a table has no map (400, no rows); hidden: like nonexistent."""
    import io

    import numpy as np
    from PIL import Image

    path = "/ogc/collections/{c}/map"
    tile = f"/ogc/collections/{{c}}/map/tiles/WebMercatorQuad/{Z}/{ROW}/{COL}"
    params = {"bbox": ",".join(map(str, MAP_BOX)), "width": MAP_SIZE, "height": MAP_SIZE}
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent(path, f="png", **params)
        ctx.like_nonexistent(tile, f="png")
        ctx.check_refused(mark, 2)
        return
    if ctx.is_table:
        mark = ctx.audit_mark()
        assert ctx.get(path.format(c=ctx.layer), f="png", **params).status_code == 400
        assert all(row[3] in (0, None) for row in ctx.audit_since(mark))
        return
    mark = ctx.audit_mark()
    r = ctx.get(path.format(c=ctx.layer), f="png", **params)
    assert r.status_code == 200, r.headers
    alpha = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[:, :, 3]
    w, s, e, n = MAP_BOX
    for fid, lon, lat, *_ in FEATURES:
        col = int((lon - w) / (e - w) * MAP_SIZE)
        row = int((n - lat) / (n - s) * MAP_SIZE)
        drawn = alpha[row - 6:row + 7, col - 6:col + 7].max() > 0
        assert drawn == (fid in ctx.exp.fids), (fid, ctx.exp.fids)
    ctx.check_audit(mark, None, "ogc.map")


def way_coverage(ctx: Ctx):
    """Vector layers have no coverage: hidden → like nonexistent; visible → 400."""
    if not ctx.exp.visible:
        return ctx.like_nonexistent("/ogc/collections/{c}/coverage")
    assert ctx.get(f"/ogc/collections/{ctx.layer}/coverage").status_code == 400


def way_download_table(ctx: Ctx):
    """A table downloads as XLSX (typed cells; CSV/GBK in test_tables_serve); a geometry
    format or a region is a 400 naming the table formats."""
    import io

    import openpyxl

    mark = ctx.audit_mark()
    r = ctx.get(f"/downloads/{ctx.layer}", format="xlsx")
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    got = {}
    for row in rows:
        props = dict(zip(header, row, strict=True))
        got[FID_BY_NAME[props["name"]]] = props
    assert set(got) == set(ctx.exp.fids)
    for fid, props in got.items():
        ctx.check_properties(fid, props)
    ctx.check_audit(mark, len(ctx.exp.fids), "download")
    for params in ({"format": "geojson"}, {"format": "csv", "region": "440781"}):
        r = ctx.get(f"/downloads/{ctx.layer}", **params)
        assert r.status_code == 400 and "csv, csv-gbk, xlsx" in r.json()["description"] \
            or "region" in r.json()["description"]
    assert ctx.audit_since(mark)[1:] == []


def way_download(ctx: Ctx):
    if ctx.is_table and ctx.exp.visible:
        return way_download_table(ctx)
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        for fmt in ("geojson", "gpkg", "nonsense"):
            ctx.like_nonexistent("/downloads/{c}", format=fmt)
        ctx.like_nonexistent("/downloads/{c}", format="csv", region="440781")
        ctx.check_refused(mark, 4)
        return
    mark = ctx.audit_mark()
    r = ctx.get(f"/downloads/{ctx.layer}", format="geojson")
    assert r.status_code == 200, r.text
    feats = json.loads(r.content)["features"]
    assert {f["id"] for f in feats} == set(ctx.exp.fids)
    for f in feats:
        ctx.check_properties(f["id"], f["properties"])
    ctx.check_audit(mark, len(ctx.exp.fids), "download")
    # a region: intersected with the grant's region scope
    r = ctx.get(f"/downloads/{ctx.layer}", format="geojson", region="440781")
    got = {f["id"] for f in json.loads(r.content)["features"]}
    assert got == {fid for fid in ctx.exp.fids if COUNTY[fid] == "440781"}
    if ctx.exp.fids and all(COUNTY[f] == GRANT_REGION for f in ctx.exp.fids):
        assert got == set()


def way_query(ctx: Ctx):
    """Online query (联机查询): a table by its key ``name``, a vector layer by point (the
    matrix's layers declare no key: by key is a 400). A record outside the grant's region
    answers byte for byte like a missing key; each query of non-open data one audit row."""
    by_key = "/exchange/query/{c}/" + BY_FID[1]["name"]
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent(by_key)
        ctx.like_nonexistent("/exchange/query/{c}", lon=113.08, lat=22.58)
        ctx.check_refused(mark, 2)
        return
    if ctx.is_table:
        missing = ctx.get(f"/exchange/query/{ctx.layer}/不存在的键")
        assert missing.status_code == 404 and "不存在的键" not in missing.text
        for fid in sorted(ALL_FIDS):
            mark = ctx.audit_mark()
            r = ctx.get(f"/exchange/query/{ctx.layer}/{BY_FID[fid]['name']}")
            if fid in ctx.exp.fids:
                assert r.status_code == 200, r.text
                assert "geometry" not in r.json()
                ctx.check_properties(fid, r.json()["properties"])
                ctx.check_audit(mark, 1, "query")
            else:
                assert r.content == missing.content
                ctx.check_audit(mark, 0, "query")
        assert ctx.get(f"/exchange/query/{ctx.layer}", lon=113.08, lat=22.58
                       ).status_code == 400
        return
    assert ctx.get(by_key.format(c=ctx.layer)).status_code == 400  # no declared key
    for fid, lon, lat, *_ in FEATURES:
        mark = ctx.audit_mark()
        r = ctx.get(f"/exchange/query/{ctx.layer}", lon=lon, lat=lat)
        assert r.status_code == 200, r.text
        records = r.json()["records"]
        want = [fid] if fid in ctx.exp.fids else []
        assert [FID_BY_NAME[x["properties"]["name"]] for x in records] == want
        for x in records:
            ctx.check_properties(fid, x["properties"])
        ctx.check_audit(mark, len(want), "query")


def way_feed(ctx: Ctx):
    """系统对接 feeds: a table (key ``name``) in full, exactly the caller's records and
    fields, masked; the matrix's layers declare no key: a 400, never data. Hidden: like a
    nonexistent resource, the versions document too. One audit row per pull (rows: the
    delivery count has them — the audit is written before the stream)."""
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent("/exchange/feeds/{c}")
        ctx.like_nonexistent("/exchange/feeds/{c}", since=1, format="csv")
        ctx.like_nonexistent("/exchange/feeds/{c}/versions")
        ctx.check_refused(mark, 3)
        return
    if not ctx.is_table:
        r = ctx.get(f"/exchange/feeds/{ctx.layer}")
        assert r.status_code == 400 and "--key" in r.json()["description"]
        return
    if "name" not in ctx.exp.fields or "name" in ctx.exp.masked:
        assert ctx.get(f"/exchange/feeds/{ctx.layer}").status_code == 400
        return
    mark = ctx.audit_mark()
    r = ctx.get(f"/exchange/feeds/{ctx.layer}")
    assert r.status_code == 200, r.text
    records = [json.loads(line) for line in r.text.splitlines()]
    assert {FID_BY_NAME[x["key"]] for x in records} == set(ctx.exp.fids)
    for x in records:
        assert x["op"] == "insert"
        ctx.check_properties(FID_BY_NAME[x["key"]], x["properties"])
    ctx.check_audit(mark, None, "feed")
    assert ctx.get(f"/exchange/feeds/{ctx.layer}", since=1).text == ""


def way_items_csv(ctx: Ctx):
    """Items as CSV (f=csv): the GeoJSON page's rows and fields, masked, audited alike;
    hidden: like nonexistent."""
    import csv
    import io

    path = "/ogc/collections/{c}/items"
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent(path, f="csv", limit=100)
        ctx.check_refused(mark, 1)
        return
    mark = ctx.audit_mark()
    r = ctx.get(path.format(c=ctx.layer), f="csv", limit=100)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8").lstrip("\ufeff"))))
    assert {FID_BY_NAME[x["name"]] if ctx.is_table else int(x["fid"]) for x in rows} == \
        set(ctx.exp.fids)
    for x in rows:
        fid = FID_BY_NAME[x["name"]] if ctx.is_table else int(x.pop("fid"))
        wkt = x.pop("WKT", None)
        assert (wkt is None) == ctx.is_table
        props = {k: (float(v) if k == "area" else v) for k, v in x.items()}
        ctx.check_properties(fid, props)
    ctx.check_audit(mark, len(ctx.exp.fids), "ogc.items")  # counted before it became CSV


WAYS = {"tiles": way_tiles, "map": way_map, "coverage": way_coverage,
        "download": way_download, "query": way_query, "feed": way_feed,
        "items_csv": way_items_csv}
MATRIX = list(itertools.product(CALLERS, CLASSES, KINDS, WAYS))


@pytest.fixture(scope="module")
def client(app_client):
    """The app as mounted for users (downloads included)."""
    return app_client


@pytest.mark.parametrize(("caller", "cls", "kind", "way"), MATRIX,
                         ids=[f"{c}-{k}-{t}-{w}" for c, k, t, w in MATRIX])
def test_access_matrix_tiles_coverages_downloads(world, client, db, caller, cls, kind,  # noqa: F811
                                                 way):
    ctx = Ctx(client, db, caller, world[caller].token, cls, kind)
    WAYS[way](ctx)


RETIRED_MATRIX = list(itertools.product(CALLERS, KINDS, WAYS))


@pytest.mark.parametrize(("caller", "kind", "way"), RETIRED_MATRIX,
                         ids=[f"{c}-{k}-{w}" for c, k, w in RETIRED_MATRIX])
def test_retired_resource_is_like_a_missing_one_ways(world, retired, client, db,  # noqa: F811
                                                     caller, kind, way):
    WAYS[way](RetiredCtx(client, db, caller, world[caller].token, kind))
