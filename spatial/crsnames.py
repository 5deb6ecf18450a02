"""Naming a CRS: what a spec means, its URI and axis order, Gauss-Kruger zones, datums.

Part of :mod:`spatial.crs` (import from there): :func:`get_crs` names a CRS (EPSG code,
OGC URI/URN, friendly name, PROJ/WKT) and refuses anything else with
:class:`CRSNotSupported`; :func:`is_lat_first` tells OGC output when the authority axis
order differs from the project's x = longitude; the zone helpers pick and recognise the
3-degree zones Jiangmen straddles at 112.5 E; :func:`datum_of` names a CRS's datum family
(CGCS2000, WGS 84, Xian 1980, Beijing 1954).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from jmgeo.errors import UserError

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


def datum_of(crs: pyproj.CRS) -> Datum:
    """The datum family of ``crs``, by its datum or ellipsoid name."""
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
