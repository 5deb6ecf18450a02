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
from psycopg import sql

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
    "domain_sql",
    "implausible",
    "load_local_datum_params",
    "output_domain",
    "plausible_extent",
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


# ---------------------------------------------------------------------------
# Domains: where coordinates make sense (loads) and where a transform succeeds (output)

WORLD: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
#: Web Mercator's latitude limit (the poles are at infinity)
MERCATOR_MAX_LAT = 85.0511
#: how far (degrees) beyond a projected CRS's area of use data is still taken as meant
#: for it (a load), and how far output in it is still drawn (a transverse Mercator
#: fails 90 degrees from its central meridian; zones are at most 6 degrees wide)
PLAUSIBLE_MARGIN = 30.0
OUTPUT_MARGIN = 60.0


def _area_of_use(crs: pyproj.CRS | None) -> tuple[float, float, float, float] | None:
    aou = crs.area_of_use if crs is not None else None
    return tuple(aou.bounds) if aou is not None else None  # type: ignore[return-value]


@lru_cache(maxsize=64)
def _plausible(label: str, crs: pyproj.CRS | None) -> tuple[float, float, float, float]:
    if crs is None or crs.is_geographic:  # GCJ-02/BD-09, lon/lat: the whole world
        return WORLD
    aou = _area_of_use(crs)
    if aou is None or crs.to_epsg() == 3857:
        return WORLD
    m = PLAUSIBLE_MARGIN
    return (max(aou[0] - m, -180.0), max(aou[1] - m, -90.0), min(aou[2] + m, 180.0),
            min(aou[3] + m, 90.0))


def plausible_extent(src: InputCRS | str | int | pyproj.CRS) -> tuple[float, float, float, float]:
    """The lon/lat box (EPSG:4490) data declared in ``src`` can plausibly lie in.

    Lon/lat (and GCJ-02/BD-09) data may lie anywhere on Earth; projected data within
    :data:`PLAUSIBLE_MARGIN` degrees of the CRS's area of use (a Gauss-Kruger easting
    that lands 60 degrees from its zone is a typo or a wrong CRS, not data). Why: a
    latitude of 1e6 used to load with a warning and then made every projected output
    and tile of the layer fail."""
    info = resolve_input_crs(src)
    return _plausible(info.label, info.crs)


@lru_cache(maxsize=64)
def _plausible_native(label: str, crs: pyproj.CRS | None) -> tuple[float, float, float, float]:
    """:func:`plausible_extent` in the CRS's own units (metres of a projection)."""
    x0, y0, x1, y1 = _plausible(label, crs)
    if crs is None or crs.is_geographic:
        return x0, y0, x1, y1
    tr = _transformer_for(get_crs(4326), crs)
    return tuple(tr.transform_bounds(x0, max(y0, -89.9), x1, min(y1, 89.9),
                                     densify_pts=21))  # type: ignore[return-value]


def implausible(x: ArrayLike, y: ArrayLike, lon: ArrayLike, lat: ArrayLike,
                src: InputCRS | str | int | pyproj.CRS) -> NDArray[np.bool_]:
    """True where a coordinate cannot be real data in ``src``: ``x``/``y`` as given (GIS
    order, the CRS's units) or ``lon``/``lat`` (converted to EPSG:4490) not finite or
    outside :func:`plausible_extent`. Both are checked: a transverse Mercator's inverse
    folds a northing of 1e9 m back onto a harmless-looking latitude."""
    info = resolve_input_crs(src)
    out = np.zeros(np.shape(lon), dtype=bool)
    boxes = ((x, y, _plausible_native(info.label, info.crs)),
             (lon, lat, _plausible(info.label, info.crs)))
    for a, b, (x0, y0, x1, y1) in boxes:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out |= ~(np.isfinite(a) & np.isfinite(b) & (a >= x0) & (a <= x1) & (b >= y0) &
                     (b <= y1))
    return out


@lru_cache(maxsize=64)
def output_domain(srid: int) -> tuple[float, float, float, float]:
    """The lon/lat box (EPSG:4490) inside which a transform to ``srid`` always gives
    finite numbers: the world for lon/lat, Web Mercator without the poles, a projected
    CRS's area of use widened by :data:`OUTPUT_MARGIN` degrees."""
    crs = get_crs(srid)
    if crs.is_geographic:
        return WORLD
    if crs.to_epsg() == 3857:
        return (-180.0, -MERCATOR_MAX_LAT, 180.0, MERCATOR_MAX_LAT)
    aou = _area_of_use(crs)
    if aou is None:
        return WORLD
    m = OUTPUT_MARGIN
    return (max(aou[0] - m, -180.0), -90.0, min(aou[2] + m, 180.0), 90.0)


def domain_sql(geom: sql.Composable, *srids: int) -> sql.Composable:
    """SQL: ``geom`` (EPSG:4490, a column or a cheap expression: it is named twice)
    clipped to where transforms to every one of ``srids`` succeed. A geometry already
    inside (every sane one: a bounding-box test) is passed through untouched; one with an
    absurd vertex (stored before loads refused them) is clipped, so output draws what
    is inside instead of failing with ``transform: Invalid coordinate``."""
    boxes = [output_domain(s) for s in srids] or [WORLD]
    x0, y0 = max(b[0] for b in boxes), max(b[1] for b in boxes)
    x1, y1 = min(b[2] for b in boxes), min(b[3] for b in boxes)
    if (x0, y0, x1, y1) == WORLD:
        env = sql.SQL("ST_MakeEnvelope(-180, -90, 180, 90, 4490)")
    else:
        env = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4490)").format(
            *(sql.Literal(v) for v in (x0, y0, x1, y1)))
    return sql.SQL("(CASE WHEN {g} @ {env} THEN {g} ELSE ST_ClipByBox2D({g}, {env}) END)"
                   ).format(g=geom, env=env)
