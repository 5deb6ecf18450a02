"""GCJ-02 (高德/腾讯) and BD-09 (百度): the obfuscated web coordinate systems.

Why this module exists: much Chinese open data and every consumer web map is in
GCJ-02 ("火星坐标") or BD-09, which have no EPSG code, so PROJ cannot convert them.
About 600 m (GCJ-02) and 1.2 km (BD-09) of offset in Jiangmen is enough to put a
point in the wrong street, town or river bank.

Conventions
-----------
* All functions take and return ``(lon, lat)`` in degrees, longitude first.
  They are vectorised: numpy arrays (any matching shape) in, float64 arrays out;
  two Python scalars in, two Python floats out.
* WGS 84 ≈ CGCS2000. The two realisations differ by centimetres, far below the
  accuracy of anything that went through GCJ-02, so the "WGS 84" side of these
  functions is used directly as CGCS2000 (EPSG:4490) by :mod:`spatial.crs`.
* Forward transforms are the widely published formulas (Krasovsky ellipsoid
  ``a = 6378245.0``, ``ee = 0.00669342162296594323``; BD-09 adds the
  ``x_pi = pi * 3000 / 180`` rotation/scale and the 0.0065 / 0.006 shift).
* Outside China (the customary ``out_of_china`` rectangle: longitude
  72.004–137.8347 E, latitude 0.8293–55.8271 N) the GCJ-02 offset is **not**
  applied: points there pass through unchanged, as the web maps do. The BD-09
  step (GCJ-02 ↔ BD-09) is a closed formula and is applied everywhere.
* Inverses are **iterative** (fixed-point iteration on the forward transform
  until the correction is below 1e-9 degrees, at most 30 rounds). The classic
  one-step inverse (subtract the offset evaluated at the wrong point) is off by
  up to a few metres; the iteration is exact to well below a millimetre. The
  one-step versions are kept (``*_onestep``) only so tests can prove the point.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_gcj02_onestep",
    "bd09_to_wgs84",
    "bd09_to_wgs84_onestep",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_onestep",
    "out_of_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

# Krasovsky 1940 ellipsoid as used by the published GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006

#: Convergence threshold of the iterative inverses, degrees (≈ 0.1 mm).
TOLERANCE_DEG = 1e-9
#: Iteration cap; the fixed point contracts by ~1e-3 per round, so 3-4 rounds suffice.
MAX_ITERATIONS = 30

Coords = tuple[NDArray[np.float64], NDArray[np.float64]] | tuple[float, float]


def _prepare(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    return x.copy(), y.copy(), scalar


def _finish(x: NDArray[np.float64], y: NDArray[np.float64], scalar: bool) -> Coords:
    if scalar:
        return float(x), float(y)
    return x, y


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where the point lies outside the rectangle the GCJ-02 offset applies to."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    return ~((x >= 72.004) & (x <= 137.8347) & (y >= 0.8293) & (y <= 55.8271))


def _gcj_delta(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The GCJ-02 offset (dlon, dlat) in degrees at a WGS 84 point (no China check)."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * math.pi)
    return dlon, dlat


def _wgs_to_gcj(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    dlon, dlat = _gcj_delta(lon, lat)
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def _gcj_to_bd(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd_to_gcj_onestep(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _fixed_point(
    forward, target_x: NDArray[np.float64], target_y: NDArray[np.float64],
    x: NDArray[np.float64], y: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Solve forward(x, y) == target by x <- x - (forward(x) - target).

    The forward transforms are the identity plus a slowly varying offset whose
    Jacobian is ~1e-3, so this contracts fast; NaNs are left as NaN.
    """
    for _ in range(MAX_ITERATIONS):
        fx, fy = forward(x, y)
        ex = fx - target_x
        ey = fy - target_y
        x = x - ex
        y = y - ey
        err = np.maximum(np.abs(ex), np.abs(ey))
        if not np.any(err >= TOLERANCE_DEG):  # NaN compares False: ignored
            break
    return x, y


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """WGS 84 (≈ CGCS2000) → GCJ-02; unchanged outside China."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_wgs_to_gcj(x, y), scalar)


def gcj02_to_wgs84_onestep(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """The classic one-step inverse (offset evaluated at the GCJ point): metres off.

    Kept only as a reference for tests and comparisons; use :func:`gcj02_to_wgs84`.
    """
    x, y, scalar = _prepare(lon, lat)
    dlon, dlat = _gcj_delta(x, y)
    outside = out_of_china(x, y)
    return _finish(np.where(outside, x, x - dlon), np.where(outside, y, y - dlat), scalar)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """GCJ-02 → WGS 84 (≈ CGCS2000), iterative inverse accurate to < 1 mm.

    Points outside China (by the GCJ-02 point) are returned unchanged, matching
    the forward transform which does not offset them.
    """
    x, y, scalar = _prepare(lon, lat)
    x0, y0 = gcj02_to_wgs84_onestep(x, y)
    wx, wy = _fixed_point(_wgs_to_gcj, x, y, np.asarray(x0), np.asarray(y0))
    outside = out_of_china(x, y)
    return _finish(np.where(outside, x, wx), np.where(outside, y, wy), scalar)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """GCJ-02 → BD-09 (Baidu's extra rotation/scale and 0.0065/0.006 shift)."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_gcj_to_bd(x, y), scalar)


def bd09_to_gcj02_onestep(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """The classic one-step BD-09 → GCJ-02 (decimetres off); reference only."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_bd_to_gcj_onestep(x, y), scalar)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """BD-09 → GCJ-02, iterative inverse of :func:`gcj02_to_bd09`."""
    x, y, scalar = _prepare(lon, lat)
    x0, y0 = _bd_to_gcj_onestep(x, y)
    return _finish(*_fixed_point(_gcj_to_bd, x, y, x0, y0), scalar)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """WGS 84 (≈ CGCS2000) → BD-09 (via GCJ-02)."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_gcj_to_bd(*_wgs_to_gcj(x, y)), scalar)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """BD-09 → WGS 84 (≈ CGCS2000), both steps iterative."""
    x, y, scalar = _prepare(lon, lat)
    gx, gy = bd09_to_gcj02(x, y)
    return _finish(*gcj02_to_wgs84(gx, gy), scalar)


def bd09_to_wgs84_onestep(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """BD-09 → WGS 84 with both one-step inverses, as most libraries do; reference only."""
    x, y, scalar = _prepare(lon, lat)
    gx, gy = _bd_to_gcj_onestep(x, y)
    return _finish(*gcj02_to_wgs84_onestep(gx, gy), scalar)
