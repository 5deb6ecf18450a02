"""TileJSON 3.0 per collection and tile matrix set, and the layers' MapLibre styles.

Paths (under ``/ogc``; pygeoapi 0.24 has no OGC API Styles, so these are our routes,
spelled as OGC API Styles spells them where it has a path for it):

* ``/collections/{id}/tiles/{tms}/tilejson.json`` — TileJSON 3.0.0 (also
  ``…/tiles/{tms}/metadata?f=tilejson``): the ``tiles`` URL template, ``minzoom`` /
  ``maxzoom``, ``bounds`` computed from the data the caller may see (per version and
  access; cached in the process — a version's table never changes), ``vector_layers``
  with the caller's visible fields (values: the Chinese label and the type);
* ``/collections/{id}/styles`` — OGC API Styles' list of a collection's styles (one,
  ``default``);
* ``/collections/{id}/styles/default`` — the MapLibre style (``version`` 8): the owner's
  (``jmgeo layer style NAME FILE.json``, or ``PUT`` here with the owner's key), else the
  platform's default by geometry type (``layers.styles.default_style``), its one source
  the WebMercatorQuad TileJSON above;
* ``/styles/glyphs/{fontstack}/{range}.pbf`` — glyph ranges for labels. MapLibre refuses
  a style with text labels and no ``glyphs`` URL, and the platform fetches nothing from
  the internet: the range is served from ``<var>/glyphs/{fontstack}/{range}.pbf`` when a
  deployment put the font's ranges there, else as an empty glyph set. Chinese labels
  need no glyph files: MapLibre draws CJK ideographs with the browser's local font
  (``localIdeographFontFamily``, on by default); only Latin letters and digits wait for
  real ranges.

All of these answer through the caller's audience like every OGC route: a collection
the caller may not see answers 404, and the fields are the caller's.
"""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from typing import Any

from psycopg import sql

from jmgeo.ogc.compat import url_join
from jmgeo.ogc.provider import split_table
from jmgeo.replicas import read_connection
from layers import styles

STYLE_TYPE = "application/vnd.mapbox.style+json"
DEFAULT_STYLE = "default"
_bounds: dict[tuple, list[float] | None] = {}
_bounds_lock = threading.Lock()


def tilejson_url(base_url: str, dataset: str, tms: str = "WebMercatorQuad") -> str:
    return url_join(base_url, f"collections/{dataset}/tiles/{tms}/tilejson.json")


def glyphs_url(base_url: str) -> str:
    return url_join(base_url, "styles/glyphs") + "/{fontstack}/{range}.pbf"


def data_bounds(provider) -> list[float] | None:
    """[west, south, east, north] of the rows the provider's caller may see (None: no
    rows). Cached per table (= version), static filter and access decision."""
    from jmgeo.ogc.tilecache import access_hash

    key = (provider.table, provider.static_where, access_hash(provider.access))
    if key in _bounds:
        return _bounds[key]
    geom = sql.SQL("t.{}").format(sql.Identifier(provider.geom_field))
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if provider.static_where:  # trusted: from our generated config
        where.append(sql.SQL(provider.static_where))
    scope, scope_params = provider.access_sql().row_scope()
    if scope is not None:
        where.append(scope)
        params.extend(scope_params)
    schema, name = split_table(provider.table)
    query = sql.SQL(
        "SELECT ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n FROM "
        "(SELECT ST_Extent({g}) AS e FROM {t} AS t WHERE {w}) AS x").format(
        g=geom, t=sql.Identifier(schema, name), w=sql.SQL(" AND ").join(where))
    with read_connection() as conn:
        row = conn.execute(query, params).fetchone()
    out = None if row is None or row["w"] is None else \
        [round(float(row[k]), 7) for k in ("w", "s", "e", "n")]
    with _bounds_lock:
        if len(_bounds) > 4096:  # versions x audiences: small; never unbounded
            _bounds.clear()
        _bounds[key] = out
    return out


def tilejson(provider, server_url: str, dataset: str, tileset: str | None,
             title: str | None, description: str | None) -> dict[str, Any]:
    """TileJSON 3.0.0 of one collection's tiles in one tile matrix set."""
    from jmgeo.ogc.tiles import TILE_MATRIX_SETS
    from spatial.crs import JIANGMEN_EXTENT

    tms = TILE_MATRIX_SETS.get(tileset or "") or TILE_MATRIX_SETS[provider.schemes[0]]
    template = (provider._tile_url(server_url, dataset, tms.tileMatrixSet)
                .replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}")
                .replace("{tileCol}", "{x}"))
    labels = provider.labels
    fields = {k: (f"{labels[k]} ({v['type']})" if labels.get(k) else v["type"])
              for k, v in provider.get_fields().items()}
    bounds = data_bounds(provider) or list(JIANGMEN_EXTENT)
    zoom = provider.options["zoom"]
    doc: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": title or dataset,
        "description": description,
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": int(zoom["min"]),
        "maxzoom": int(zoom["max"]),
        "bounds": bounds,
        "center": [round((bounds[0] + bounds[2]) / 2, 7), round((bounds[1] + bounds[3]) / 2, 7),
                   max(int(zoom["min"]), 10)],
        "vector_layers": [{"id": provider.layer_name, "fields": fields,
                           "minzoom": int(zoom["min"]), "maxzoom": int(zoom["max"])}],
        # not TileJSON: which tile matrix set the z/x/y are in (MapLibre reads only
        # WebMercatorQuad; OpenLayers builds a grid for the others from /TileMatrixSets)
        "tileMatrixSet": tms.tileMatrixSet,
    }
    if provider.version is not None:
        doc["version"] = f"{int(provider.version)}.0.0"
    return doc


# -- handlers run through jmgeo.ogc.router.execute (the caller's audience) -------------

def _tile_provider(api, dataset: str):
    """The collection's PolicyMVTProvider, or None (not a vector collection)."""
    from jmgeo.ogc.tiles import PROVIDER, PolicyMVTProvider

    res = api.config["resources"].get(dataset)
    if res is None:
        return None
    for p in res.get("providers", []):
        if p.get("type") == "tile" and p.get("name") == PROVIDER:
            return PolicyMVTProvider(p)
    return None


def _text(value, locale: str = "zh-CN") -> str | None:
    if isinstance(value, dict):
        return value.get(locale) or next(iter(value.values()), None)
    return value


def _not_found(api, request, what: str):
    headers = request.get_response_headers(**api.api_headers)
    return api.get_exception(HTTPStatus.NOT_FOUND, headers, "json", "NotFound", what)


def _json(api, request, body: dict, content_type: str = "application/json"):
    headers = request.get_response_headers(**api.api_headers)
    headers["Content-Type"] = content_type
    return headers, HTTPStatus.OK, json.dumps(body, ensure_ascii=False)


def tilejson_document(api, request, dataset: str, tileset: str):
    from jmgeo.ogc.tiles import tiles_metadata

    provider = _tile_provider(api, dataset)
    if provider is None or tileset not in provider.schemes:
        return tiles_metadata(api, request, dataset, tileset)  # pygeoapi's 404 / our 400
    res = api.config["resources"][dataset]
    return _json(api, request, tilejson(provider, api.base_url, dataset, tileset,
                                        _text(res.get("title")),
                                        _text(res.get("description"))))


def layer_row(dataset: str) -> dict[str, Any] | None:
    """The registry row a style is made from (name, title, theme, geometry, labels); the
    geometry type, when the registry has none, from the current version's column."""
    with read_connection() as conn:
        return conn.execute(
            "SELECT l.name, l.title, l.theme, l.field_labels, coalesce(l.geometry_type, "
            "(SELECT g.type FROM geometry_columns g WHERE g.f_table_schema || '.' || "
            "g.f_table_name = v.table_name AND g.f_geometry_column = 'geom')) AS "
            "geometry_type FROM layer l LEFT JOIN layer_version v ON v.layer_id = l.id AND "
            "v.version = l.current_version WHERE l.name = %s", (dataset,)).fetchone()


def style_for(api, dataset: str) -> dict[str, Any] | None:
    """The collection's style as the caller gets it (None: no vector collection)."""
    provider = _tile_provider(api, dataset)
    if provider is None:
        return None
    row = layer_row(dataset)
    if row is None:  # the platform's own collections (regions)
        res = api.config["resources"][dataset]
        row = {"name": dataset, "title": _text(res.get("title")), "theme": "framework",
               "geometry_type": "MultiPolygon", "field_labels": provider.labels}
    with read_connection() as conn:
        return styles.effective_style(conn, row, list(provider.get_fields()),
                                      tilejson_url(api.base_url, dataset),
                                      glyphs_url(api.base_url), masked=provider.masks)


def style_document(api, request, dataset: str, style_id: str):
    style = style_for(api, dataset) if style_id == DEFAULT_STYLE else None
    if style is None:
        return _not_found(api, request, f"样式不存在 / no style {style_id!r} for {dataset!r}")
    return _json(api, request, style, STYLE_TYPE)


def styles_list(api, request, dataset: str):
    if _tile_provider(api, dataset) is None:
        return _not_found(api, request, f"没有样式 / no styles for {dataset!r}")
    href = url_join(api.base_url, f"collections/{dataset}/styles/{DEFAULT_STYLE}")
    return _json(api, request, {"styles": [{
        "id": DEFAULT_STYLE, "title": "默认样式 / default style",
        "links": [{"rel": "stylesheet", "type": STYLE_TYPE, "href": f"{href}?f=mapbox",
                   "title": "MapLibre / Mapbox GL style"}]}],
        "default": DEFAULT_STYLE})


def collection_links(base_url: str, dataset: str) -> list[dict[str, str]]:
    """The links a vector collection carries to its TileJSON and styles."""
    coll = url_join(base_url, "ogc", f"collections/{dataset}")
    return [
        {"type": "application/json", "rel": "describedby",
         "title": "TileJSON 3.0 (WebMercatorQuad)",
         "href": f"{coll}/tiles/WebMercatorQuad/tilejson.json"},
        {"type": "application/json", "rel": "describedby",
         "title": "TileJSON 3.0 (CGCS2000Quad)",
         "href": f"{coll}/tiles/CGCS2000Quad/tilejson.json"},
        {"type": "application/json", "rel": "http://www.opengis.net/def/rel/ogc/1.0/styles",
         "title": "样式列表 / styles", "href": f"{coll}/styles"},
        {"type": STYLE_TYPE, "rel": "stylesheet",
         "title": "默认地图样式 / default MapLibre style",
         "href": f"{coll}/styles/{DEFAULT_STYLE}"},
    ]


_RANGE = re.compile(r"^\d{1,5}-\d{1,5}$")
_FONTSTACK = re.compile(r"^[\w ,.\-]{1,200}$")


def glyph_range(fontstack: str, rng: str) -> bytes | None:
    """One glyph range's PBF bytes: the deployment's file, else an empty glyph set
    (b""); None for a malformed request."""
    from jmgeo.settings import get_settings

    if not _RANGE.match(rng) or not _FONTSTACK.match(fontstack) or ".." in fontstack:
        return None
    root = get_settings().var_dir / "glyphs"
    for name in [fontstack, *fontstack.split(",")]:
        path = root / name.strip() / f"{rng}.pbf"
        if path.is_file():
            return path.read_bytes()
    return b""
