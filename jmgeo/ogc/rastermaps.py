"""Map images of raster layers: the coverage's pixels resampled onto the map's grid.

A raster collection (``jmgeo.ogc.coverages``) gets a ``type: map`` provider too,
:class:`RasterMapProvider`, so ``/collections/{id}/map`` and its map tiles
(``jmgeo.ogc.maps``, same parameters, CRSs and tile matrix sets) answer for rasters as
for vector layers. Through the same policy as the coverage: the collection exists only
for callers who may read it (404 otherwise, like any hidden layer), and a region-scoped
grant draws only the pixels inside its regions (``coverages.region_shapes``: every pixel
whose centre lies outside is transparent; no granted region in the box: a transparent
image).

Reading: the window of the COG under the map box (in EPSG:4490), read at about twice
the image's resolution (GDAL picks a COG overview), then warped onto the image grid
(nearest neighbour; EPSG:4490 lon/lat or EPSG:3857). Colouring:

* three or four ``uint8`` bands: RGB(A) as stored;
* otherwise band 1 through a five-stop colour ramp (blue → green → yellow → orange → red,
  :data:`RAMP`) stretched over the band's minimum..maximum in the whole file (read once
  per file version from a small overview and cached);
* nodata (and NaN) pixels are transparent; the owner's style (``jmgeo layer style``) may
  set ``raster-opacity`` on a ``raster`` layer (a literal; else 1).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_geom
from rasterio.windows import Window
from shapely.geometry import mapping

from jmgeo.db import DatabaseUnavailable
from jmgeo.ogc import render
from jmgeo.ogc.compat import BaseProvider, ProviderConnectionError
from jmgeo.ogc.coverages import pixel_window, raster_path, region_shapes
from jmgeo.ogc.provider import ProviderDatabaseUnavailable, provider_access
from jmgeo.replicas import read_connection
from layers import styles
from layers.access_sql import region_scope
from spatial.crs import CANONICAL_EPSG
from spatial.crs import transform_bbox as _transform_bbox

LOGGER = logging.getLogger(__name__)

RASTER_PROVIDER = "jmgeo.ogc.rastermaps.RasterMapProvider"
MAP_FORMAT = {"name": "png", "mimetype": "image/png"}
MERCATOR = 3857
OVERSAMPLE = 2  # source pixels read per image pixel (at most), before the warp
#: (position 0..1, RGB) stops of the single-band colour ramp
RAMP = ((0.0, (43, 131, 186)), (0.25, (171, 221, 164)), (0.5, (255, 255, 191)),
        (0.75, (253, 174, 97)), (1.0, (215, 25, 28)))
_STATS_SAMPLE = 512  # pixels across the read the value range is taken from

_range_cache: dict[tuple[str, float], tuple[float, float]] = {}
_range_lock = threading.Lock()


class RasterMapProvider(BaseProvider):
    """pygeoapi ``map`` provider over one raster layer's COG, obeying the caller's access."""

    def __init__(self, provider_def: dict):
        provider_def = dict(provider_def)
        provider_def.setdefault("format", dict(MAP_FORMAT))
        super().__init__(provider_def)
        meta = provider_def.get("jmgeo", {}) or {}
        self.path: str = provider_def["data"]
        self.layer_name: str = meta.get("layer") or os.path.basename(self.path)
        self.region_scope: list[str] | None = region_scope(provider_access(provider_def))

    def __repr__(self) -> str:
        return f"<RasterMapProvider> {self.path}"

    def get_fields(self) -> dict:
        return {}

    def opacity(self) -> float:
        """``raster-opacity`` of the owner's style, when it sets a literal one; else 1."""
        try:
            with read_connection() as conn:
                style = styles.stored_style(conn, self.layer_name)
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        value = styles.paint_for(style, "raster").get("raster-opacity") if style else None
        try:
            return max(0.0, min(1.0, float(value))) if value is not None else 1.0
        except (TypeError, ValueError):
            return 1.0

    def draw(self, frame: render.Frame, epsg: int, fmt: str = "png",
             transparent: bool = True) -> bytes:
        """The image of the raster in ``frame`` (map CRS ``epsg``) for this caller."""
        blank = Image.new("RGBA", (frame.width, frame.height), (0, 0, 0, 0))
        shapes = region_shapes(self.region_scope)
        if self.region_scope is not None and not shapes:
            return render.encode(blank, fmt, transparent)
        try:
            with rasterio.open(self.path) as ds:
                values = self._warped(ds, frame, epsg)
                low_high = value_range(ds, self.path) if values is not None else None
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            LOGGER.warning("raster %s unreadable: %s", self.path, exc)
            raise ProviderConnectionError(
                user_msg="栅格数据暂不可用 / raster data unavailable") from exc
        if values is None:
            return render.encode(blank, fmt, transparent)
        dst_transform = from_bounds(frame.minx, frame.miny, frame.maxx, frame.maxy,
                                    frame.width, frame.height)
        valid = ~np.isnan(values).any(axis=0)
        if self.region_scope is not None:
            if epsg == MERCATOR:
                geoms = [transform_geom("EPSG:4490", "EPSG:3857", mapping(s)) for s in shapes]
            else:
                geoms = [mapping(s) for s in shapes]
            valid &= ~geometry_mask(geoms, out_shape=valid.shape, transform=dst_transform)
        rgba = colour(values, valid, low_high)
        rgba[..., 3] = (rgba[..., 3] * self.opacity()).astype(np.uint8)
        return render.encode(Image.fromarray(rgba, "RGBA"), fmt, transparent)

    def _warped(self, ds, frame: render.Frame, epsg: int) -> np.ndarray | None:
        """The bands drawn (1, or 3-4 for RGB(A) uint8) on the image grid as float32
        with NaN where there is no data; None when the box misses the raster."""
        box = [frame.minx, frame.miny, frame.maxx, frame.maxy]
        lonlat = box if epsg == CANONICAL_EPSG else _transform_bbox(
            box, MERCATOR, CANONICAL_EPSG, always_xy=True)
        win = pixel_window(ds, lonlat)
        if win is None:
            return None
        # one source pixel of margin, so the warp has neighbours at the image's edges
        c0, r0 = max(0, int(win.col_off) - 1), max(0, int(win.row_off) - 1)
        c1 = min(ds.width, int(win.col_off + win.width) + 1)
        r1 = min(ds.height, int(win.row_off + win.height) + 1)
        win = Window(c0, r0, c1 - c0, r1 - r0)
        bands = [1, 2, 3, 4][:min(ds.count, 4)] if is_rgb(ds) else [1]
        out_w = max(1, min(int(win.width), OVERSAMPLE * frame.width))
        out_h = max(1, min(int(win.height), OVERSAMPLE * frame.height))
        data = ds.read(bands, window=win, out_shape=(len(bands), out_h, out_w),
                       resampling=Resampling.nearest, masked=True)
        src = np.ma.filled(data.astype("float32"), np.nan)
        src_transform = ds.window_transform(win) @ Affine.scale(win.width / out_w,
                                                                win.height / out_h)
        dest = np.full((len(bands), frame.height, frame.width), np.nan, dtype="float32")
        reproject(source=src, destination=dest, src_transform=src_transform,
                  src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=from_bounds(*box, frame.width, frame.height),
                  dst_crs=CRS.from_epsg(epsg), dst_nodata=np.nan,
                  resampling=Resampling.nearest)
        return dest

    def query(self, style=None, bbox=None, width=512, height=None, crs=None, bbox_crs=None,
              format_="png", transparent=True, **kwargs) -> bytes:
        """pygeoapi's map provider contract (``bbox`` already in ``crs``, x/y order)."""
        from jmgeo.ogc.maps import map_epsg

        epsg = map_epsg(crs) if crs else CANONICAL_EPSG
        frame = render.Frame(*map(float, bbox), int(width), int(height or width))
        return self.draw(frame, epsg, format_, bool(transparent))


def is_rgb(ds) -> bool:
    """Three or four 8-bit bands: a picture (orthophoto, scanned map), drawn as stored."""
    return ds.count in (3, 4) and all(d == "uint8" for d in ds.dtypes)


def value_range(ds, path: str) -> tuple[float, float]:
    """Band 1's minimum and maximum over the whole file (from a read at most
    :data:`_STATS_SAMPLE` pixels across, so from an overview), cached per file version."""
    key = (path, os.stat(path).st_mtime)
    with _range_lock:
        hit = _range_cache.get(key)
    if hit is not None:
        return hit
    factor = max(1, math.ceil(max(ds.width, ds.height) / _STATS_SAMPLE))
    sample = ds.read(1, out_shape=(max(1, ds.height // factor), max(1, ds.width // factor)),
                     resampling=Resampling.nearest, masked=True).astype("float64")
    values = np.ma.filled(sample, np.nan)
    finite = values[np.isfinite(values)]
    found = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    with _range_lock:
        _range_cache[key] = found
    return found


def colour(values: np.ndarray, valid: np.ndarray,
           low_high: tuple[float, float] | None) -> np.ndarray:
    """RGBA (uint8, rows × columns × 4) of the warped bands: RGB(A) bands as they are,
    one band through :data:`RAMP`; transparent where not ``valid``."""
    height, width = valid.shape
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    if values.shape[0] >= 3:
        bands = np.nan_to_num(values, nan=0.0).clip(0, 255).astype(np.uint8)
        rgba[..., :3] = np.moveaxis(bands[:3], 0, -1)
        rgba[..., 3] = bands[3] if values.shape[0] == 4 else 255
    else:
        low, high = low_high or (0.0, 1.0)
        span = high - low if high > low else 1.0
        t = np.clip((np.nan_to_num(values[0], nan=low) - low) / span, 0.0, 1.0)
        stops = [s for s, _ in RAMP]
        for channel in range(3):
            rgba[..., channel] = np.interp(t, stops, [c[channel] for _, c in RAMP]).astype(
                np.uint8)
        rgba[..., 3] = 255
    rgba[~valid] = 0
    return rgba


def raster_map_provider_def(layer: dict[str, Any], access) -> dict[str, Any]:
    """The ``type: map`` provider entry of one raster registry layer for this caller."""
    return {"type": "map", "name": RASTER_PROVIDER, "data": raster_path(layer["table_name"]),
            "format": dict(MAP_FORMAT), "jmgeo": {"layer": layer["name"], "access": access}}
