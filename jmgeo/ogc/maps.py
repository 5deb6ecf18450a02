"""Map images (OGC API - Maps, core): PNG/JPEG of a vector collection, policy-aware.

Many desktop and legacy web clients in government offices only show raster maps. Every
vector collection (the regions and each visible registry layer) gets a ``type: map``
provider, :class:`PolicyMapProvider`, so pygeoapi itself lists the ``map`` link, the
OpenAPI path and the Maps core conformance class; the requests are answered here:

* ``/collections/{id}/map?bbox=&width=&height=&bbox-crs=&crs=&transparent=&f=png|jpeg``
  — ``bbox`` in ``bbox-crs`` (default CRS84; EPSG:4490 and 4326 in their authority
  order lat, lon, as for items), drawn in ``crs``: a lon/lat image (CRS84, EPSG:4490 or
  4326 — plate carrée, data are stored lon/lat) or EPSG:3857 (default: 3857 when the
  bbox is in 3857, else CRS84). Without a bbox, the collection's extent; with only one
  of ``width``/``height`` the other follows the box's aspect (default width 512).
* ``/collections/{id}/map/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}``
  — 256×256 map tiles in the tile matrix sets of ``jmgeo.ogc.tiles`` (WebMercatorQuad,
  WorldCRS84Quad, CGCS2000Quad; the same definitions and coordinate checks as the vector
  tiles). An empty tile is a transparent image (legacy clients draw no 204s).

The pixels obey the policy exactly like features and vector tiles: the provider carries
the caller's ``Access`` and asks ``layers.access_sql`` for the row scope (a region grant
draws only its region's features). Attributes never reach an image, so field limits and
masks are moot here; the route audits non-open maps as ``ogc.map`` before the bytes
leave (``jmgeo.ogc.router.execute``). Drawing is ``jmgeo.ogc.render`` (Pillow), in the
layer's MapLibre style — the owner's (``jmgeo layer style``), read in the same connection
as the features so a replaced style shows on the next image, else the platform's default
(``layers.styles``). Raster layers get the same routes through
``jmgeo.ogc.rastermaps.RasterMapProvider`` (pixels resampled from the coverage).
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import psycopg
from psycopg import sql

from jmgeo.db import DatabaseUnavailable
from jmgeo.ogc import render
from jmgeo.ogc.compat import BaseProvider, ProviderInvalidQueryError
from jmgeo.ogc.provider import (
    AccessColumnsMixin,
    ProviderDatabaseUnavailable,
    provider_access,
    split_table,
)
from jmgeo.ogc.rastermaps import RASTER_PROVIDER, RasterMapProvider
from jmgeo.ogc.tiles import (
    MAX_FEATURES,
    REGION_COLUMNS,
    SCHEMES,
    WEB_MERCATOR_HALF,
    TileParameterError,
    check_tile,
    tile_bounds,
)
from jmgeo.replicas import read_connection
from layers import styles
from spatial.crs import (
    CANONICAL_EPSG,
    CRS84_URI,
    CRSNotSupported,
    crs_uri,
    domain_sql,
    get_crs,
    is_lat_first,
)
from spatial.crs import transform_bbox as _transform_bbox

LOGGER = logging.getLogger(__name__)

PROVIDER = "jmgeo.ogc.maps.PolicyMapProvider"
MAP_FORMAT = {"name": "png", "mimetype": "image/png"}
TILE_SIZE = 256
DEFAULT_WIDTH = 512
MAX_SIZE = 4096  # pixels per side: a 4096² RGBA canvas is 64 MiB
MARGIN_PX = 8  # geometry kept this far outside the image, so clipped edges stay unseen
MERCATOR = 3857


class MapParameterError(ProviderInvalidQueryError):
    """A map parameter the service cannot honour: 400, naming it and what is allowed."""

    ogc_exception_code = "InvalidParameterValue"


class PolicyMapProvider(AccessColumnsMixin, BaseProvider):
    """pygeoapi ``map`` provider over one framework table, obeying the caller's access."""

    def __init__(self, provider_def: dict):
        provider_def = dict(provider_def)
        provider_def.setdefault("format", dict(MAP_FORMAT))
        super().__init__(provider_def)
        data = provider_def["data"]
        self.table: str = data["table"] if isinstance(data, dict) else data
        self.static_where: str | None = data.get("where") if isinstance(data, dict) else None
        self.id_field = provider_def.get("id_field", "fid")
        self.geom_field: str = provider_def.get("geom_field", "geom")
        self.access = provider_access(provider_def)
        meta = provider_def.get("jmgeo", {}) or {}
        published = meta.get("columns")
        self.published = tuple(published) if published is not None else None
        self.layer_name: str = meta.get("layer") or split_table(self.table)[1]
        self.registry_layer: bool = bool(meta.get("registry", True))
        self.theme: str | None = meta.get("theme")
        self.geometry_type: str | None = meta.get("geometry_type")
        self.max_features = int((self.options or {}).get("max_features", MAX_FEATURES))

    def __repr__(self) -> str:
        return f"<PolicyMapProvider> {self.table}"

    def get_fields(self) -> dict:
        return {}  # an image carries no attributes (no `properties` selection)

    def map_query(self, frame: render.Frame, epsg: int) -> tuple[sql.Composable, list]:
        """The one statement that fetches what a map draws: WKB in the map CRS, simplified
        to half a pixel and clipped a few pixels outside the frame (public for EXPLAIN)."""
        geom = sql.SQL("t.{}").format(sql.Identifier(self.geom_field))
        mx = (frame.maxx - frame.minx) / frame.width * MARGIN_PX
        my = (frame.maxy - frame.miny) / frame.height * MARGIN_PX
        clip = [frame.minx - mx, frame.miny - my, frame.maxx + mx, frame.maxy + my]
        if epsg == MERCATOR:
            clip[1], clip[3] = max(clip[1], -WEB_MERCATOR_HALF), min(clip[3],
                                                                     WEB_MERCATOR_HALF)
            box = _transform_bbox(clip, MERCATOR, CANONICAL_EPSG, always_xy=True)
        else:
            box = [max(clip[0], -180.0), max(clip[1], -90.0), min(clip[2], 180.0),
                   min(clip[3], 90.0)]
        # Douglas-Peucker at half a pixel, in degrees, before any reprojection (as tiles)
        tolerance = min((box[2] - box[0]) / frame.width, (box[3] - box[1]) / frame.height) / 2
        drawn = sql.SQL("ST_Simplify({g}, %s, true)").format(
            g=domain_sql(geom, MERCATOR) if epsg == MERCATOR else geom)
        if epsg == MERCATOR:
            drawn = sql.SQL("ST_Transform({}, 3857)").format(drawn)
        columns = sql.SQL("ST_AsBinary(ST_ClipByBox2D({d}, ST_MakeEnvelope(%s, %s, %s, %s)))"
                          " AS wkb").format(d=drawn)
        params: list[Any] = [tolerance, *clip]
        where = [sql.SQL("{g} && ST_MakeEnvelope(%s, %s, %s, %s, {srid})").format(
            g=geom, srid=sql.Literal(CANONICAL_EPSG))]
        params += box
        if self.static_where:  # trusted: from our generated config, never a request
            where.append(sql.SQL(self.static_where))
        scope, scope_params = self.access_sql().row_scope()  # THE region rule
        if scope is not None:
            where.append(scope)
            params.extend(scope_params)
        params.append(self.max_features)
        schema, name = split_table(self.table)
        query = sql.SQL("SELECT {cols} FROM {table} AS t WHERE {where} LIMIT %s").format(
            cols=columns, table=sql.Identifier(schema, name),
            where=sql.SQL(" AND ").join(where))
        return query, params

    def style(self, conn) -> dict[str, Any]:
        """The layer's MapLibre style: the owner's stored one, else the platform default
        (by theme and geometry type; no URLs or labels — an image has neither)."""
        stored = styles.stored_style(conn, self.layer_name) if self.registry_layer else None
        return stored or styles.default_style(
            {"name": self.layer_name, "theme": self.theme,
             "geometry_type": self.geometry_type}, (), "", "")

    def draw(self, frame: render.Frame, epsg: int, fmt: str = "png",
             transparent: bool = True) -> bytes:
        """The image of this caller's features in ``frame`` (map CRS ``epsg``), drawn in
        the layer's style."""
        query, params = self.map_query(frame, epsg)
        try:
            with read_connection() as conn:
                style = self.style(conn)
                try:
                    rows = conn.execute(query, params).fetchall()
                except psycopg.errors.UndefinedTable as exc:  # a dropped version: no data
                    LOGGER.warning("map table missing: %s", exc)
                    rows = []
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        style_for = render.style_reader(
            lambda kind: styles.paint_for(style, kind, self.layer_name))
        return render.render(frame, (r["wkb"] for r in rows), fmt, transparent, style_for)

    def query(self, style=None, bbox=None, width=DEFAULT_WIDTH, height=None, crs=CRS84_URI,
              bbox_crs=CRS84_URI, format_="png", transparent=True, **kwargs) -> bytes:
        """pygeoapi's map provider contract (``bbox`` already in ``crs``, x/y order)."""
        epsg = map_epsg(crs)
        frame = render.Frame(*map(float, bbox), int(width), int(height or width))
        return self.draw(frame, epsg, format_, bool(transparent))


def map_provider_def(layer: dict[str, Any], access) -> dict[str, Any]:
    """The ``type: map`` provider entry of one vector registry layer for this caller."""
    return {"type": "map", "name": PROVIDER, "data": {"table": layer["table_name"]},
            "id_field": "fid", "geom_field": "geom", "format": dict(MAP_FORMAT),
            "jmgeo": {"layer": layer["name"], "access": access, "theme": layer.get("theme"),
                      "geometry_type": layer.get("geometry_type")}}


def regions_map_provider_def() -> dict[str, Any]:
    """The map provider of the ``regions`` collection (open to everyone)."""
    return {"type": "map", "name": PROVIDER,
            "data": {"table": "public.region",
                     "where": "t.valid_to IS NULL AND t.geom IS NOT NULL"},
            "id_field": "code", "geom_field": "geom", "format": dict(MAP_FORMAT),
            "jmgeo": {"layer": "regions", "columns": list(REGION_COLUMNS), "registry": False,
                      "theme": "framework", "geometry_type": "MultiPolygon"}}


# -- request parameters -------------------------------------------------------------


def map_epsg(spec: str) -> int:
    """The drawing CRS of a ``crs`` value: 3857, or 4490 for any lon/lat one (CRS84,
    EPSG:4490, EPSG:4326 — centimetres apart, drawn lon/lat); else a 400 naming them."""
    try:
        crs = get_crs(spec)
    except CRSNotSupported:
        crs = None
    if crs is not None:
        if crs == get_crs("CRS84") or crs.to_epsg() in (4490, 4326):
            return CANONICAL_EPSG
        if crs.to_epsg() == MERCATOR:
            return MERCATOR
    raise MapParameterError(
        user_msg=f"不支持的地图坐标系 / crs not supported for maps: {spec!r}; use "
                 f"{CRS84_URI}, EPSG:4490, EPSG:4326 or EPSG:3857")


def map_epsg_or_none(spec: str) -> int | None:
    try:
        return map_epsg(spec)
    except MapParameterError:
        return None


def map_format(request) -> str:
    """``f`` (``png`` default, ``jpeg``/``jpg``), or the Accept header without ``f``."""
    value = request.params.get("f")
    if value is None:
        accept = request.headers.get("Accept", "") if hasattr(request, "headers") else ""
        return "jpeg" if "image/jpeg" in accept and "image/png" not in accept else "png"
    fmt = render.FORMAT_ALIASES.get(value.lower(), value.lower())
    if fmt not in render.FORMATS:
        raise MapParameterError(
            user_msg=f"不支持的地图格式 / unsupported map format f={value!r}; use one of "
                     f"{', '.join(render.FORMATS)}")
    return fmt


def _size(request, name: str) -> int | None:
    raw = request.params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SIZE:
        raise MapParameterError(
            user_msg=f"参数 {name} 必须是 1..{MAX_SIZE} 的整数 / {name} must be an integer "
                     f"1..{MAX_SIZE}: {raw!r}")
    return value


def _bbox(request, extent: list[float]) -> tuple[list[float], str]:
    """The requested box as given and its CRS (default: the collection's CRS84 extent)."""
    bbox_crs = request.params.get("bbox-crs") or CRS84_URI
    try:
        get_crs(bbox_crs)
    except CRSNotSupported:
        raise MapParameterError(
            user_msg=f"不支持的 bbox-crs / bbox-crs not supported: {bbox_crs!r}") from None
    raw = request.params.get("bbox")
    if raw in (None, ""):
        return list(extent), CRS84_URI
    try:
        bbox = [float(v) for v in raw.split(",")]
    except ValueError:
        bbox = []
    if (len(bbox) != 4 or not all(math.isfinite(v) for v in bbox)
            or bbox[0] >= bbox[2] or bbox[1] >= bbox[3]):
        raise MapParameterError(
            user_msg=f"参数 bbox 须为 4 个数 minx,miny,maxx,maxy 且 min < max / bbox must be "
                     f"four numbers minx,miny,maxx,maxy with min < max: {raw!r}")
    return bbox, bbox_crs


def _frame(request, extent: list[float]) -> tuple[render.Frame, int, str]:
    """The frame in the drawing CRS, that CRS's EPSG code and the ``crs`` asked for."""
    bbox, bbox_crs = _bbox(request, extent)
    out_crs = request.params.get("crs") or (
        bbox_crs if map_epsg_or_none(bbox_crs) == MERCATOR else CRS84_URI)
    epsg = map_epsg(out_crs)
    target = "CRS84" if epsg == CANONICAL_EPSG else MERCATOR
    try:  # authority axis order in, x/y out (CRS84 and 3857 are both east-first)
        box = _transform_bbox(bbox, bbox_crs, target)
    except Exception:  # noqa: BLE001 — pyproj's errors for boxes off its area
        box = [math.inf] * 4
    if not all(math.isfinite(v) for v in box) or box[0] >= box[2] or box[1] >= box[3] or (
            epsg == CANONICAL_EPSG and (box[1] < -90 or box[3] > 90)):
        raise MapParameterError(
            user_msg=f"参数 bbox 超出坐标系范围 / bbox outside the CRS's area: "
                     f"{request.params.get('bbox')!r} in {bbox_crs}")
    width, height = _size(request, "width"), _size(request, "height")
    aspect = (box[2] - box[0]) / (box[3] - box[1])
    if width is None and height is None:
        width = DEFAULT_WIDTH
    if height is None:
        height = max(1, min(MAX_SIZE, round(width / aspect)))
    if width is None:
        width = max(1, min(MAX_SIZE, round(height * aspect)))
    return render.Frame(*box, width, height), epsg, out_crs


def _transparent(request) -> bool:
    return str(request.params.get("transparent", "true")).lower() not in ("false", "0", "no")


# -- handlers (run by jmgeo.ogc.router.execute for the caller's audience) -------------


def _provider(api, dataset: str) -> PolicyMapProvider | RasterMapProvider | None:
    for p in api.config["resources"].get(dataset, {}).get("providers", []):
        if p.get("type") == "map":
            return RasterMapProvider(p) if p.get("name") == RASTER_PROVIDER else \
                PolicyMapProvider(p)
    return None


def _image(headers: dict, data: bytes, fmt: str) -> tuple[dict, int, bytes]:
    headers["Content-Type"] = render.FORMATS[fmt]
    headers.pop("Content-Encoding", None)  # PNG and JPEG are compressed already
    return headers, HTTPStatus.OK, data


def _checked(api, request, dataset: str):
    """(provider, headers) or an error answer: a collection the caller may not see is
    404 exactly like one that never existed; a visible one without a map (a table, the
    catalog) is 400."""
    headers = request.get_response_headers(**api.api_headers)
    if dataset not in api.config["resources"]:
        return None, api.get_exception(HTTPStatus.NOT_FOUND, headers, "json", "NotFound",
                                       "Collection not found")
    provider = _provider(api, dataset)
    if provider is None:
        return None, api.get_exception(
            HTTPStatus.BAD_REQUEST, headers, "json", "InvalidParameterValue",
            f"该资源没有地图（无矢量几何）/ collection {dataset!r} has no map (no vector "
            "geometry)")
    return (provider, headers), None


def get_collection_map(api, request, dataset: str):
    """``/collections/{id}/map``: one image of the requested box."""
    checked, error = _checked(api, request, dataset)
    if error:
        return error
    provider, headers = checked
    extent = (api.config["resources"][dataset].get("extents", {}).get("spatial", {})
              .get("bbox"))
    try:
        fmt = map_format(request)
        frame, epsg, out_crs = _frame(request, extent)
        data = provider.draw(frame, epsg, fmt, _transparent(request))
    except (MapParameterError, ProviderDatabaseUnavailable) as err:
        return api.get_exception(err.http_status_code, headers, "json",
                                 err.ogc_exception_code, err.message)
    headers["Content-Crs"] = f"<{crs_uri(out_crs)}>"
    box = [frame.minx, frame.miny, frame.maxx, frame.maxy]
    if is_lat_first(out_crs):  # in the authority axis order of `crs`, as `bbox` is
        box = [box[1], box[0], box[3], box[2]]
    headers["Content-Bbox"] = ",".join(f"{v:.9g}" for v in box)
    return _image(headers, data, fmt)


def get_collection_map_tile(api, request, dataset: str, tileset: str, z, y, x):
    """``/collections/{id}/map/tiles/{tms}/{z}/{y}/{x}``: one 256×256 map tile."""
    checked, error = _checked(api, request, dataset)
    if error:
        return error
    provider, headers = checked
    try:
        fmt = map_format(request)
        tileset, z, y, x = check_tile(tileset, z, y, x)
        if tileset == "WebMercatorQuad":
            size = 2 * WEB_MERCATOR_HALF / 2 ** z
            minx, maxy = -WEB_MERCATOR_HALF + x * size, WEB_MERCATOR_HALF - y * size
            frame = render.Frame(minx, maxy - size, minx + size, maxy, TILE_SIZE, TILE_SIZE)
            epsg = MERCATOR
        else:
            frame = render.Frame(*tile_bounds(tileset, z, y, x), TILE_SIZE, TILE_SIZE)
            epsg = CANONICAL_EPSG
        data = provider.draw(frame, epsg, fmt, _transparent(request))
    except (MapParameterError, TileParameterError, ProviderDatabaseUnavailable) as err:
        return api.get_exception(err.http_status_code, headers, "json",
                                 err.ogc_exception_code, err.message)
    return _image(headers, data, fmt)


def _path_param(name: str, description: str, schema: dict) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def declare_map_formats(oas: dict[str, Any]) -> dict[str, Any]:
    """pygeoapi's OpenAPI offers only the provider's one format (png) for ``/map`` and
    knows nothing of map tiles: JPEG is served too, and so are the tiles — say so."""
    paths = oas.get("paths", {})
    for path in [p for p in paths if p.endswith("/map")]:
        op = paths[path].get("get", {})
        fmt = None
        for param in op.get("parameters", []):
            if param.get("name") == "f":
                param.setdefault("schema", {})["enum"] = list(render.FORMATS)
                fmt = param
        paths[f"{path}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"] = {
            "get": {
                "summary": "Get a map tile", "tags": op.get("tags", []),
                "operationId": f"getMapTile{path.split('/')[2]}",
                "description": f"{TILE_SIZE}×{TILE_SIZE} map tile (empty: transparent)",
                "parameters": [
                    _path_param("tileMatrixSetId", "tile matrix set",
                                {"type": "string", "enum": list(SCHEMES)}),
                    _path_param("tileMatrix", "zoom level", {"type": "integer"}),
                    _path_param("tileRow", "row", {"type": "integer"}),
                    _path_param("tileCol", "column", {"type": "integer"}),
                    *([fmt] if fmt else [])],
                "responses": {"200": {"description": "the tile", "content": {
                    mime: {} for mime in render.FORMATS.values()}}}}}
    return oas
