"""Raster layers as OGC API Coverages, through the sharing policy.

Contract with the loader (``loaders/raster.py``):

* a raster layer is a registry ``layer`` row with ``kind = 'raster'``;
* each version's ``layer_version.table_name`` is the path of a Cloud-Optimized GeoTIFF in
  EPSG:4490 (x = longitude, north-up) — the loader writes the absolute path of
  ``<var_dir>/rasters/<layer>_v<N>.tif``; a ``file:`` prefix is accepted too, and a
  relative path is taken relative to ``<var_dir>/rasters``. A new load writes a new
  file — files are never rewritten in place — so a rollback is the same pointer move as
  for vector tables;
* band descriptions (GDAL band description / ``DESCRIPTION`` tag) become the range
  field titles.

Publishing: :func:`coverage_provider_def` (with ``jmgeo.ogc.config``) turns (layer, access) into a pygeoapi collection
whose ``type: coverage`` provider is :class:`PolicyRasterProvider`, a thin subclass of
pygeoapi's rasterio provider that

* honours the caller's region scope (a grant limited to regions; the list comes from
  ``layers.access_sql.region_scope`` over the typed ``Access`` in
  ``provider_def['jmgeo']['access']``): pixels outside the granted regions are masked
  (nodata) — the raster spelling of the one region rule — and a request without a bbox
  is cut to those regions — the whole file is never handed out then;
* takes ``bbox`` in CRS84 (default) or any ``bbox-crs`` the framework supports, through
  ``spatial.crs.transform_bbox`` (cached transformers; pygeoapi's provider builds a new
  Transformer per request and only accepts bare EPSG integers);
* opens the file per request only for the read (no leaked file handles) and caches the
  coverage description per (path, mtime);
* refuses CoverageJSON answers above :data:`MAX_JSON_CELLS` cells (ask for a bbox or
  ``f=GTiff``) instead of building a huge JSON document.

Output reprojection is not offered: pygeoapi 0.24's Coverages API has no ``crs``
parameter; subsets come back in EPSG:4490 (≈ CRS84) as stored.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.windows import Window, from_bounds
from shapely import box as shapely_box
from shapely import from_geojson, intersection, unary_union
from shapely.geometry import mapping

from jmgeo.db import DatabaseUnavailable
from jmgeo.ogc.compat import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderNoDataError,
    RasterioProvider,
    _get_parameter_metadata,
    coverages_api,
    read_data,
    validate_bbox,
)
from jmgeo.ogc.provider import ProviderDatabaseUnavailable, provider_access
from jmgeo.replicas import read_connection
from layers.access_sql import region_scope
from spatial.crs import CRS84_URI, JIANGMEN_EXTENT, CRSNotSupported, transform_bbox

LOGGER = logging.getLogger(__name__)

PROVIDER = "jmgeo.ogc.coverages.PolicyRasterProvider"
NATIVE_FORMAT = {"name": "GTiff", "mimetype": "image/tiff"}
FILE_PREFIX = "file:"
MAX_JSON_CELLS = 1_000_000
MAX_FILE_BYTES = 512 << 20  # whole-file answers
MAX_CELLS = 64_000_000  # one subset read into memory (a whole file is streamed as stored)

_props_cache: dict[tuple[str, float], tuple[dict, dict]] = {}
_cache_lock = threading.Lock()


def raster_path(table_name: str) -> str:
    """The COG path a raster layer version points to (see the module docstring)."""
    path = Path(table_name.removeprefix(FILE_PREFIX))
    if not path.is_absolute():
        from jmgeo.settings import get_settings

        path = Path(get_settings().var_dir) / "rasters" / path
    return str(path)


class PolicyRasterProvider(RasterioProvider):
    """pygeoapi's rasterio coverage provider, obeying the caller's region scope."""

    def __init__(self, provider_def: dict):
        provider_def = dict(provider_def)
        provider_def.setdefault("format", NATIVE_FORMAT)
        meta = provider_def.get("jmgeo", {}) or {}
        self.layer_name: str = meta.get("layer") or Path(provider_def["data"]).stem
        # the region rule's raster spelling: pixels outside these regions are masked
        self.region_scope: list[str] | None = region_scope(provider_access(provider_def))
        # BaseProvider.__init__ only, then our own (cached, closed-file) description
        super(RasterioProvider, self).__init__(provider_def)
        self.native_format = provider_def["format"]["name"]
        try:
            self._coverage_properties, self._fields = _describe(self.data)
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            LOGGER.warning("raster %s unreadable: %s", self.data, exc)
            raise ProviderConnectionError(
                user_msg="栅格数据暂不可用 / raster data unavailable") from exc
        self._data = None  # an open dataset only while a query runs
        self.axes = self._coverage_properties["axes"]
        self.crs = self._coverage_properties["bbox_crs"]
        self.num_bands = self._coverage_properties["num_bands"]
        self.filename = f"{self.layer_name}.tif"

    def get_fields(self) -> dict:
        return self._fields

    # -- policy ---------------------------------------------------------------
    def _region_shapes(self) -> list:
        """The granted regions' polygons (shapely), or [] when there is no region scope."""
        return region_shapes(self.region_scope)

    # -- query ----------------------------------------------------------------
    def query(self, properties=None, subsets=None, bbox=None, bbox_crs=None,
              datetime_=None, format_="json", **kwargs):
        properties = properties or []
        subsets = subsets or {}
        bbox = list(bbox or [])
        xl, yl = self._coverage_properties["x_axis_label"], self._coverage_properties[
            "y_axis_label"]
        if bbox and (xl in subsets or yl in subsets):
            raise ProviderInvalidQueryError(
                user_msg="bbox 与坐标轴 subset 不能同时使用 / bbox and subset on the "
                         f"{xl}/{yl} axes are exclusive")
        window = None  # lon/lat box asked for
        if bbox:
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            try:
                lon0, lat0, lon1, lat1 = transform_bbox(bbox, bbox_crs or CRS84_URI,
                                                        CRS84_URI)
            except CRSNotSupported as exc:
                raise ProviderInvalidQueryError(user_msg=f"bbox-crs: {exc}") from exc
            window = shapely_box(min(lon0, lon1), min(lat0, lat1), max(lon0, lon1),
                                 max(lat0, lat1))
        elif xl in subsets or yl in subsets:
            b = self._coverage_properties["bbox"]
            xs = subsets.get(xl, [b[0], b[2]])
            ys = subsets.get(yl, [b[1], b[3]])
            try:
                window = shapely_box(float(xs[0]), float(ys[0]), float(xs[-1]),
                                     float(ys[-1]))
            except (TypeError, ValueError, IndexError) as exc:
                raise ProviderInvalidQueryError(
                    user_msg=f"subset: 坐标无效 / invalid subset: {subsets}") from exc
        if window is not None and not all(map(math.isfinite, window.bounds)):
            raise ProviderInvalidQueryError(
                user_msg=f"bbox/subset: 坐标无效 / coordinates out of range: {bbox or subsets}")
        shapes = self._region_shapes()
        if self.region_scope is not None:
            if window is not None:
                shapes = [g for g in (intersection(s, window) for s in shapes)
                          if not g.is_empty]
            if not shapes:
                raise ProviderNoDataError(user_msg="没有可提供的数据 / no data in the "
                                                   "requested area")
        elif window is not None:
            shapes = [window]
        indexes = None
        if properties:
            try:
                indexes = [int(p) for p in properties]
            except ValueError as exc:
                raise ProviderInvalidQueryError(
                    user_msg=f"properties: 波段编号无效 / invalid band: {properties}") from exc
        if not shapes and not indexes and format_ != "json":
            # whole file, unrestricted caller: the COG as stored (pygeoapi hands content
            # over as bytes, so very large files are refused: ask for a bbox)
            size = os.stat(self.data).st_size
            if size > MAX_FILE_BYTES:
                raise ProviderInvalidQueryError(
                    user_msg=f"文件过大（{size >> 20} MiB），请用 bbox 取子集 / the coverage "
                             f"is {size >> 20} MiB: ask for a subset with bbox")
            return read_data(self.data)
        with rasterio.open(self.data) as ds:
            self._data = ds
            try:
                return self._read(ds, shapes, indexes, window, format_)
            finally:
                self._data = None

    def _read(self, ds, shapes: list, indexes, window, format_):
        """Read the pixels of ``window`` (lon/lat box; else the shapes' extent; else all),
        then set every pixel whose centre lies outside the region ``shapes`` to nodata."""
        meta = ds.meta.copy()
        area = window if window is not None else (
            unary_union(shapes) if shapes else None)
        if area is not None:
            win = pixel_window(ds, area.bounds)
            if win is None:
                raise ProviderNoDataError(
                    user_msg="请求范围与栅格不相交 / the requested area does not overlap "
                             "the coverage")
        else:
            win = Window(0, 0, ds.width, ds.height)
        cells = int(win.width) * int(win.height) * len(indexes or ds.indexes)
        if cells > MAX_CELLS:
            raise ProviderInvalidQueryError(
                user_msg=f"结果过大（{cells} 个像元），请缩小 bbox / too large ({cells} cells > "
                         f"{MAX_CELLS}): ask for a smaller bbox")
        image = ds.read(indexes=indexes, window=win)
        transform = ds.window_transform(win)
        if image.ndim == 2:
            image = image[np.newaxis, ...]
        nodata = _nodata(ds)
        if self.region_scope is not None:
            outside = geometry_mask([mapping(s) for s in shapes], out_shape=image.shape[-2:],
                                    transform=transform)
            if outside.all():
                raise ProviderNoDataError(user_msg="没有可提供的数据 / no data in the "
                                                   "requested area")
            image = image.copy()
            image[:, outside] = nodata
        meta.update(height=image.shape[-2], width=image.shape[-1], transform=transform,
                    nodata=nodata)
        left, top = transform @ (0, 0)
        right, bottom = transform @ (image.shape[-1], image.shape[-2])
        meta["bbox"] = [left, bottom, right, top]
        if image.ndim == 2:
            image = image[np.newaxis, ...]
        meta["count"] = image.shape[0]
        if format_ == "json":
            if image.size > MAX_JSON_CELLS:
                raise ProviderInvalidQueryError(
                    user_msg=f"结果过大（{image.size} 个像元），请缩小 bbox 或使用 f=GTiff / "
                             f"too large for CoverageJSON ({image.size} cells > "
                             f"{MAX_JSON_CELLS}): ask for a smaller bbox or f=GTiff")
            out = image.astype("float64")
            nodata = meta.get("nodata")
            if nodata is not None:
                out[image == nodata] = np.nan
            return _covjson(self, meta, out, indexes or list(range(1, ds.count + 1)))
        meta.pop("bbox", None)
        meta.update(driver="GTiff", compress="deflate")
        with MemoryFile() as memfile:
            with memfile.open(**meta) as dest:
                dest.write(image)
                for i, band in enumerate(indexes or range(1, ds.count + 1), start=1):
                    if ds.descriptions[band - 1]:
                        dest.set_band_description(i, ds.descriptions[band - 1])
            return memfile.read()


def region_shapes(codes: list[str] | None) -> list:
    """The current polygons (shapely, lon/lat) of regions ``codes``; [] for None. The
    raster spelling of the region rule masks every pixel outside them (coverages and
    raster map images alike)."""
    if codes is None:
        return []
    try:
        with read_connection() as conn:
            rows = conn.execute(
                "SELECT ST_AsGeoJSON(geom) AS g FROM public.region WHERE code = ANY(%s) "
                "AND valid_to IS NULL AND geom IS NOT NULL", (list(codes),)).fetchall()
    except DatabaseUnavailable as exc:
        raise ProviderDatabaseUnavailable() from exc
    return [from_geojson(r["g"]) for r in rows]


def pixel_window(ds, bounds) -> Window | None:
    """The dataset window covering lon/lat ``bounds`` (edges within 1e-6 pixel snap, so
    a bbox on cell edges gets exactly those cells); None when they do not overlap."""
    w = from_bounds(*bounds, transform=ds.transform)
    c0 = max(0, math.floor(w.col_off + 1e-6))
    r0 = max(0, math.floor(w.row_off + 1e-6))
    c1 = min(ds.width, math.ceil(w.col_off + w.width - 1e-6))
    r1 = min(ds.height, math.ceil(w.row_off + w.height - 1e-6))
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _covjson(provider: PolicyRasterProvider, meta: dict, image: np.ndarray,
             bands: list[int]) -> dict:
    """CoverageJSON with one parameter and one range per band (pygeoapi's own writes
    every band's values under one key named after a GRIB element)."""
    minx, miny, maxx, maxy = meta["bbox"]
    height, width = image.shape[-2:]
    cj: dict[str, Any] = {
        "type": "Coverage",
        "domain": {
            "type": "Domain", "domainType": "Grid",
            "axes": {"x": {"start": minx, "stop": maxx, "num": width},
                     "y": {"start": maxy, "stop": miny, "num": height}},
            "referencing": [{"coordinates": ["x", "y"], "system": {
                "type": "GeographicCRS", "id": CRS84_URI}}],
        },
        "parameters": {}, "ranges": {},
    }
    for i, band in enumerate(bands):
        key = str(band)
        title = provider.get_fields().get(key, {}).get("title") or f"band {band}"
        cj["parameters"][key] = {"type": "Parameter", "description": {"zh": title, "en": title},
                                 "observedProperty": {"label": {"zh": title, "en": title}}}
        values = image[i].astype("float64")
        cj["ranges"][key] = {
            "type": "NdArray", "dataType": "float", "axisNames": ["y", "x"],
            "shape": [height, width],
            "values": [None if np.isnan(v) else v for v in values.ravel().tolist()],
        }
    return cj


def _nodata(ds) -> float | int:
    if ds.nodata is not None:
        return ds.nodata
    kind = np.dtype(ds.dtypes[0]).kind
    if kind == "f":
        return float("nan")
    return 0


def _describe(path: str) -> tuple[dict, dict]:
    """(coverage properties, fields) of a raster file, cached per (path, mtime)."""
    key = (path, os.stat(path).st_mtime)
    hit = _props_cache.get(key)
    if hit is not None:
        return hit
    probe = RasterioProvider.__new__(RasterioProvider)
    with rasterio.open(path) as ds:
        probe._data = ds
        props = RasterioProvider._get_coverage_properties(probe)
        fields = {}
        for i, dtype in zip(ds.indexes, ds.dtypes, strict=True):
            meta = _get_parameter_metadata(ds.profile["driver"], ds.tags(i))
            title = ds.descriptions[i - 1] or ds.tags(i).get("DESCRIPTION") or \
                meta["description"] or f"band {i}"
            kind = ("number" if dtype.startswith("float") else
                    "integer" if dtype.startswith(("int", "uint")) else "string")
            fields[str(i)] = {"title": title, "type": kind}
    with _cache_lock:
        _props_cache[key] = (props, fields)
    return props, fields


def coverage_provider_def(layer: dict[str, Any], access) -> tuple[dict[str, Any], list[float]]:
    """The coverage provider entry of a raster layer (carrying the caller's access) and the
    raster's CRS84 bbox, for :func:`jmgeo.ogc.config.collection`."""
    path = raster_path(layer["table_name"])
    try:
        bbox = list(_describe(path)[0]["bbox"])
    except (OSError, rasterio.errors.RasterioIOError):
        bbox = list(JIANGMEN_EXTENT)
    return {
        "type": "coverage",
        "name": PROVIDER,
        "data": path,
        "format": dict(NATIVE_FORMAT),
        "jmgeo": {"layer": layer["name"], "access": access},
    }, bbox


def get_collection_coverage(api, request, dataset: str):
    """pygeoapi's coverage handler, with a malformed ``bbox`` answered 400 naming the
    parameter (pygeoapi answers 500). Same name, so the audit knows it hands out data."""
    raw = request.params.get("bbox")
    if raw is not None and dataset in api.config["resources"]:
        try:
            validate_bbox(raw)
        except ValueError as exc:
            headers = request.get_response_headers(**api.api_headers)
            return api.get_exception(HTTPStatus.BAD_REQUEST, headers, "json",
                                     "InvalidParameterValue", f"bbox: {exc}")
    return coverages_api.get_collection_coverage(api, request, dataset)
