"""The in-place reprojection (``loaders.wkbfast``) gives byte for byte the EWKB, the kept
features, the statistics and the refusals of the general geometry path, and leaves to it
every batch it cannot vouch for. Each case runs ``loaders.geometry.process`` twice on the
same WKB: as the loader hands it over (an Arrow column: the fast path is tried) and as
shapely geometries (the general path only)."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely

import loaders.geometry as geometry
from jmgeo.settings import get_settings
from loaders.errors import LoaderError
from spatial.inputcrs import resolve_input_crs

CGCS2000 = resolve_input_crs("EPSG:4490")
GK_114 = resolve_input_crs("EPSG:4547")          # CGCS2000 3-degree GK, CM 114°E


def _run(wkb: pa.Array, family: str | None, opts: geometry.GeomOptions, offset: int = 0):
    stats = geometry.GeomStats()
    try:
        keep, ewkb, fam, _ = geometry.process(wkb, family, opts, stats, offset)
    except LoaderError as exc:
        return ("error", exc.code, exc.message)
    return (keep.tolist(), ewkb.to_pylist(), fam, stats.as_dict())


def _both(wkb: list[bytes | None] | pa.Array, crs=CGCS2000, family: str | None = None,
          monkeypatch=None, **opt) -> tuple[bool, tuple]:
    """(fast path taken, the result) — the result asserted equal to the general path's."""
    arr = wkb if isinstance(wkb, pa.Array) else pa.array(wkb, pa.binary())
    opts = geometry.GeomOptions(crs=crs, display="t.shp", **opt)
    taken = []
    real = geometry._in_place

    def spy(*a, **k):
        out = real(*a, **k)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(geometry, "_in_place", spy)
    fast = _run(arr, family, opts, offset=100)
    general = _run(geometry.as_geometries(arr), family, opts, offset=100)
    assert fast == general
    return taken == [True], fast


def _gk(lon: float, lat: float) -> tuple[float, float]:
    from pyproj import Transformer

    return Transformer.from_crs(4490, 4547, always_xy=True).transform(lon, lat)


def _square(x: float, y: float, d: float) -> shapely.Polygon:
    return shapely.box(x, y, x + d, y + d)


POINTS = shapely.to_wkb(shapely.points(np.linspace(112.5, 113.2, 50), np.full(50, 22.4)))
X0, Y0 = _gk(113.0, 22.5)
HOLED = shapely.Polygon(shapely.box(X0, Y0, X0 + 900, Y0 + 900).exterior.coords,
                        [shapely.box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200).exterior.coords])
POLYGONS = [shapely.to_wkb(_square(X0 + i * 1000, Y0, 500)) for i in range(20)] + \
    [shapely.to_wkb(HOLED)]
MULTIPOLYGONS = [shapely.to_wkb(shapely.MultiPolygon([_square(X0 + j * 700, Y0 + i * 900, 300)
                                                      for j in range(1 + i % 4)]))
                 for i in range(12)]
LINES = [shapely.to_wkb(shapely.LineString([(113 + i / 100, 22.3), (113.01 + i / 100, 22.31),
                                            (113.02 + i / 100, 22.2)])) for i in range(15)]
MULTILINES = [shapely.to_wkb(shapely.MultiLineString([[(113, 22.3 + j / 50), (113.1, 22.3)]
                                                      for j in range(1 + i % 3)]))
              for i in range(9)]
MULTIPOINTS = [shapely.to_wkb(shapely.MultiPoint([(113 + j / 10, 22.5) for j in range(i + 1)]))
               for i in range(5)]


@pytest.mark.parametrize(("wkb", "crs"), [
    (list(POINTS), CGCS2000), (POLYGONS, GK_114), (MULTIPOLYGONS, GK_114),
    (LINES, CGCS2000), (MULTILINES, CGCS2000), (MULTIPOINTS, CGCS2000)],
    ids=["points", "polygons-with-a-hole", "multipolygons", "lines", "multilines",
         "multipoints"])
def test_the_common_case_takes_the_fast_path_with_identical_output(monkeypatch, wkb, crs):
    fast, (keep, ewkb, fam, stats) = _both(wkb, crs, monkeypatch=monkeypatch)
    assert fast and all(keep) and stats["read"] == len(wkb)
    assert shapely.get_srid(shapely.from_wkb(bytes.fromhex(ewkb[0]))) == 4490
    assert fam in ("point", "line", "polygon")


def test_swapped_axes_and_an_offset_array_slice(monkeypatch):
    swapped = shapely.to_wkb(shapely.points(np.full(10, 22.4), np.linspace(112.5, 113, 10)))
    fast, out = _both(list(swapped), swap_xy=True, monkeypatch=monkeypatch)
    assert fast and out[3]["bbox"][0] == pytest.approx(112.5)
    sliced = pa.array(POLYGONS, pa.binary()).slice(5, 7)       # buffers offset into a batch
    fast, out = _both(sliced, GK_114, monkeypatch=monkeypatch)
    assert fast and len(out[1]) == 7


def _big_endian(g: shapely.Geometry) -> bytes:
    return shapely.to_wkb(g, byte_order=0)


BOWTIE = shapely.to_wkb(shapely.Polygon([(113, 22), (113.1, 22.1), (113.1, 22), (113, 22.1)]))
ONE_POINT_LINE = b"\x01" + struct.pack("<II", 2, 1) + struct.pack("<dd", 113.0, 22.5)
EMPTY_PART = shapely.to_wkb(shapely.MultiLineString([[(113, 22), (113.1, 22.1)]]))[:9] + \
    b"\x01" + struct.pack("<II", 2, 0)


@pytest.mark.parametrize(("wkb", "opt"), [
    ([LINES[0], None, LINES[1]], {}),                                  # a null geometry
    ([LINES[0], shapely.to_wkb(shapely.LineString()), LINES[1]], {}),  # an empty one
    ([BOWTIE, shapely.to_wkb(_square(113, 22.5, 0.01))], {}),          # repaired, listed
    ([BOWTIE], {"strict": True}),                                      # refused under --strict
    ([shapely.to_wkb(shapely.Point(113, 22.5, 3.0))] * 2, {}),         # Z refused
    ([shapely.to_wkb(shapely.Point(113, 22.5, 3.0))] * 2, {"force_2d": True}),
    ([POINTS[0], shapely.to_wkb(_square(113, 22.5, 0.01))], {}),       # mixed families
    ([_big_endian(shapely.Point(113, 22.5))] * 3, {}),
    ([LINES[0], LINES[1][:-5]], {}),                                   # truncated WKB
    ([LINES[0], LINES[1] + b"\x00"], {}),                              # trailing bytes
    ([ONE_POINT_LINE, LINES[0]], {}),                                  # GEOS refuses it
    ([EMPTY_PART, LINES[0]], {}),
    ([shapely.to_wkb(shapely.Point(113, 1e9)), POINTS[0]], {}),        # implausible
    ([shapely.to_wkb(shapely.Point(float("nan"), 22.5)), POINTS[0]], {}),
    ([shapely.to_wkb(shapely.GeometryCollection([shapely.Point(113, 22)]))], {}),
], ids=["null", "empty", "invalid-repaired", "invalid-strict", "z", "z-force-2d", "mixed",
        "big-endian", "truncated", "trailing-bytes", "one-point-line", "empty-part",
        "implausible", "nan", "collection"])
def test_what_the_fast_path_cannot_vouch_for_goes_the_general_way(monkeypatch, wkb, opt):
    fast, out = _both(wkb, monkeypatch=monkeypatch, **opt)
    assert not fast


def test_a_declared_family_the_batch_does_not_have_is_the_general_refusal(monkeypatch):
    fast, out = _both(list(POINTS[:3]), family="polygon", monkeypatch=monkeypatch)
    assert not fast and out[:2] == ("error", "mixed_geometry")
    fast, out = _both(LINES[:3], family="line", monkeypatch=monkeypatch)
    assert fast and out[2] == "line"


def test_the_real_world_files(monkeypatch):
    root = get_settings().realworld_data
    files = sorted(root.glob("*/*.shp")) if root.is_dir() else []
    if not files:
        pytest.skip(f"real-world test data {root} is absent (setting JMGEO_REALWORLD_DATA)")
    taken = 0
    for shp in files:
        meta, table = pyogrio.read_arrow(shp, columns=[])
        crs = resolve_input_crs(meta["crs"] or "EPSG:4490")
        wkb = table.column(meta["geometry_name"] or "wkb_geometry").combine_chunks()
        for start in range(0, len(wkb), 700):
            fast, _ = _both(wkb.slice(start, 700), crs, monkeypatch=monkeypatch)
            taken += fast
    assert taken > 0
