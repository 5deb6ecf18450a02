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
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray
from pyproj.crs import BoundCRS
from pyproj.crs.coordinate_operation import ToWGS84Transformation

from jmgeo.errors import UserError
from spatial import webcrs

__all__ = [
    "CANONICAL_EPSG",
    "CRS84_URI",
    "EPSG_URI",
    "FRIENDLY_NAMES",
    "GK_ZONE_BOUNDARY_LON",
    "JIANGMEN_EXTENT",
    "SUPPORTED_OUTPUT_CRS",
    "CRSNotSupported",
    "InputCRS",
    "LocalDatumParams",
    "crs_uri",
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
]

CANONICAL_EPSG = 4490
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
#: Jiangmen's extent in lon/lat (min_lon, min_lat, max_lon, max_lat); features
#: far outside it usually mean a wrong CRS.
JIANGMEN_EXTENT: tuple[float, float, float, float] = (111.9, 21.4, 113.3, 22.9)
#: 3-degree Gauss-Kruger zones 37 (CM 111 E) and 38 (CM 114 E) meet here.
GK_ZONE_BOUNDARY_LON = 112.5

#: CRSs the OGC APIs serve (``crs=`` parameter / ``crs`` list of collections).
SUPPORTED_OUTPUT_CRS: list[str] = [CRS84_URI] + [
    EPSG_URI.format(code=c) for c in (4490, 4326, 3857, 4546, 4547, 4525, 4526)
]

#: Friendly names accepted wherever a CRS is named (CLI, loader options, API).
#: "gkNN" = 3-degree zone NN without zone prefix (false easting 500 km);
#: "gkNNz" = the same zone with the zone number prefixed to the easting.
#: The 6-degree zone containing Jiangmen is zone 19 (CM 111 E, 108–114 E).
FRIENDLY_NAMES: dict[str, int] = {
    "cgcs2000": 4490,
    "wgs84": 4326,
    "webmercator": 3857,
    "cgcs2000-gk37": 4546,
    "cgcs2000-gk38": 4547,
    "cgcs2000-gk37z": 4525,
    "cgcs2000-gk38z": 4526,
    "cgcs2000-6deg19": 4508,  # CGCS2000 / Gauss-Kruger CM 111E
    "cgcs2000-6deg19z": 4497,  # CGCS2000 / Gauss-Kruger zone 19
    "xian80": 4610,
    "xian80-gk37": 2382,
    "xian80-gk38": 2383,
    "xian80-gk37z": 2361,
    "xian80-gk38z": 2362,
    "beijing54": 4214,
    "beijing54-gk37": 2434,
    "beijing54-gk38": 2435,
    "beijing54-gk37z": 2413,
    "beijing54-gk38z": 2414,
}

# Extra spellings people type; they map onto FRIENDLY_NAMES keys.
_ALIASES: dict[str, str] = {
    "china2000": "cgcs2000",
    "cgcs-2000": "cgcs2000",
    "wgs-84": "wgs84",
    "wgs1984": "wgs84",
    "web-mercator": "webmercator",
    "pseudo-mercator": "webmercator",
    "xian1980": "xian80",
    "xi'an80": "xian80",
    "beijing1954": "beijing54",
    "bj54": "beijing54",
}

_GCJ_NAMES = frozenset({"gcj02", "gcj-02", "gcj_02", "gcj", "amap", "gaode", "autonavi",
                        "tencent", "qq", "mars", "火星", "高德", "腾讯"})
_BD_NAMES = frozenset({"bd09", "bd-09", "bd_09", "bd09ll", "baidu", "百度"})

Datum = Literal["cgcs2000", "wgs84", "xian80", "beijing54", "gcj02", "bd09", "other"]

_EPSG_RE = re.compile(r"^(?:epsg:)?(\d{4,6})$", re.IGNORECASE)
_EPSG_URI_RE = re.compile(r"^https?://www\.opengis\.net/def/crs/epsg/[^/]+/(\d+)/?$", re.IGNORECASE)
_EPSG_URN_RE = re.compile(r"^urn:ogc:def:crs:epsg:[^:]*:(\d+)$", re.IGNORECASE)
_CRS84_FORMS = frozenset({
    CRS84_URI.lower(),
    "https://www.opengis.net/def/crs/ogc/1.3/crs84",
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:ogc::crs84",
    "ogc:crs84",
    "crs84",
})


class CRSNotSupported(UserError, ValueError):
    """A CRS name or code this platform cannot interpret (message: Chinese, then English)."""


def _unsupported(spec: object, hint: str = "") -> CRSNotSupported:
    names = ", ".join(sorted(FRIENDLY_NAMES)) + ", gcj02, bd09"
    extra = f" ({hint})" if hint else ""
    return CRSNotSupported(
        f"不支持的坐标参考系 {spec!r}：请使用 EPSG 代码（如 EPSG:4547）或以下名称之一{extra} / "
        f"unsupported CRS {spec!r}: use an EPSG code (EPSG:4547) or one of: {names}"
    )


def _normalise_name(text: str) -> str:
    key = text.strip().lower().replace("_", "-").replace(" ", "")
    return _ALIASES.get(key, key)


def _crs_key(spec: object) -> tuple[str, object]:
    """Reduce a CRS spec to a hashable canonical key: ('EPSG', code), ('OGC', 'CRS84') or ('USER', text)."""
    if isinstance(spec, bool):
        raise _unsupported(spec)
    if isinstance(spec, int):
        return ("EPSG", spec)
    if isinstance(spec, pyproj.CRS):
        return ("USER", spec.to_wkt())
    if not isinstance(spec, str):
        raise _unsupported(spec)
    text = spec.strip()
    low = text.lower()
    if low in _CRS84_FORMS:
        return ("OGC", "CRS84")
    for pattern in (_EPSG_RE, _EPSG_URI_RE, _EPSG_URN_RE):
        m = pattern.match(text)
        if m:
            return ("EPSG", int(m.group(1)))
    name = _normalise_name(text)
    if name in FRIENDLY_NAMES:
        return ("EPSG", FRIENDLY_NAMES[name])
    if name in _GCJ_NAMES or name in _BD_NAMES:
        raise _unsupported(
            spec, "GCJ-02/BD-09 没有 EPSG 代码，请用 resolve_input_crs / "
            "GCJ-02 and BD-09 have no EPSG code: use resolve_input_crs")
    if low.startswith("+proj=") or low.startswith("{") or re.match(
            r"^(geogcs|projcs|geogcrs|projcrs|geodcrs|compoundcrs|boundcrs)\s*\[", low):
        # custom PROJ / WKT / PROJJSON definitions (a .prj, a local central meridian)
        return ("USER", text)
    raise _unsupported(spec)


@lru_cache(maxsize=256)
def _crs_for_key(key: tuple[str, object]) -> pyproj.CRS:
    kind, value = key
    try:
        if kind == "EPSG":
            return pyproj.CRS.from_epsg(int(value))  # type: ignore[arg-type]
        if kind == "OGC":
            return pyproj.CRS.from_user_input("OGC:CRS84")
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise _unsupported(value if kind == "USER" else f"{kind}:{value}") from exc


@lru_cache(maxsize=512)
def get_crs(spec: str | int | pyproj.CRS) -> pyproj.CRS:
    """Interpret a CRS spec and return the (cached, shared) ``pyproj.CRS``.

    Accepts ``4547``, ``"4547"``, ``"EPSG:4547"``, OGC URIs
    (``http://www.opengis.net/def/crs/EPSG/0/4490``, ``.../OGC/1.3/CRS84``), URNs
    (``urn:ogc:def:crs:EPSG::4490``), the names in :data:`FRIENDLY_NAMES`, and
    custom PROJ / WKT definitions (``.prj`` contents, a local central meridian).
    Equivalent specs return the same object, so it can be used as a cache key.

    Raises :class:`CRSNotSupported` (a ``ValueError``) otherwise, with a
    bilingual message listing what is accepted.
    """
    if isinstance(spec, pyproj.CRS):
        return spec
    return _crs_for_key(_crs_key(spec))


def crs_uri(spec: str | int | pyproj.CRS) -> str:
    """The OGC URI of a CRS (CRS84 or ``.../EPSG/0/{code}``); for OGC API responses."""
    crs = get_crs(spec)
    if crs == get_crs("CRS84"):
        return CRS84_URI
    code = crs.to_epsg()
    if code is None:
        raise _unsupported(spec, "没有 EPSG 代码 / has no EPSG code")
    return EPSG_URI.format(code=code)


def is_lat_first(crs: str | int | pyproj.CRS) -> bool:
    """True when the CRS's authority axis order puts north (latitude/northing) first.

    EPSG:4490 and 4326 are (lat, lon) and the Chinese Gauss-Kruger CRSs
    (4546/4547/4525/...) are (X = northing, Y = easting) — so both say True;
    CRS84 and Web Mercator are east-first. OGC API Features Part 2 answers in
    authority order for ``crs=`` so this decides whether to swap on output.
    """
    axes = get_crs(crs).axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


# ---------------------------------------------------------------------------
# Gauss-Kruger zones


def gk_zone_epsg(lon: float) -> int:
    """The CGCS2000 3-degree GK CRS (no zone prefix) to measure at ``lon``.

    4546 (zone 37, CM 111 E) west of 112.5 E — 恩平, west 台山/开平 — else 4547
    (zone 38, CM 114 E). Areas and lengths are computed in these, never in degrees.
    """
    return 4546 if float(lon) < GK_ZONE_BOUNDARY_LON else 4547


def detect_zone_prefix(x: float | ArrayLike) -> int | None:
    """The zone number encoded in a prefixed GK easting, or None.

    A prefixed easting is ``zone * 1e6 + easting`` with easting 500 km ± a few
    hundred km: ``37_4xx_xxx.x`` → 37, ``38_5xx_xxx.x`` → 38. China uses 3-degree
    zones 25–45 and 6-degree zones 13–23, which do not overlap, so the number is
    unambiguous. For an array, every finite value must give the same zone.
    """
    values = np.asarray(x, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    zones = np.floor(values / 1_000_000.0)
    rest = values - zones * 1_000_000.0
    if not (np.all(zones == zones[0]) and np.all((rest > 100_000.0) & (rest < 900_000.0))):
        return None
    zone = int(zones[0])
    if 25 <= zone <= 45 or 13 <= zone <= 23:
        return zone
    return None


_PREFIXED_BASE: dict[tuple[str, int], tuple[int, int]] = {
    # (datum, zone width): (EPSG of the first zone, first zone number)
    ("cgcs2000", 3): (4513, 25),
    ("cgcs2000", 6): (4491, 13),
    ("xian80", 3): (2349, 25),
    ("beijing54", 3): (2401, 25),
}


def prefixed_zone_epsg(zone: int, datum: str = "cgcs2000") -> int:
    """EPSG code of the zone-prefixed GK CRS for ``zone`` (3-degree 25–45, 6-degree 13–23).

    E.g. ``prefixed_zone_epsg(37) == 4525``, ``prefixed_zone_epsg(19) == 4497``,
    ``prefixed_zone_epsg(38, "xian80") == 2362``. Used with :func:`detect_zone_prefix`.
    """
    width = 3 if 25 <= zone <= 45 else 6 if 13 <= zone <= 23 else 0
    base = _PREFIXED_BASE.get((datum, width))
    if base is None:
        raise _unsupported(f"{datum} zone {zone}")
    first_code, first_zone = base
    return first_code + zone - first_zone


def in_jiangmen(lon: ArrayLike, lat: ArrayLike, margin: float = 0.0) -> NDArray[np.bool_]:
    """Boolean array: inside :data:`JIANGMEN_EXTENT` (± ``margin`` degrees).

    Used to flag data that lands elsewhere — the usual symptom of a wrong CRS.
    """
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    x0, y0, x1, y1 = JIANGMEN_EXTENT
    return (x >= x0 - margin) & (x <= x1 + margin) & (y >= y0 - margin) & (y <= y1 + margin)


# ---------------------------------------------------------------------------
# Input CRS registry and legacy datums


@dataclass(frozen=True)
class LocalDatumParams:
    """Configured datum shift for a legacy datum (from the surveying bureau).

    ``towgs84`` is 3 (dx, dy, dz in metres) or 7 values (plus rx, ry, rz in
    arc-seconds and scale in ppm) in PROJ's ``+towgs84`` convention (position
    vector rotations; negate rotations given in the coordinate-frame convention).
    The target is WGS 84, which the project treats as CGCS2000.
    """

    datum: str
    towgs84: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.towgs84) not in (3, 7) or not all(math.isfinite(v) for v in self.towgs84):
            raise ValueError(
                f"{self.datum} 参数应为 3 或 7 个数 / towgs84 for {self.datum} must be "
                f"3 or 7 numbers 'dx,dy,dz[,rx,ry,rz,s]', got {self.towgs84!r}"
            )

    @classmethod
    def parse(cls, datum: str, text: str) -> LocalDatumParams:
        """Parse ``"dx,dy,dz,rx,ry,rz,s"`` (commas or whitespace)."""
        try:
            values = tuple(float(v) for v in re.split(r"[,\s]+", text.strip()) if v)
        except ValueError as exc:
            raise ValueError(
                f"无法解析 {datum} 参数 / cannot parse towgs84 for {datum}: {text!r}") from exc
        return cls(datum, values)


_PARAM_ENV = {"xian80": "JMGEO_XIAN80_TOWGS84", "beijing54": "JMGEO_BEIJING54_TOWGS84"}


def load_local_datum_params(env: Mapping[str, str] | None = None) -> dict[str, LocalDatumParams]:
    """Read ``JMGEO_XIAN80_TOWGS84`` / ``JMGEO_BEIJING54_TOWGS84`` ("dx,dy,dz,rx,ry,rz,s")."""
    env = os.environ if env is None else env
    out: dict[str, LocalDatumParams] = {}
    for datum, var in _PARAM_ENV.items():
        text = env.get(var, "").strip()
        if text:
            out[datum] = LocalDatumParams.parse(datum, text)
    return out


@dataclass(frozen=True)
class InputCRS:
    """How incoming coordinates are to be read.

    ``kind`` is "crs" (a PROJ-understood CRS in ``crs``), or "gcj02"/"bd09" (no
    EPSG code; converted by :mod:`spatial.webcrs`). ``approximate`` is True when
    the datum shift to CGCS2000 is only a ballpark (Xian 1980 / Beijing 1954
    without configured parameters: errors of tens of metres are possible).
    """

    kind: Literal["crs", "gcj02", "bd09"]
    crs: pyproj.CRS | None
    label: str
    datum: Datum
    approximate: bool = False

    @property
    def epsg(self) -> int | None:
        return self.crs.to_epsg() if self.crs is not None else None


def _datum_of(crs: pyproj.CRS) -> Datum:
    geo = crs.geodetic_crs
    names = " ".join(
        n.lower() for n in (
            geo.name if geo else "", crs.datum.name if crs.datum else "",
        )
    ).replace("_", " ")
    if "china 2000" in names or "cgcs" in names or "china geodetic" in names:
        return "cgcs2000"
    if "xian" in names or "xi'an" in names:
        return "xian80"
    if "beijing" in names:
        return "beijing54"
    if "wgs 84" in names or "wgs 1984" in names or "world geodetic system 1984" in names:
        return "wgs84"
    ellps = (crs.ellipsoid.name if crs.ellipsoid else "").lower()
    if "cgcs2000" in ellps:
        return "cgcs2000"
    if "iag 1975" in ellps or "iau 1976" in ellps or "xian" in ellps:
        return "xian80"
    if "krass" in ellps:
        return "beijing54"
    if "wgs 84" in ellps:
        return "wgs84"
    return "other"


def _bound(crs: pyproj.CRS, towgs84: tuple[float, ...]) -> pyproj.CRS:
    """``crs`` with an explicit Helmert shift to WGS 84 (a PROJ BoundCRS)."""
    values = tuple(towgs84) + (0.0,) * (7 - len(towgs84))
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    return BoundCRS(
        source_crs=base,
        target_crs=pyproj.CRS.from_epsg(4326),
        transformation=ToWGS84Transformation(base.geodetic_crs, *values),
    )


@lru_cache(maxsize=64)
def _bound_cached(crs: pyproj.CRS, towgs84: tuple[float, ...]) -> pyproj.CRS:
    return _bound(crs, towgs84)


def resolve_input_crs(
    spec: str | int | pyproj.CRS | InputCRS,
    local_params: Mapping[str, LocalDatumParams] | None = None,
) -> InputCRS:
    """Resolve how to read input coordinates named by ``spec``.

    ``"gcj02"`` (also ``gcj-02``, ``amap``, ``gaode``, ``tencent``) and ``"bd09"``
    (also ``baidu``) give the special kinds; anything :func:`get_crs` accepts
    gives kind "crs". For Xian 1980 / Beijing 1954, configured parameters
    (``local_params``, default: :func:`load_local_datum_params` from the
    environment) are attached as a Helmert shift and ``approximate`` is False;
    without them PROJ can only do a ballpark (no-shift) conversion, so
    ``approximate`` is True and callers must warn.
    """
    if isinstance(spec, InputCRS):
        return spec
    if isinstance(spec, str):
        name = _normalise_name(spec)
        if name in _GCJ_NAMES:
            return InputCRS("gcj02", None, "GCJ-02", "gcj02", False)
        if name in _BD_NAMES:
            return InputCRS("bd09", None, "BD-09", "bd09", False)
    crs = get_crs(spec)
    datum = _datum_of(crs)
    code = None if crs.is_bound else crs.to_epsg()
    label = f"EPSG:{code} {crs.name}" if code is not None else crs.name
    approximate = False
    if datum in ("xian80", "beijing54") and not crs.is_bound:
        params = (load_local_datum_params() if local_params is None else local_params).get(datum)
        if params is not None:
            crs = _bound_cached(crs, params.towgs84)
            label += " + towgs84=" + ",".join(f"{v:g}" for v in params.towgs84)
        else:
            approximate = True
            label += " (近似 / approximate datum shift)"
    return InputCRS("crs", crs, label, datum, approximate)


# ---------------------------------------------------------------------------
# Transformers


def _null_bound_if_needed(src: pyproj.CRS, dst: pyproj.CRS) -> tuple[pyproj.CRS, pyproj.CRS]:
    """Make PROJ apply a configured Helmert (BoundCRS) when the other side is CGCS2000.

    PROJ only uses ``+towgs84`` when the other CRS is WGS 84-based; towards
    EPSG:4490 it silently falls back to a ballpark. Binding the CGCS2000 side
    with a null shift to WGS 84 (WGS 84 ≈ CGCS2000) makes it go via the Helmert.
    """
    if src.is_bound and not dst.is_bound and _datum_of(dst) == "cgcs2000":
        dst = _bound_cached(dst, (0.0, 0.0, 0.0))
    elif dst.is_bound and not src.is_bound and _datum_of(src) == "cgcs2000":
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
    if d.to_epsg() == 3857:  # clip to Web Mercator's latitude range
        bbox = [bbox[0], max(-85.0511, bbox[1]), bbox[2], min(85.0511, bbox[3])]
    return list(tr.transform(*bbox[:n]) + tr.transform(*bbox[n:]))
