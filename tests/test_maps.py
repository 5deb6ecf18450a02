"""Map images (OGC API - Maps): fetched through the app, decoded with Pillow, pixel-checked.

The regions collection (the framework's county polygons) and the policy test layers
(``policy_fixtures``: four points, two in 蓬江区 and two in 台山市) are drawn as PNG/JPEG
maps and map tiles in WebMercatorQuad and CGCS2000Quad. Checked: the image is what was
asked for (format, size) and not blank; an EPSG:4490 bbox in its authority order (lat,
lon) draws what the CRS84 box draws; a hidden layer answers like a nonexistent one; a
region-scoped grant draws no pixel where the other region's features are; non-open maps
are audited and private; bad parameters are 400s naming the parameter. Styles: an image
is drawn in the colour of the layer's MapLibre style (read from the served style
document, not assumed), a replaced style changes the pixels and a reset restores them.
Rasters: a small COG (a west → east gradient) registered open and conditional draws a
coloured, not blank, image; the region-scoped grant draws only its region's pixels.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from policy_fixtures import FEATURES, GRANT_REGION, build_world, layer_name

from jmgeo.ogc import render
from jmgeo.ogc.rastermaps import RAMP

# 江门市 (all seven counties) in CRS84, and the same box in EPSG:4490's lat, lon order
JIANGMEN = (112.3, 21.4, 113.3, 22.9)
JIANGMEN_4490 = (21.4, 112.3, 22.9, 113.3)
# a box around the four policy test points (蓬江区 and 台山市)
POINTS_BOX = (112.70, 22.20, 113.15, 22.65)
MAPS_CORE = "http://www.opengis.net/spec/ogcapi-maps-1/1.0/conf/core"


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def get_map(client, collection, headers=None, **params):
    params = {k.replace("_", "-"): v for k, v in params.items()}
    return client.get(f"/ogc/collections/{collection}/map", params=params,
                      headers=headers or {})


def image_of(response, fmt="PNG") -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    assert image.format == fmt
    return image


def alpha(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"))[:, :, 3]


def box(values) -> str:
    return ",".join(str(v) for v in values)


def pixel(lon, lat, bbox, width, height) -> tuple[int, int]:
    """(column, row) of lon/lat in a lon/lat image of ``bbox``."""
    return (int((lon - bbox[0]) / (bbox[2] - bbox[0]) * width),
            int((bbox[3] - lat) / (bbox[3] - bbox[1]) * height))


def around(a: np.ndarray, col: int, row: int, r: int = 3) -> np.ndarray:
    return a[max(row - r, 0):row + r + 1, max(col - r, 0):col + r + 1]


# -- images -------------------------------------------------------------------------


def test_regions_png_is_the_asked_size_and_not_blank(app_client, world):
    r = get_map(app_client, "regions", bbox=box(JIANGMEN), width=300, height=200, f="png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    image = image_of(r)
    assert image.size == (300, 200)
    a = alpha(image)
    assert (a > 0).sum() > 300 * 200 // 4  # the counties fill most of the box
    assert (a == 0).any()  # the sea south of 台山 stays transparent
    # outlines are darker than the translucent fill: both are drawn
    rgb = np.asarray(image.convert("RGBA"))[:, :, :3].astype(int)
    opaque = a > 200
    assert opaque.any() and ((a > 0) & (a < 200)).any()
    assert rgb[opaque].sum(axis=1).min() < 400


def test_jpeg_has_no_transparency_and_is_not_blank(app_client, world):
    r = get_map(app_client, "regions", bbox=box(JIANGMEN), width=160, height=240, f="jpeg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    image = image_of(r, "JPEG")
    assert image.size == (160, 240) and image.mode == "RGB"
    rgb = np.asarray(image).astype(int)
    assert (rgb.sum(axis=2) < 600).sum() > 1000  # coloured, not the white background


def test_4490_bbox_is_lat_lon_and_draws_the_same(app_client, world):
    crs84 = get_map(app_client, "regions", bbox=box(JIANGMEN), width=200, height=300)
    lat_lon = get_map(app_client, "regions", bbox=box(JIANGMEN_4490), bbox_crs=
                      "http://www.opengis.net/def/crs/EPSG/0/4490", width=200, height=300)
    assert lat_lon.status_code == 200, lat_lon.text
    assert np.array_equal(alpha(image_of(crs84)), alpha(image_of(lat_lon)))


def test_web_mercator_map_and_default_size(app_client, world):
    west, south = 12501000.0, 2435000.0  # 江门 in EPSG:3857
    r = get_map(app_client, "regions", bbox=box((west, south, west + 120000, south + 180000)),
                bbox_crs="http://www.opengis.net/def/crs/EPSG/0/3857", width=200)
    assert r.status_code == 200, r.text
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    image = image_of(r)
    assert image.size == (200, 300)  # the height follows the box's aspect
    assert (alpha(image) > 0).sum() > 1000
    # without any box: the collection's extent, 512 wide
    r = get_map(app_client, "regions")
    assert r.status_code == 200 and image_of(r).width == 512


# -- map tiles ----------------------------------------------------------------------


def tile_of(tms: str, z: int, lon: float, lat: float) -> tuple[int, int]:
    if tms == "WebMercatorQuad":
        n = 2 ** z
        return (int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n),
                int((lon + 180) / 360 * n))
    size = 180 / 2 ** z
    return int((90 - lat) / size), int((lon + 180) / size)


@pytest.mark.parametrize("tms", ["WebMercatorQuad", "CGCS2000Quad"])
def test_map_tiles(app_client, world, tms):
    row, col = tile_of(tms, 10, 113.08, 22.58)  # inside 蓬江区
    r = app_client.get(f"/ogc/collections/regions/map/tiles/{tms}/10/{row}/{col}?f=png")
    assert r.status_code == 200, r.text
    image = image_of(r)
    assert image.size == (256, 256)
    assert (alpha(image) > 0).sum() > 256 * 256 // 2
    # far from Jiangmen: a transparent tile, not an error
    r = app_client.get(f"/ogc/collections/regions/map/tiles/{tms}/10/0/0?f=png")
    assert r.status_code == 200 and not alpha(image_of(r)).any()
    # outside the matrix: 400 naming the parameter (the vector tiles' check)
    r = app_client.get(f"/ogc/collections/regions/map/tiles/{tms}/3/999/0?f=png")
    assert r.status_code == 400 and "tileRow" in r.json()["description"]
    r = app_client.get("/ogc/collections/regions/map/tiles/NoSuchQuad/3/0/0?f=png")
    assert r.status_code == 400 and "tileMatrixSetId" in r.json()["description"]


# -- policy -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["map", "map?bbox=112,22,113,23&f=png",
                                  "map/tiles/WebMercatorQuad/8/111/208?f=png"])
@pytest.mark.parametrize("caller,cls", [("anonymous", "conditional"),
                                        ("anonymous", "unconditional"),
                                        ("unrelated", "not_shared"),
                                        ("expired_grant", "conditional")])
def test_hidden_layer_answers_like_nonexistent(app_client, world, path, caller, cls):
    headers = auth(world[caller])
    hidden = app_client.get(f"/ogc/collections/{layer_name(cls)}/{path}", headers=headers)
    missing = app_client.get(f"/ogc/collections/tpol_never_existed/{path}", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert hidden.headers["content-type"] == missing.headers["content-type"]


def test_region_grant_draws_only_its_region(app_client, world):
    cond = layer_name("conditional")
    size = 450
    params = {"bbox": box(POINTS_BOX), "width": size, "height": size}
    owner = alpha(image_of(get_map(app_client, cond, auth(world["owner"]), **params)))
    grantee = get_map(app_client, cond, auth(world["limited_grant"]), **params)
    assert grantee.status_code == 200, grantee.text
    grantee = alpha(image_of(grantee))
    for _fid, lon, lat, county, *_ in FEATURES:
        col, row = pixel(lon, lat, POINTS_BOX, size, size)
        assert around(owner, col, row).max() > 0  # the owner sees all four points
        if county == "440703":  # the grant's region
            assert around(grantee, col, row).max() > 0
        else:  # 台山市: not one pixel of it
            assert around(grantee, col, row, 8).max() == 0
    # nothing else was drawn for the grantee either
    assert (grantee > 0).sum() < (owner > 0).sum()


def test_non_open_maps_are_audited_and_private(app_client, world, db):
    cond = layer_name("conditional")

    def count(layer):
        return db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                          "'ogc.map'", (layer,)).fetchone()[0]

    before = count(cond)
    r = get_map(app_client, cond, auth(world["limited_grant"]), bbox=box(POINTS_BOX))
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    row, col = tile_of("CGCS2000Quad", 9, 113.08, 22.58)
    r = app_client.get(f"/ogc/collections/{cond}/map/tiles/CGCS2000Quad/9/{row}/{col}",
                       headers=auth(world["limited_grant"]))
    assert r.status_code == 200 and alpha(image_of(r)).any()
    assert count(cond) == before + 2
    # open data is not audited, and may be cached publicly
    before = count("regions")
    r = get_map(app_client, "regions", bbox=box(JIANGMEN))
    assert r.headers["cache-control"].startswith("public")
    assert count("regions") == before


# -- parameters and declarations ----------------------------------------------------


def test_unsupported_format_is_400_naming_the_formats(app_client, world):
    r = get_map(app_client, "regions", bbox=box(JIANGMEN), f="gif")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert "png" in r.json()["description"] and "jpeg" in r.json()["description"]


@pytest.mark.parametrize("params,name", [
    ({"bbox": "112,22,113"}, "bbox"),
    ({"bbox": "113,22,112,23"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "112,22,113,23", "bbox-crs": "EPSG:4490"}, "bbox"),  # lat 112: lon/lat sent
    ({"bbox-crs": "EPSG:999999"}, "bbox-crs"),
    ({"crs": "EPSG:4547"}, "crs"),
    ({"width": "0"}, "width"),
    ({"height": "100000"}, "height"),
])
def test_bad_parameters_are_400_naming_them(app_client, world, params, name):
    r = app_client.get("/ogc/collections/regions/map", params=params)
    assert r.status_code == 400, r.headers
    assert name in r.json()["description"]


def test_table_has_no_map(app_client, world):
    r = get_map(app_client, layer_name("open", "table"))
    assert r.status_code == 400 and "no map" in r.json()["description"]


def test_maps_are_declared(app_client, world):
    assert MAPS_CORE in app_client.get("/ogc/conformance?f=json").json()["conformsTo"]
    links = app_client.get("/ogc/collections/regions?f=json").json()["links"]
    assert any(link["rel"].endswith("/map") and link["type"] == "image/png"
               for link in links)
    oas = app_client.get("/ogc/openapi?f=json").json()
    f = next(p for p in oas["paths"]["/collections/regions/map"]["get"]["parameters"]
             if p.get("name") == "f")
    assert f["schema"]["enum"] == ["png", "jpeg"]
    tiles = oas["paths"]["/collections/regions/map/tiles/{tileMatrixSetId}/{tileMatrix}/"
                         "{tileRow}/{tileCol}"]["get"]
    tms = next(p for p in tiles["parameters"] if p["name"] == "tileMatrixSetId")
    assert {"WebMercatorQuad", "CGCS2000Quad"} <= set(tms["schema"]["enum"])


# -- the renderer itself ------------------------------------------------------------


def test_renderer_fills_polygons_keeps_holes_strokes_lines_and_draws_points():
    from shapely import LineString, Point, Polygon, to_wkb

    frame = render.Frame(0, 0, 100, 100, 100, 100)  # one map unit per pixel
    square = Polygon([(10, 10), (60, 10), (60, 60), (10, 60)],
                     [[(25, 25), (45, 25), (45, 45), (25, 45)]])
    line = LineString([(70, 10), (90, 90)])
    point = Point(20, 85)
    png = render.render(frame, [to_wkb(g) for g in (square, line, point)])
    a = alpha(Image.open(io.BytesIO(png)))
    assert a[100 - 17, 17] > 0  # inside the ring (image rows run top-down)
    assert a[100 - 35, 35] == 0  # the hole stays empty
    assert a[100 - 10, 30] > 200  # the outline is opaque
    assert a[50, 80] > 0  # the line, halfway
    assert a[100 - 85, 20] > 200 and a[100 - 85, 30] == 0  # a circle of radius ~4 px
    assert a[5, 5] == 0  # and nothing elsewhere
    assert render.default_style("polygon").fill is not None


def test_renderer_reads_maplibre_paint_values():
    poly = render.style_from_paint("polygon", {"fill-color": "#00ff00", "fill-opacity": 0.5,
                                               "line-color": "rgba(255, 0, 0, 0.5)",
                                               "line-width": 3})
    assert poly.fill == (0, 255, 0, 128) and poly.stroke == (255, 0, 0, 128)
    assert poly.stroke_width == 3
    # an expression it cannot evaluate: the default's colour, never a crash
    fallback = render.style_from_paint("polygon", {"fill-color": None, "line-width": 2})
    assert fallback.fill == render.default_style("polygon").fill
    point = render.style_from_paint("point", {"circle-color": "hsl(240, 100%, 50%)",
                                              "circle-radius": 7})
    assert point.fill == (0, 0, 255, 255) and point.radius == 7 and point.stroke is None
    line = render.style_from_paint("line", {"line-color": "#0000ff80"})
    assert line.stroke == (0, 0, 255, 128)
    assert render.css_colour("not-a-colour") is None


def test_style_paint_reading():
    from layers.styles import literal, paint_for

    style = {"version": 8, "sources": {"s": {"type": "vector"}}, "layers": [
        {"id": "bg", "type": "background", "paint": {"background-color": "#000"}},
        {"id": "other", "type": "fill", "source": "s", "source-layer": "elsewhere",
         "paint": {"fill-color": "#111111"}},
        {"id": "hidden", "type": "fill", "source": "s", "layout": {"visibility": "none"},
         "paint": {"fill-color": "#222222"}},
        {"id": "pts", "type": "circle", "source": "s", "source-layer": "x",
         "filter": ["==", ["geometry-type"], "Point"], "paint": {"circle-radius": 3}},
        {"id": "f", "type": "fill", "source": "s", "source-layer": "x",
         "filter": ["==", "$type", "Polygon"],
         "paint": {"fill-color": ["match", ["get", "k"], "a", "#ff0000", "#00ff00"],
                   "fill-opacity": ["interpolate", ["linear"], ["zoom"], 5, 0.1, 15, 1]}},
    ]}
    assert paint_for(style, "polygon", "x") == {"fill-color": "#00ff00"}  # match fallback
    assert paint_for(style, "point", "x") == {"circle-radius": 3}
    assert paint_for(style, "line", "x") == {}
    assert literal(["literal", 2]) == 2 and literal(["get", "w"]) is None


# -- styles ---------------------------------------------------------------------------

PARCEL = "tmap_parcel"
SQUARE = (113.05, 22.56, 113.10, 22.61)  # inside 蓬江区


@pytest.fixture(scope="module")
def parcel(database_url, world):
    """An open polygon layer (one square, theme water) owned by 国土资源局 (gtzy)."""
    import psycopg

    from layers.registry import Column, create_data_table, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (PARCEL,)).fetchone():
            with conn.transaction():
                table = create_data_table(conn, PARCEL, 1, "MultiPolygon", [Column("name")],
                                          title=PARCEL)
                conn.execute(f"INSERT INTO {table} (fid, geom, name) VALUES (1, ST_Multi("
                             "ST_MakeEnvelope(%s, %s, %s, %s, 4490)), '方块')", SQUARE)
                publish(conn, layer=PARCEL, version=1, table_name=table, feature_count=1,
                        report={}, title="地图样式测试", dept="gtzy", theme="water",
                        sharing_class="open")
    return PARCEL


def rgba_of(response) -> np.ndarray:
    return np.asarray(image_of(response).convert("RGBA")).astype(int)


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return tuple(int(value[i:i + 2], 16) for i in (0, 2, 4))


def style_colour(client, collection: str) -> tuple[tuple[int, int, int], float]:
    """The fill colour and opacity of the collection's served MapLibre style."""
    style = client.get(f"/ogc/collections/{collection}/styles/default").json()
    fill = next(lyr for lyr in style["layers"] if lyr["type"] == "fill")
    return hex_rgb(fill["paint"]["fill-color"]), fill["paint"].get("fill-opacity", 1.0)


def interior(rgba: np.ndarray) -> np.ndarray:
    """The centre 20 % of the image (inside the square / inside the counties)."""
    h, w = rgba.shape[:2]
    return rgba[int(h * .4):int(h * .6), int(w * .4):int(w * .6)].reshape(-1, 4)


def test_region_map_uses_the_styles_colour(app_client, world):
    colour, opacity = style_colour(app_client, "regions")
    r = get_map(app_client, "regions", bbox=box((113.0, 22.5, 113.1, 22.6)), width=200,
                height=200)  # all inside 蓬江区
    inside = interior(rgba_of(r))
    assert np.abs(inside[:, :3] - colour).max() <= 3  # the style's fill colour …
    assert np.abs(inside[:, 3] - round(opacity * 255)).max() <= 3  # … and its opacity


def test_a_replaced_style_changes_the_pixels(app_client, world, parcel):
    url = f"/ogc/collections/{parcel}/styles/default"
    owner = auth(world["owner"])
    params = {"bbox": box((113.04, 22.55, 113.11, 22.62)), "width": 140, "height": 140}
    colour, opacity = style_colour(app_client, parcel)
    before = rgba_of(get_map(app_client, parcel, **params))
    assert np.abs(interior(before)[:, :3] - colour).max() <= 3
    assert np.abs(interior(before)[:, 3] - round(opacity * 255)).max() <= 3
    mine = {"version": 8, "sources": {parcel: {"type": "vector", "url": "x"}}, "layers": [
        {"id": "f", "type": "fill", "source": parcel, "source-layer": parcel,
         "paint": {"fill-color": "#00c000", "fill-opacity": 1}},
        {"id": "o", "type": "line", "source": parcel, "source-layer": parcel,
         "paint": {"line-color": "#ff00ff", "line-width": 4}}]}
    assert app_client.put(url, json=mine, headers=owner).status_code == 200
    try:
        after = rgba_of(get_map(app_client, parcel, **params))
        assert (interior(after) == [0, 192, 0, 255]).all()  # opaque green now
        # the outline is the style's magenta, 4 px wide, on the square's edge
        col, row = pixel(113.05, 22.585, (113.04, 22.55, 113.11, 22.62), 140, 140)
        edge = around(after, col, row, 1).reshape(-1, 4)
        assert (np.abs(edge - [255, 0, 255, 255]).max(axis=1) <= 10).any()
        assert not (after == before).all()
    finally:
        assert app_client.put(url, content=b"null", headers=owner).status_code == 200
    reset = rgba_of(get_map(app_client, parcel, **params))
    assert np.array_equal(reset, before)


# -- rasters --------------------------------------------------------------------------

DEM, DEM_COND = "tmap_dem", "tmap_dem_cond"
R_WEST, R_NORTH, R_RES, R_SIZE = 112.60, 22.70, 0.01, 60  # 112.6–113.2 E, 22.1–22.7 N
R_BOX = (R_WEST, R_NORTH - R_RES * R_SIZE, R_WEST + R_RES * R_SIZE, R_NORTH)


@pytest.fixture(scope="module")
def rasters(database_url, world, tmp_path_factory):
    """A 60×60 COG whose value rises west → east (with a nodata corner), registered open
    and conditional (granted to 规划局 gh for 蓬江区 only)."""
    import psycopg
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin

    from layers.grants import add_grant, list_grants
    from layers.registry import publish

    values = np.tile(np.arange(R_SIZE, dtype="float32") * 10, (R_SIZE, 1))
    values[:5, :5] = -9999.0  # nodata in the north-west corner
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, cls in ((DEM, "open"), (DEM_COND, "conditional")):
            if conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone():
                continue
            path = tmp_path_factory.mktemp("cog") / f"{name}_v1.tif"
            with MemoryFile() as mem:
                with mem.open(driver="GTiff", width=R_SIZE, height=R_SIZE, count=1,
                              dtype="float32", crs="EPSG:4490", nodata=-9999.0,
                              transform=from_origin(R_WEST, R_NORTH, R_RES, R_RES)) as ds:
                    ds.write(values, 1)
                with mem.open() as src:
                    rio_copy(src, str(path), driver="COG")
            publish(conn, layer=name, version=1, table_name=f"file:{path}", feature_count=0,
                    report={"kind": "raster"}, title=f"地图栅格 {cls}", dept="gtzy",
                    theme="land", sharing_class=cls, kind="raster")
        if not list_grants(conn, layer=DEM_COND):
            add_grant(conn, layer=DEM_COND, dept="gh", purpose="地图测试",
                      approved_by="测试审批人", regions=[GRANT_REGION], notes="tmap")
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM layer WHERE name = ANY(%s)", ([DEM, DEM_COND],))


def test_raster_map_is_coloured_by_value_and_not_blank(app_client, world, rasters):
    size = 300
    r = get_map(app_client, DEM, bbox=box(R_BOX), width=size, height=size)
    assert r.status_code == 200, r.text
    rgba = rgba_of(r)
    assert (rgba[:, :, 3] > 0).mean() > 0.9  # all but the nodata corner
    col, row = pixel(R_WEST + 0.02, 22.4, R_BOX, size, size)  # low values: the ramp's start
    assert np.abs(rgba[row, col, :3] - RAMP[0][1]).max() <= 25
    col, row = pixel(R_BOX[2] - 0.02, 22.4, R_BOX, size, size)  # high: the ramp's end
    assert np.abs(rgba[row, col, :3] - RAMP[-1][1]).max() <= 25
    col, row = pixel(R_WEST + 0.02, R_NORTH - 0.02, R_BOX, size, size)
    assert rgba[row, col, 3] == 0  # nodata stays transparent
    # a map tile in Web Mercator and outside the raster: transparent, not an error
    trow, tcol = tile_of("WebMercatorQuad", 10, 113.08, 22.58)
    t = app_client.get(f"/ogc/collections/{DEM}/map/tiles/WebMercatorQuad/10/{trow}/{tcol}")
    assert t.status_code == 200 and alpha(image_of(t)).mean() > 200
    far = get_map(app_client, DEM, bbox=box((100, 30, 101, 31)), width=50)
    assert far.status_code == 200 and not alpha(image_of(far)).any()
    links = app_client.get(f"/ogc/collections/{DEM}?f=json").json()["links"]
    assert any(link["rel"].endswith("/map") for link in links)


def test_raster_map_obeys_the_region_grant(app_client, world, rasters):
    size = 300
    params = {"bbox": box(R_BOX), "width": size, "height": size}
    assert get_map(app_client, DEM_COND, **params).status_code == 404  # anonymous
    assert get_map(app_client, DEM_COND, auth(world["unrelated"]), **params
                   ).status_code == 404
    owner = alpha(image_of(get_map(app_client, DEM_COND, auth(world["owner"]), **params)))
    granted = get_map(app_client, DEM_COND, auth(world["limited_grant"]), **params)
    assert granted.status_code == 200, granted.text
    granted = alpha(image_of(granted))
    for _fid, lon, lat, county, *_ in FEATURES:
        col, row = pixel(lon, lat, R_BOX, size, size)
        assert around(owner, col, row).min() > 0
        if county == GRANT_REGION:
            assert around(granted, col, row, 1).min() > 0
        else:  # 台山市: not one pixel
            assert around(granted, col, row, 8).max() == 0
    assert 0 < (granted > 0).sum() < (owner > 0).sum()
