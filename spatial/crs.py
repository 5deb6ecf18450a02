"""Canonical CRS, the input CRS registry and the one place transformers are built.

Why this module exists (DESIGN.md §4): everything is stored in CGCS2000
geographic (EPSG:4490) with x = longitude, but data arrives in a dozen systems —
CGCS2000 Gauss-Kruger zones (with and without zone prefix), WGS 84, Web
Mercator, Xian 1980, Beijing 1954 and the obfuscated web systems GCJ-02 and
BD-09 — and Jiangmen straddles the 3-degree zone boundary at 112.5 E. Getting
axis order, zone or datum wrong moves data by metres to hundreds of kilometres
without any error, so every CRS decision in the project goes through here:

* :func:`get_crs` names a CRS (EPSG code, OGC URI/URN, friendly name, PROJ/WKT).
* :func:`resolve_input_crs` adds what PROJ cannot express: GCJ-02/BD-09, the
  datum family, and whether the datum shift is only approximate.
* :func:`get_transformer` is the only builder of ``pyproj.Transformer`` (cached,
  ``always_xy=True``); :func:`to_canonical` converts anything to 4490 lon/lat.

Conventions: all coordinates passed to or returned by this module are in
"GIS order" — x = longitude/easting, y = latitude/northing — whatever the
authority axis order is. :func:`is_lat_first` tells callers (OGC API output,
``crs=`` parameters) when the authority order differs.

WGS 84 ≈ CGCS2000: their realisations differ by centimetres; the project treats
them as the same datum (PROJ does too, with a null "ballpark" shift).

The code is in three modules, all imported from here: :mod:`spatial.crsnames` (naming,
zones, datums), :mod:`spatial.inputcrs` (the input registry, legacy datum parameters)
and this one (transformers).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from spatial import webcrs
from spatial.crsnames import (
    CANONICAL_EPSG,
    CRS84_URI,
    EPSG_URI,
    FRIENDLY_NAMES,
    GK_ZONE_BOUNDARY_LON,
    JIANGMEN_EXTENT,
    SUPPORTED_OUTPUT_CRS,
    CRSNotSupported,
    Datum,
    _unsupported,
    crs_uri,
    datum_of,
    detect_zone_prefix,
    get_crs,
    gk_zone_epsg,
    in_jiangmen,
    is_lat_first,
    prefixed_zone_epsg,
)
from spatial.inputcrs import (
    InputCRS,
    LocalDatumParams,
    _bound_cached,
    load_local_datum_params,
    resolve_input_crs,
)

__all__ = [
    "CANONICAL_EPSG",
    "CRS84_URI",
    "EPSG_URI",
    "FRIENDLY_NAMES",
    "GK_ZONE_BOUNDARY_LON",
    "JIANGMEN_EXTENT",
    "SUPPORTED_OUTPUT_CRS",
    "CRSNotSupported",
    "Datum",
    "InputCRS",
    "LocalDatumParams",
    "crs_uri",
    "datum_of",
    "detect_zone_prefix",
    "get_crs",
    "get_transformer",
    "gk_zone_epsg",
    "in_jiangmen",
    "is_lat_first",
    "load_local_datum_params",
    "prefixed_zone_epsg",
    "resolve_input_crs",
    "to_canonical",
    "transform_bbox",
]


# ---------------------------------------------------------------------------
# Transformers


def _null_bound_if_needed(src: pyproj.CRS, dst: pyproj.CRS) -> tuple[pyproj.CRS, pyproj.CRS]:
    """Make PROJ apply a configured Helmert (BoundCRS) when the other side is CGCS2000.

    PROJ only uses ``+towgs84`` when the other CRS is WGS 84-based; towards
    EPSG:4490 it silently falls back to a ballpark. Binding the CGCS2000 side
    with a null shift to WGS 84 (WGS 84 ≈ CGCS2000) makes it go via the Helmert.
    """
    if src.is_bound and not dst.is_bound and datum_of(dst) == "cgcs2000":
        dst = _bound_cached(dst, (0.0, 0.0, 0.0))
    elif dst.is_bound and not src.is_bound and datum_of(src) == "cgcs2000":
        src = _bound_cached(src, (0.0, 0.0, 0.0))
    return src, dst


@lru_cache(maxsize=256)
def _transformer_for(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    s, d = _null_bound_if_needed(src, dst)
    return pyproj.Transformer.from_crs(s, d, always_xy=True)


def get_transformer(
    src: str | int | pyproj.CRS | InputCRS, dst: str | int | pyproj.CRS | InputCRS = CANONICAL_EPSG
) -> pyproj.Transformer:
    """The cached ``pyproj.Transformer`` from ``src`` to ``dst`` (``always_xy=True``).

    Building one costs 0.1–0.2 s, so nothing else in the project builds
    transformers: call this. Equivalent specs share one transformer
    (pyproj ≥ 3.1 transformers are thread-safe). GCJ-02/BD-09 have no
    transformer — use :func:`to_canonical`.
    """
    s = src.crs if isinstance(src, InputCRS) else get_crs(src)
    d = dst.crs if isinstance(dst, InputCRS) else get_crs(dst)
    if s is None or d is None:
        raise _unsupported(getattr(src, "label", src), "GCJ-02/BD-09: use to_canonical")
    return _transformer_for(s, d)


def to_canonical(
    x: ArrayLike, y: ArrayLike, src: InputCRS | str | int | pyproj.CRS
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Convert coordinates to canonical CGCS2000 (EPSG:4490) as (lon, lat) arrays.

    ``x``/``y`` are in GIS order (longitude/easting, latitude/northing) whatever
    the authority axis order of ``src``. GCJ-02 and BD-09 go through the
    iterative inverses of :mod:`spatial.webcrs` (result WGS 84 ≈ CGCS2000);
    everything else through the cached transformer. Whether the datum shift
    was approximate is on ``resolve_input_crs(src).approximate``.
    """
    info = resolve_input_crs(src)
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if info.kind == "gcj02":
        lon, lat = webcrs.gcj02_to_wgs84(xs, ys)
    elif info.kind == "bd09":
        lon, lat = webcrs.bd09_to_wgs84(xs, ys)
    else:
        lon, lat = get_transformer(info, CANONICAL_EPSG).transform(xs, ys)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


@lru_cache(maxsize=256)
def _authority_transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src, dst, always_xy=False)


_CM_LEVEL_DATUMS = ("World Geodetic System 1984", "China 2000")


@lru_cache(maxsize=256)
def _cm_level_geographic(crs: pyproj.CRS) -> bool:
    """A 2-D geographic CRS on WGS 84 or CGCS2000: the framework treats them as one
    (centimetres apart; PROJ itself only offers a no-op "ballpark" between them)."""
    return (crs.is_geographic and len(crs.axis_info) == 2
            and crs.datum is not None and crs.datum.name.startswith(_CM_LEVEL_DATUMS))


def transform_bbox(bbox: list[float], src: str | int | pyproj.CRS,
                   dst: str | int | pyproj.CRS, always_xy: bool = False) -> list[float]:
    """Transform a 4- or 6-number bbox corner by corner, in authority axis order unless
    ``always_xy`` — the contract of OGC ``bbox``/``bbox-crs``.

    Between WGS 84 / CRS84 / CGCS2000 geographic CRSs this is only an axis reorder (no
    transformer at all: pyproj builds one per thread, 0.26 s each); otherwise a cached
    transformer is used.
    """
    s, d = get_crs(src), get_crs(dst)
    n = len(bbox) // 2
    if _cm_level_geographic(s) and _cm_level_geographic(d):
        lo, hi = list(bbox[:n]), list(bbox[n:])
        if not always_xy and is_lat_first(s) != is_lat_first(d):
            lo[0], lo[1], hi[0], hi[1] = lo[1], lo[0], hi[1], hi[0]
        return lo + hi
    tr = _transformer_for(s, d) if always_xy else _authority_transformer(s, d)
    if d.to_epsg() == 3857 and s.is_geographic:  # clip to Web Mercator's latitude range
        lat = 0 if is_lat_first(s) and not always_xy else 1  # never a northing or a lon
        bbox = list(bbox)
        bbox[lat], bbox[lat + n] = max(-85.0511, bbox[lat]), min(85.0511, bbox[lat + n])
    return list(tr.transform(*bbox[:n]) + tr.transform(*bbox[n:]))
