"""Test files made by code (no committed binaries) for the loader tests — not tests itself:
departments hand over, and the broken-file corpus.

Everything is written with pyogrio / zipfile / plain bytes into the test's tmp dir.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

from spatial.crs import get_transformer

# a few places in Jiangmen's land area (lon, lat, name)
PLACES = [(113.081, 22.579, "北街"), (113.065, 22.612, "白沙"), (112.794, 22.252, "台城"),
          (112.573, 22.376, "开平"), (112.293, 22.182, "恩平"), (112.964, 22.765, "鹤山"),
          (113.032, 22.460, "会城"), (113.118, 22.552, "江海")]


def points(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.array([(p[0], p[1]) for p in PLACES])
    pick = base[rng.integers(0, len(base), n)]
    return pick[:, 0] + rng.uniform(-0.02, 0.02, n), pick[:, 1] + rng.uniform(-0.02, 0.02, n)


def squares(lon: np.ndarray, lat: np.ndarray, size: float = 0.0005) -> np.ndarray:
    return shapely.box(lon - size, lat - size, lon + size, lat + size)


def write(path: Path, geoms: np.ndarray, fields: dict, *, crs: str | None = "EPSG:4490",
          encoding: str | None = None, driver: str | None = None, gtype: str | None = None,
          cpg: bool = True, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if driver is None:
        driver = {".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".gpkg": "GPKG"}[path.suffix]
    if gtype is None:
        gtype = shapely.get_type_id(geoms[0]) if len(geoms) else 0
        gtype = {0: "Point", 1: "LineString", 3: "Polygon", 6: "MultiPolygon"}.get(
            int(gtype), "Unknown")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pyogrio.raw.write(str(path), shapely.to_wkb(geoms) if len(geoms) else np.array([], object),
                          [np.asarray(v) for v in fields.values()], list(fields),
                          driver=driver, crs=crs, encoding=encoding, geometry_type=gtype, **kw)
    if path.suffix == ".shp" and not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
        with open(path.with_suffix(".dbf"), "r+b") as fh:  # no LDID either
            fh.seek(29)
            fh.write(b"\x00")
    return path


def parcels_shp(path: Path, n: int = 50, *, encoding: str = "GBK", cpg: bool = False,
                crs: int = 4547, seed: int = 1, names: list[str] | None = None) -> Path:
    """Polygons in Jiangmen with Chinese attributes, in EPSG:``crs``."""
    lon, lat = points(n, seed)
    g = squares(lon, lat)
    if crs != 4490:
        x, y = get_transformer(4490, crs).transform(*shapely.get_coordinates(g).T)
        g = shapely.set_coordinates(g, np.column_stack([x, y]))
    rng = np.random.default_rng(seed)
    owners = names or [PLACES[i % len(PLACES)][2] + "村民" + "陈李黄梁"[i % 4] for i in range(n)]
    fields = {"ZDDM": np.array([f"440703{i:08d}" for i in range(n)]),
              "QLR": np.array(owners[:n]),
              "DLMC": rng.choice(["耕地", "林地", "住宅用地", "水域及水利设施用地"], n),
              "ZDMJ": np.round(rng.uniform(100, 900, n), 2)}
    return write(path, g, fields, crs=f"EPSG:{crs}", encoding=encoding, cpg=cpg)


def geojson(path: Path, features: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")
    return path


def feature(geom: dict, **props) -> dict:
    return {"type": "Feature", "geometry": geom, "properties": props}


def zip_dir(folder: Path, out: Path, arcprefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            if p.is_file():
                zf.write(p, arcprefix + p.name)
    return out


# -- the broken-file corpus ------------------------------------------------------------
def corpus(tmp: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name → (file, extra CLI options, expected LoaderError code)."""
    out: dict[str, tuple[Path, list[str], str]] = {}

    p = parcels_shp(tmp / "truncated" / "宗地.shp", 200, crs=4490)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    out["truncated_shp"] = (p, [], "truncated_shp")

    p = parcels_shp(tmp / "nodbf" / "宗地.shp", 10, crs=4490)
    p.with_suffix(".dbf").unlink()
    out["missing_dbf"] = (p, [], "missing_dbf")

    p = parcels_shp(tmp / "noshx" / "宗地.shp", 10, crs=4490)
    p.with_suffix(".shx").unlink()
    out["missing_shx"] = (p, [], "missing_shx")

    p = parcels_shp(tmp / "noshp" / "宗地.shp", 10, crs=4490)
    p.unlink()
    out["missing_shp"] = (p, [], "missing_shp")

    out["empty_geojson"] = (geojson(tmp / "empty" / "空.geojson", []), [], "empty_layer")
    p = write(tmp / "emptyshp" / "空.shp", np.array([], object), {"NAME": np.array([], str)},
              gtype="Point", encoding="UTF-8")
    out["empty_shp"] = (p, [], "empty_layer")

    # GBK bytes, but the .cpg says UTF-8
    p = parcels_shp(tmp / "wrongenc" / "宗地.shp", 20, crs=4490, encoding="GBK", cpg=False)
    p.with_suffix(".cpg").write_text("UTF-8")
    out["wrong_encoding"] = (p, [], "wrong_encoding")

    bowtie = {"type": "Polygon", "coordinates": [[[113.0, 22.5], [113.01, 22.51],
                                                  [113.01, 22.5], [113.0, 22.51],
                                                  [113.0, 22.5]]]}
    out["self_intersection"] = (geojson(tmp / "bowtie" / "自相交.geojson",
                                        [feature(bowtie, name="蝴蝶结")]), ["--strict"],
                                "invalid_geometry")

    mixed = [feature({"type": "Point", "coordinates": [113.0, 22.5]}, name="点"),
             feature(bowtie, name="面")]
    out["mixed_types"] = (geojson(tmp / "mixed" / "混合.geojson", mixed), [],
                          "mixed_geometry")

    p = parcels_shp(tmp / "noprj" / "宗地.shp", 30, crs=4547)
    p.with_suffix(".prj").unlink()
    out["no_prj_ambiguous"] = (p, [], "ambiguous_crs")

    lon, lat = points(20, 3)
    swapped = [feature({"type": "Point", "coordinates": [float(b), float(a)]}, name=f"点{i}")
               for i, (a, b) in enumerate(zip(lon, lat, strict=True))]
    out["swapped_lonlat"] = (geojson(tmp / "swapped" / "颠倒.geojson", swapped), [],
                             "swapped_axes")

    z = tmp / "slip.zip"
    src = parcels_shp(tmp / "slipsrc" / "宗地.shp", 5, crs=4490, encoding="UTF-8", cpg=True)
    with zipfile.ZipFile(z, "w") as zf:
        for part in src.parent.iterdir():
            zf.write(part, "../../" + part.name)
    out["zip_traversal"] = (z, [], "zip_traversal")

    bomb = tmp / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("宗地.dbf", "w", force_zip64=True) as fh:
            block = b"\0" * (1 << 20)
            for _ in range(40):
                fh.write(block)
    out["zip_bomb"] = (bomb, [], "zip_bomb")

    big = "地" * (700 * 1024)  # 2.1 MB of UTF-8 in one value
    out["huge_field"] = (geojson(tmp / "huge" / "大字段.geojson", [feature(
        {"type": "Point", "coordinates": [113.0, 22.5]}, name="正常", note=big)]), [],
        "huge_field")

    lon, lat = points(10, 4)
    g3 = shapely.points(lon, lat, np.full(10, 12.5))
    p = write(tmp / "z" / "三维.shp", g3, {"NAME": np.array([f"井{i}" for i in range(10)])},
              encoding="UTF-8", gtype="Point Z")
    out["3d"] = (p, [], "has_zm")

    p = measured_shapefile(tmp / "m" / "量测.shp", *points(6, 5), np.arange(6.0))
    out["measured"] = (p, [], "has_zm")
    return out


def measured_shapefile(path: Path, lon, lat, m) -> Path:
    """A PointM Shapefile (shape type 21), written byte by byte: GDAL writers via
    pyogrio cannot make M geometries, but surveying software does."""
    import struct

    n = len(lon)
    write(path, shapely.points(lon, lat), {"NAME": np.array([f"桩{i}" for i in range(n)])},
          encoding="UTF-8", gtype="Point")
    rec_len = 4 + 3 * 8
    shp_len = 100 + n * (8 + rec_len)
    bbox = struct.pack("<4d", min(lon), min(lat), max(lon), max(lat))
    zm = struct.pack("<4d", 0, 0, float(min(m)), float(max(m)))

    def header(length: int) -> bytes:
        return (struct.pack(">7i", 9994, 0, 0, 0, 0, 0, length // 2) +
                struct.pack("<2i", 1000, 21) + bbox + zm)

    shp = bytearray(header(shp_len))
    shx = bytearray(header(100 + 8 * n))
    for i in range(n):
        shx += struct.pack(">2i", len(shp) // 2, rec_len // 2)
        shp += struct.pack(">2i", i + 1, rec_len // 2)
        shp += struct.pack("<i3d", 21, float(lon[i]), float(lat[i]), float(m[i]))
    path.write_bytes(bytes(shp))
    path.with_suffix(".shx").write_bytes(bytes(shx))
    return path
