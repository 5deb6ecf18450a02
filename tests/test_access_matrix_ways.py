"""The access matrix for the ways out of issue 5 items 5–7: vector tiles, coverages and
downloads — callers × sharing classes × these ways, with the expectations, fixtures and
checks of ``test_access_matrix`` (DESIGN.md §5), so a hidden layer answers exactly like a
nonexistent one, fields are limited and masked, a region grant limits the rows, non-open
data is never publicly cacheable and every non-open access writes one audit row.
"""

from __future__ import annotations

import itertools
import json
import math

import mapbox_vector_tile
import pytest
from test_access_matrix import CALLERS, CLASSES, FEATURES, GRANT_REGION, Ctx, world  # noqa: F401

# one z8 WebMercatorQuad tile holds all four test features (蓬江区 and 台山市)
Z = 8
COL = int((113.08 + 180) / 360 * 2 ** Z)
ROW = int((1 - math.asinh(math.tan(math.radians(22.58))) / math.pi) / 2 * 2 ** Z)
COUNTY = {f[0]: f[3] for f in FEATURES}


def way_tiles(ctx: Ctx):
    path = f"/ogc/collections/{{c}}/tiles/WebMercatorQuad/{Z}/{ROW}/{COL}"
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent(path, f="mvt")
        ctx.like_nonexistent("/ogc/collections/{c}/tiles")
        ctx.like_nonexistent("/ogc/collections/{c}/tiles/WebMercatorQuad/metadata")
        assert ctx.audit_since(mark) == []
        return
    mark = ctx.audit_mark()
    r = ctx.get(path.format(c=ctx.layer), f="mvt")
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content)[ctx.layer]["features"]
    assert {f["id"] for f in feats} == set(ctx.exp.fids)
    for f in feats:
        ctx.check_properties(f["id"], f["properties"])
    ctx.check_audit(mark, None, "ogc.tiles")


def way_coverage(ctx: Ctx):
    """Vector layers have no coverage: hidden → like nonexistent; visible → 400."""
    if not ctx.exp.visible:
        return ctx.like_nonexistent("/ogc/collections/{c}/coverage")
    assert ctx.get(f"/ogc/collections/{ctx.layer}/coverage").status_code == 400


def way_download(ctx: Ctx):
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        for fmt in ("geojson", "gpkg", "nonsense"):
            ctx.like_nonexistent("/downloads/{c}", format=fmt)
        ctx.like_nonexistent("/downloads/{c}", format="csv", region="440781")
        assert ctx.audit_since(mark) == []
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


WAYS = {"tiles": way_tiles, "coverage": way_coverage, "download": way_download}
MATRIX = list(itertools.product(CALLERS, CLASSES, WAYS))


@pytest.fixture(scope="module")
def client(app_client):
    """The app as mounted for users (downloads included)."""
    return app_client


@pytest.mark.parametrize(("caller", "cls", "way"), MATRIX,
                         ids=[f"{c}-{k}-{w}" for c, k, w in MATRIX])
def test_access_matrix_tiles_coverages_downloads(world, client, db, caller, cls, way):  # noqa: F811
    ctx = Ctx(client, db, caller, world[caller].token, cls)
    WAYS[way](ctx)
