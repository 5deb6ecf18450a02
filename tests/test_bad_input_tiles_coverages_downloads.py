"""Hostile and malformed input to tiles, coverages and downloads: never a server error.

Malformed bbox / bbox-crs / subset, absurd or non-numeric tile coordinates, unknown tile
matrix sets, NUL bytes, SQL-looking layer names and region codes — every answer is a
4xx (or a 2xx/204 where the input is valid), never 5xx.
"""

from __future__ import annotations

import itertools

from test_coverages import OPEN
from test_coverages import world as coverage_world  # noqa: F401
from test_downloads import client  # noqa: F401

BBOXES = ["", "1,2,3", "a,b,c,d", "113,22,112,21", "0,0,1,1", "112.9,22.3,113.0,22.4,1,2",
          "1e309,0,1,1", "nan,nan,nan,nan", "-1000,-1000,1000,1000"]
BBOX_CRS = [None, "EPSG:4326", "http://www.opengis.net/def/crs/EPSG/0/3857", "bogus",
            "http://www.opengis.net/def/crs/EPSG/0/99999"]
SUBSETS = ["Lat(22.3:22.4)", "Long(112.9:113)", "x(1:2)", "Lat(a:b)", "Lat(22.4:22.3)",
           "Lat(1:2),Long(3:4)"]
TILES = [("99999999999999999999", 0, 0), ("-0", "0", "0"), ("%00", 0, 0), ("1", "0", "1e3"),
         ("0", "0", "0"), ("12", "-1", "3")]
TMS = ["WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad", "x", "%00"]
LAYERS = ["tpol_open", "x" * 300, "'; drop table layer; --", "tpol_open%00", "TPOL_OPEN"]
REGIONS = [None, "440703", "'", "4407030010000000000000", "", "44070%00"]


def requests():
    for b, crs, f in itertools.product(BBOXES, BBOX_CRS, ["json", "GTiff", "html", "xyz"]):
        p = {"bbox": b, "f": f}
        if crs:
            p["bbox-crs"] = crs
        yield f"/ogc/collections/{OPEN}/coverage", p
    for s in SUBSETS:
        yield f"/ogc/collections/{OPEN}/coverage", {"subset": s, "f": "json"}
    for (z, y, x), tms in itertools.product(TILES, TMS):
        yield f"/ogc/collections/regions/tiles/{tms}/{z}/{y}/{x}", {"f": "mvt"}
        yield f"/ogc/collections/regions/tiles/{tms}/{z}/{y}/{x}", {}
        yield f"/ogc/collections/regions/tiles/{tms}/metadata", {"f": "tilejson"}
        yield f"/ogc/collections/regions/tiles/{tms}", {"f": "html"}
    for layer, fmt, reg in itertools.product(LAYERS, ["gpkg", "csv", "", "GPKG"], REGIONS):
        p = {"format": fmt}
        if reg is not None:
            p["region"] = reg
        yield f"/downloads/{layer}", p


def test_no_server_error(client, coverage_world):  # noqa: F811
    bad = []
    n = 0
    served = set()
    for path, params in requests():
        r = client.get(path, params=params)
        n += 1
        if r.status_code == 200:
            served.add(path.split("/")[1 if path.startswith("/downloads") else 4])
        if r.status_code >= 500:
            bad.append((path, params, r.status_code, r.text[:200]))
    assert n > 300
    assert {"downloads", "coverage", "tiles"} <= served  # real layers were hit too
    assert bad == []
