"""How incoming coordinates are to be read: the input CRS registry and legacy datums.

Part of :mod:`spatial.crs` (import from there). :func:`resolve_input_crs` adds what PROJ
cannot express: GCJ-02/BD-09 (no EPSG code), the datum family, and whether the datum
shift to CGCS2000 is only approximate — Xian 1980 and Beijing 1954 are exact only with
the surveying bureau's parameters (``jmgeo.settings.Settings.xian80_towgs84`` /
``beijing54_towgs84``, from ``JMGEO_XIAN80_TOWGS84`` / ``JMGEO_BEIJING54_TOWGS84``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import pyproj
from pyproj.crs import BoundCRS
from pyproj.crs.coordinate_operation import ToWGS84Transformation

from jmgeo.settings import Settings, get_settings
from spatial.crsnames import _BD_NAMES, _GCJ_NAMES, Datum, _normalise_name, datum_of, get_crs


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


def load_local_datum_params(settings: Settings | None = None) -> dict[str, LocalDatumParams]:
    """The configured shifts: ``Settings.xian80_towgs84`` / ``beijing54_towgs84``
    ("dx,dy,dz,rx,ry,rz,s"; environment ``JMGEO_XIAN80_TOWGS84`` / ``…BEIJING54…``),
    from the process's settings like every other knob (a test that changes the environment
    calls ``jmgeo.settings.reset_settings``)."""
    settings = get_settings() if settings is None else settings
    out: dict[str, LocalDatumParams] = {}
    for datum, text in (("xian80", settings.xian80_towgs84),
                        ("beijing54", settings.beijing54_towgs84)):
        if text and text.strip():
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
    settings) are attached as a Helmert shift and ``approximate`` is False;
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
    datum = datum_of(crs)
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
