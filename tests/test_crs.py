"""CRS framework: GCJ-02/BD-09 transforms, the CRS registry, transformers, zones.

Pure Python: no database. Reference values are published test vectors of other
open-source implementations of the same public formulas (cited per constant).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import Point, shape

from spatial import crs as C
from spatial import webcrs as W

# --- published reference vectors ------------------------------------------------
# (wgs_lon, wgs_lat, gcj_lon, gcj_lat)
GCJ_VECTORS = [
    # wandergis/coordtransform, test/app.js ("wgs84togcj02: [116.41024449916938, 39.91640428150164]")
    (116.404, 39.915, 116.41024449916938, 39.91640428150164),
    # googollee/eviltransform, python/test.py TESTS (shanghai, shenzhen, beijing)
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
]
# (gcj_lon, gcj_lat, bd_lon, bd_lat)
BD_VECTORS = [
    # wandergis/coordtransform, test/app.js ("gcj02tobd09: [116.41036949371029, 39.92133699351021]")
    (116.404, 39.915, 116.41036949371029, 39.92133699351021),
    # hujiulong/gcoord, test/fixtures/china-cities.json: 梅州市 and 汕尾市 (Guangdong), GCJ02 → BD09
    (116.1222426, 24.2886182, 116.1287823, 24.2944828),
    (115.3751647, 22.7861903, 115.3817179, 22.7918527),
]
# wandergis/coordtransform, test/app.js: the classic ONE-STEP bd09togcj02(116.404, 39.915)
BD_TO_GCJ_ONESTEP_PUBLISHED = (116.404, 39.915, 116.39762729119315, 39.90865673957631)

GEOD = pyproj.Geod(ellps="WGS84")


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture(scope="module")
def grid() -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = C.JIANGMEN_EXTENT
    lon, lat = np.meshgrid(np.linspace(x0, x1, 100), np.linspace(y0, y1, 100))
    return lon.ravel(), lat.ravel()


# --- webcrs ---------------------------------------------------------------------

@pytest.mark.parametrize("wlon,wlat,glon,glat", GCJ_VECTORS)
def test_wgs84_to_gcj02_matches_published(wlon, wlat, glon, glat):
    lon, lat = W.wgs84_to_gcj02(wlon, wlat)
    assert isinstance(lon, float)
    assert lon == pytest.approx(glon, abs=1e-6)
    assert lat == pytest.approx(glat, abs=1e-6)


@pytest.mark.parametrize("wlon,wlat,glon,glat", GCJ_VECTORS)
def test_gcj02_inverse_recovers_published_wgs(wlon, wlat, glon, glat):
    lon, lat = W.gcj02_to_wgs84(glon, glat)
    assert metres(lon, lat, wlon, wlat) < 0.01


@pytest.mark.parametrize("glon,glat,blon,blat", BD_VECTORS)
def test_gcj02_to_bd09_matches_published(glon, glat, blon, blat):
    lon, lat = W.gcj02_to_bd09(glon, glat)
    assert lon == pytest.approx(blon, abs=1e-6)
    assert lat == pytest.approx(blat, abs=1e-6)
    back = W.bd09_to_gcj02(blon, blat)
    assert metres(*back, glon, glat) < 0.2  # published values are rounded to 1e-7 deg


def test_bd09_onestep_matches_published_and_iteration_differs():
    blon, blat, glon, glat = BD_TO_GCJ_ONESTEP_PUBLISHED
    one = W.bd09_to_gcj02_onestep(blon, blat)
    assert one == pytest.approx((glon, glat), abs=1e-12)
    it = W.bd09_to_gcj02(blon, blat)
    # the iterative answer is the exact inverse; the published one-step is not
    assert np.hypot(*np.subtract(W.gcj02_to_bd09(*it), (blon, blat))) < 1e-9
    assert np.hypot(*np.subtract(W.gcj02_to_bd09(*one), (blon, blat))) > 1e-7


def test_wgs84_to_bd09_composes():
    wlon, wlat, glon, glat = GCJ_VECTORS[2]
    assert W.wgs84_to_bd09(wlon, wlat) == pytest.approx(W.gcj02_to_bd09(glon, glat), abs=1e-6)


def test_gcj_round_trip_grid_under_half_metre_and_onestep_is_worse(grid):
    lon, lat = grid
    assert lon.size == 10_000
    glon, glat = W.wgs84_to_gcj02(lon, lat)
    offset = metres(lon, lat, glon, glat)
    assert 500 < offset.min() and offset.max() < 700  # ~600 m in Jiangmen
    err = metres(lon, lat, *W.gcj02_to_wgs84(glon, glat))
    assert err.max() < 0.5
    assert err.max() < 0.001  # in fact sub-millimetre
    err_one = metres(lon, lat, *W.gcj02_to_wgs84_onestep(glon, glat))
    assert err_one.max() > 0.5  # the iteration matters (≈ 2.7 m here)


def test_bd_round_trip_grid_under_half_metre_and_onestep_is_worse(grid):
    lon, lat = grid
    blon, blat = W.wgs84_to_bd09(lon, lat)
    offset = metres(lon, lat, blon, blat)
    assert 1100 < offset.min() and offset.max() < 1400  # ~1.2 km in Jiangmen
    err = metres(lon, lat, *W.bd09_to_wgs84(blon, blat))
    assert err.max() < 0.5
    err_one = metres(lon, lat, *W.bd09_to_wgs84_onestep(blon, blat))
    assert err_one.max() > 0.5
    # BD-09 → GCJ-02 on its own too
    glon, glat = W.wgs84_to_gcj02(lon, lat)
    assert metres(glon, glat, *W.bd09_to_gcj02(blon, blat)).max() < 0.01


def test_out_of_china_passes_through():
    for f in (W.wgs84_to_gcj02, W.gcj02_to_wgs84):
        assert f(2.35, 48.85) == (2.35, 48.85)  # Paris
    lon, lat = W.wgs84_to_gcj02(np.array([2.35, 113.08]), np.array([48.85, 22.58]))
    assert lon[0] == 2.35 and lon[1] != 113.08


def test_arrays_keep_shape_and_nan():
    lon = np.array([[113.0, np.nan], [112.5, 113.2]])
    lat = np.array([[22.5, 22.5], [np.nan, 22.1]])
    out = W.gcj02_to_wgs84(lon, lat)
    assert out[0].shape == (2, 2)
    assert np.isnan(out[0][0, 1]) and np.isfinite(out[0][1, 1])


# --- registry --------------------------------------------------------------------

@pytest.mark.parametrize("name,code", sorted(C.FRIENDLY_NAMES.items()))
def test_friendly_names(name, code):
    assert C.get_crs(name).to_epsg() == code
    assert C.get_crs(name.upper()) is C.get_crs(code)


def test_friendly_name_targets_are_what_they_say():
    name = {k: C.get_crs(k).name for k in C.FRIENDLY_NAMES}
    assert "CM 111E" in name["cgcs2000-gk37"] and "CM 114E" in name["cgcs2000-gk38"]
    assert "zone 37" in name["cgcs2000-gk37z"] and "zone 38" in name["cgcs2000-gk38z"]
    assert name["cgcs2000-6deg19z"] == "CGCS2000 / Gauss-Kruger zone 19"
    assert name["cgcs2000-6deg19"] == "CGCS2000 / Gauss-Kruger CM 111E"
    assert name["xian80-gk38z"] == "Xian 1980 / 3-degree Gauss-Kruger zone 38"
    assert name["beijing54-gk37"] == "Beijing 1954 / 3-degree Gauss-Kruger CM 111E"


@pytest.mark.parametrize("spec", [
    "EPSG:4490", "epsg:4490", "4490", 4490,
    "http://www.opengis.net/def/crs/EPSG/0/4490",
    "https://www.opengis.net/def/crs/EPSG/0/4490",
    "urn:ogc:def:crs:EPSG::4490", "urn:ogc:def:crs:EPSG:9.8:4490", "cgcs2000",
])
def test_epsg_forms(spec):
    assert C.get_crs(spec) is C.get_crs(4490)


def test_crs84_forms_and_uris():
    crs84 = C.get_crs(C.CRS84_URI)
    assert crs84 is C.get_crs("urn:ogc:def:crs:OGC:1.3:CRS84") is C.get_crs("OGC:CRS84")
    assert crs84.axis_info[0].direction == "east"
    assert C.crs_uri(crs84) == C.CRS84_URI
    assert C.crs_uri("cgcs2000-gk38") == C.EPSG_URI.format(code=4547)
    for uri in C.SUPPORTED_OUTPUT_CRS:
        assert C.get_crs(uri) is not None
    assert len(C.SUPPORTED_OUTPUT_CRS) == 8


def test_custom_proj_definition_accepted():
    crs = C.get_crs("+proj=tmerc +lat_0=0 +lon_0=113 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs")
    assert crs.is_projected


@pytest.mark.parametrize("spec", ["xyz", "EPSG:99999999", "", 3.5])
def test_unknown_crs_bilingual_error(spec):
    with pytest.raises(C.CRSNotSupported) as exc:
        C.get_crs(spec)
    msg = str(exc.value)
    assert msg.startswith("不支持的坐标参考系")
    assert "unsupported CRS" in msg and "EPSG:4547" in msg and "cgcs2000-gk38" in msg
    assert msg.index("不支持") < msg.index("unsupported")
    assert isinstance(exc.value, ValueError)


def test_gcj_is_not_a_pyproj_crs():
    with pytest.raises(C.CRSNotSupported, match="resolve_input_crs"):
        C.get_crs("gcj02")


def test_is_lat_first():
    assert C.is_lat_first(4490) is True
    assert C.is_lat_first(4326) is True
    assert C.is_lat_first(C.CRS84_URI) is False
    assert C.is_lat_first(3857) is False
    # PROJ's EPSG definitions of the Chinese GK CRSs are X = northing first
    assert C.is_lat_first(4547) is True


# --- resolve_input_crs / legacy datums ----------------------------------------------

@pytest.mark.parametrize("spec,kind,datum", [
    ("gcj02", "gcj02", "gcj02"), ("GCJ-02", "gcj02", "gcj02"), ("amap", "gcj02", "gcj02"),
    ("bd09", "bd09", "bd09"), ("baidu", "bd09", "bd09"),
    ("EPSG:4547", "crs", "cgcs2000"), ("cgcs2000", "crs", "cgcs2000"),
    ("wgs84", "crs", "wgs84"), ("webmercator", "crs", "wgs84"), (C.CRS84_URI, "crs", "wgs84"),
    ("xian80-gk38", "crs", "xian80"), ("beijing54", "crs", "beijing54"),
])
def test_resolve_input_crs_kinds(spec, kind, datum):
    info = C.resolve_input_crs(spec, local_params={})
    assert (info.kind, info.datum) == (kind, datum)
    assert (info.crs is None) == (kind != "crs")
    assert info.approximate == (datum in ("xian80", "beijing54"))
    assert info.label


def test_local_datum_params_make_legacy_exact(monkeypatch, fresh_settings):
    params = "24,-123,-94,0.02,-0.25,-0.13,1.1"  # illustrative numbers, not official ones
    monkeypatch.setenv("JMGEO_XIAN80_TOWGS84", params)
    monkeypatch.delenv("JMGEO_BEIJING54_TOWGS84", raising=False)
    fresh_settings()
    info = C.resolve_input_crs("xian80-gk38")
    assert info.approximate is False and info.crs.is_bound
    assert C.resolve_input_crs("beijing54").approximate is True
    # the configured Helmert is really applied towards CGCS2000 (not a silent ballpark)
    desc = C.get_transformer(info, C.CANONICAL_EPSG).description
    assert "Ballpark" not in desc
    shifted = C.to_canonical(400000.0, 2500000.0, info)
    ballpark = C.to_canonical(400000.0, 2500000.0, C.resolve_input_crs("xian80-gk38", {}))
    d = metres(shifted[0], shifted[1], ballpark[0], ballpark[1])
    assert 5 < d < 200
    # same as an explicit PROJ definition with +towgs84 to WGS 84 (WGS 84 ≈ CGCS2000)
    ref = pyproj.Transformer.from_crs(
        pyproj.CRS("+proj=tmerc +lat_0=0 +lon_0=114 +k=1 +x_0=500000 +y_0=0 +ellps=IAU76 "
                   f"+towgs84={params} +units=m +no_defs"), 4326, always_xy=True)
    assert metres(*shifted, *ref.transform(400000.0, 2500000.0)) < 0.01


def test_local_datum_params_validation(monkeypatch, fresh_settings):
    from jmgeo.settings import Settings

    def params(**kw):
        return C.load_local_datum_params(Settings(**{"xian80_towgs84": None,
                                                     "beijing54_towgs84": None, **kw}))

    assert params(beijing54_towgs84="1 2 3")["beijing54"].towgs84 == (1, 2, 3)
    assert params() == {}
    assert params(xian80_towgs84="  ") == {}
    with pytest.raises(ValueError, match="3 or 7"):
        params(xian80_towgs84="1,2")
    # the settings read the environment (JMGEO_ prefix) when none are given
    monkeypatch.setenv("JMGEO_BEIJING54_TOWGS84", "4,5,6")
    monkeypatch.delenv("JMGEO_XIAN80_TOWGS84", raising=False)
    fresh_settings()
    assert C.load_local_datum_params() == {"beijing54": C.LocalDatumParams("beijing54",
                                                                           (4, 5, 6))}
    with pytest.raises(ValueError, match="cannot parse"):
        C.LocalDatumParams.parse("xian80", "a,b,c")


# --- transformers ---------------------------------------------------------------------

def test_get_transformer_is_cached():
    t1 = C.get_transformer("EPSG:4547", 4490)
    assert C.get_transformer("EPSG:4547", 4490) is t1
    assert C.get_transformer(4547, "cgcs2000") is t1
    assert C.get_transformer("cgcs2000-gk38", C.EPSG_URI.format(code=4490)) is t1


def test_to_canonical_from_gk38_round_trip():
    e, n = C.get_transformer(4490, 4547).transform(113.08, 22.58)
    assert 390_000 < e < 420_000 and 2_490_000 < n < 2_510_000  # x = easting (always_xy)
    lon, lat = C.to_canonical([e], [n], "EPSG:4547")
    assert abs(lon[0] - 113.08) < 1e-7 and abs(lat[0] - 22.58) < 1e-7
    # the zone-prefixed variant of the same point
    lon, lat = C.to_canonical(e + 38_000_000, n, "cgcs2000-gk38z")
    assert abs(lon - 113.08) < 1e-7 and abs(lat - 22.58) < 1e-7


def test_to_canonical_web_systems():
    lon, lat = np.array([113.08, 112.3]), np.array([22.58, 22.2])
    for kind, fwd in (("gcj02", W.wgs84_to_gcj02), ("bd09", W.wgs84_to_bd09)):
        back = C.to_canonical(*fwd(lon, lat), kind)
        assert metres(lon, lat, *back).max() < 0.01


def test_to_canonical_web_mercator():
    x, y = C.get_transformer(4490, 3857).transform(113.08, 22.58)
    lon, lat = C.to_canonical(x, y, "webmercator")
    assert abs(lon - 113.08) < 1e-7 and abs(lat - 22.58) < 1e-7


# --- zones and extent --------------------------------------------------------------

def test_gk_zone_epsg():
    assert C.gk_zone_epsg(112.2) == 4546  # 恩平
    assert C.gk_zone_epsg(113.08) == 4547  # 蓬江
    assert C.gk_zone_epsg(C.GK_ZONE_BOUNDARY_LON) == 4547


def test_detect_zone_prefix():
    assert C.detect_zone_prefix(38_405_387.1) == 38
    assert C.detect_zone_prefix(37_612_345.0) == 37
    assert C.detect_zone_prefix(np.array([37_512_000.0, 37_600_000.0, np.nan])) == 37
    assert C.detect_zone_prefix([37_512_000.0, 38_400_000.0]) is None  # mixed
    assert C.detect_zone_prefix(19_612_345.0) == 19  # 6-degree zone
    assert C.detect_zone_prefix(405_387.1) is None  # no prefix
    assert C.detect_zone_prefix(12_612_345.8) is None  # Web Mercator x here
    assert C.detect_zone_prefix([]) is None


@pytest.mark.parametrize("zone,datum,code", [
    (37, "cgcs2000", 4525), (38, "cgcs2000", 4526), (19, "cgcs2000", 4497),
    (37, "xian80", 2361), (38, "xian80", 2362), (37, "beijing54", 2413), (38, "beijing54", 2414),
])
def test_prefixed_zone_epsg(zone, datum, code):
    assert C.prefixed_zone_epsg(zone, datum) == code
    assert f"zone {zone}" in C.get_crs(code).name


def test_in_jiangmen():
    inside = C.in_jiangmen(np.array([113.08, 116.4, 112.0]), np.array([22.58, 39.9, 21.5]))
    assert inside.tolist() == [True, False, True]
    assert not C.in_jiangmen(113.08, 22.58 - 1.3)


# --- the demo boundaries file ------------------------------------------------------

BOUNDARIES = Path(__file__).resolve().parent.parent / "spatial" / "data" / "jiangmen_boundaries.geojson"


@pytest.mark.skipif(not BOUNDARIES.exists(), reason="spatial/data/jiangmen_boundaries.geojson not derived yet")
def test_boundaries_file_sane():
    fc = json.loads(BOUNDARIES.read_text(encoding="utf-8"))
    feats = {f["properties"]["code"]: f for f in fc["features"]}
    assert set(feats) == {"440700", "440703", "440704", "440705", "440781", "440783", "440784", "440785"}
    assert feats["440703"]["properties"]["name"] == "蓬江区"
    geoms = {k: shape(f["geometry"]) for k, f in feats.items()}
    x0, y0, x1, y1 = C.JIANGMEN_EXTENT
    for code, g in geoms.items():
        assert g.geom_type == "MultiPolygon" and g.is_valid, code
        b = g.bounds
        assert x0 - 0.05 <= b[0] and b[2] <= x1 + 0.05 and y0 - 0.05 <= b[1] and b[3] <= y1 + 0.05, code
    assert geoms["440703"].contains(Point(113.08, 22.58))
    counties = shapely.union_all([g for k, g in geoms.items() if k != "440700"])
    city = geoms["440700"]
    assert counties.symmetric_difference(city).area / city.area < 0.01


def test_transform_bbox_axis_order_between_wgs84_and_cgcs2000():
    from spatial.crs import CRS84_URI, transform_bbox

    # CRS84 (lon, lat) → EPSG:4490 authority order (lat, lon): a pure reorder
    assert transform_bbox([113.0, 22.5, 113.1, 22.6], CRS84_URI, "EPSG:4490") == \
        [22.5, 113.0, 22.6, 113.1]
    assert transform_bbox([22.5, 113.0, 22.6, 113.1], "EPSG:4326", "EPSG:4490") == \
        [22.5, 113.0, 22.6, 113.1]
    # into a projected CRS: EPSG:4547 is northing, easting
    n, e, _, _ = transform_bbox([22.5, 113.0, 22.6, 113.1], "EPSG:4490", "EPSG:4547")
    assert 2_400_000 < n < 2_600_000 and 350_000 < e < 500_000
