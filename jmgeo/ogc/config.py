"""Build pygeoapi's configuration from the static YAML and the layer registry.

Each *audience* (a caller's department with its grants, or the public) gets its own
configuration holding only the collections it may see, each provider carrying the
caller's ``layers.policy.Access`` itself (``provider_def['jmgeo']['access']``: fields,
masks, region scope — typed, built by the policy only). Identical audiences share one
configuration: the cache key is a fingerprint of the access decisions themselves, so a
new grant, an expiry or a new load produces a new key and no worker serves stale rights.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from jmgeo.ogc.coverages import coverage_provider_def
from jmgeo.ogc.maps import map_provider_def, regions_map_provider_def
from jmgeo.ogc.rastermaps import raster_map_provider_def
from jmgeo.ogc.tiles import REGION_COLUMNS, regions_tile_provider_def, tile_provider_def
from layers.access_sql import item_id_field
from layers.policy import Access, Caller, visible_layers
from spatial.crs import CRS84_URI, EPSG_URI, JIANGMEN_EXTENT, SUPPORTED_OUTPUT_CRS

PROVIDER = "jmgeo.ogc.provider.PostGISProvider"
STORAGE_CRS = EPSG_URI.format(code=4490)
THEME_KEYWORDS = {"land": "国土", "water": "水务", "transport": "交通", "civil_defence": "人防",
                  "planning": "规划", "environment": "环保", "framework": "地理空间框架"}


STATIC_CONFIG = "pygeoapi-config.yml"  # package data of jmgeo.ogc, beside this module
# the platform's versions of pygeoapi's HTML templates (local scripts and styles only,
# nothing inline: the strict Content-Security-Policy of jmgeo.web); pygeoapi falls back
# to its own for the pages not overridden, and those extend our _base.html
TEMPLATES_DIR = Path(__file__).parent / "templates"


@lru_cache
def static_config() -> dict[str, Any]:
    """The static part of pygeoapi's configuration (server, metadata), read as package
    data so an installed wheel finds it as a source checkout does."""
    text = resources.files("jmgeo.ogc").joinpath(STATIC_CONFIG).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _extent() -> dict[str, Any]:
    return {"spatial": {"bbox": list(JIANGMEN_EXTENT), "crs": CRS84_URI}}


def regions_resource() -> dict[str, Any]:
    """The framework's administrative regions: the first collection, open to all."""
    return {
        "type": "collection",
        "title": {"zh-CN": "江门市行政区划", "en-US": "Jiangmen administrative regions"},
        "description": {
            "zh-CN": "江门市及所辖7个县级行政区的界线（CGCS2000），区划代码按GB/T 2260。",
            "en-US": "Jiangmen city and its 7 county-level divisions (CGCS2000), GB/T 2260 codes.",
        },
        "keywords": ["行政区划", "administrative regions", "GB/T 2260", "framework"],
        "links": [],
        "extents": _extent(),
        "providers": [{
            "type": "feature",
            "name": PROVIDER,
            "data": {"table": "public.region",
                     "where": "t.valid_to IS NULL AND t.geom IS NOT NULL"},
            "id_field": "code",
            "geom_field": "geom",
            "storage_crs": STORAGE_CRS,
            "crs": list(SUPPORTED_OUTPUT_CRS),
            "title_field": "name",
            "jmgeo": {"columns": list(REGION_COLUMNS),
                      "labels": {"code": "区划代码", "name": "名称", "kind": "类别",
                                 "parent_code": "上级代码", "valid_from": "启用日期",
                                 "source": "来源"}},
        }, regions_tile_provider_def(), regions_map_provider_def()],
    }


def data_extents(layer: dict[str, Any], access: Access,
                 scope_bbox: list[float] | None = None) -> dict[str, Any] | None:
    """The collection's extents from its current version's data (``layer_version.extent``,
    ``layers.extents``), as the caller may know them: a region-scoped grant sees its
    regions' box (``scope_bbox``: the data's own box, even cut to it, would say where
    rows outside the grant lie) and no time span (its rows' dates are not the layer's);
    the time span only from a field the caller sees in clear. None: nothing
    computed (a version published before migration 0021 and never rolled back to)."""
    import datetime as dt

    stored = layer.get("extent") or {}
    if not stored:
        return None
    out: dict[str, Any] = {}
    bbox = stored.get("bbox")
    if bbox and scope_bbox:
        bbox = scope_bbox if scope_bbox[0] <= scope_bbox[2] else None
    if bbox:
        out["spatial"] = {"bbox": bbox, "crs": CRS84_URI}
    temporal = stored.get("temporal")
    if temporal and access.regions is None and temporal["field"] not in access.masks and (
            access.fields is None or temporal["field"] in access.fields):
        begin, end = (dt.datetime.fromisoformat(v) for v in temporal["interval"])
        out["temporal"] = {"begin": begin, "end": end,
                           "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return out


def collection(layer: dict[str, Any], access: Access, providers: list[dict[str, Any]],
               bbox: list[float] | None = None, *extra_keywords: str,
               extents: dict[str, Any] | None = None) -> dict[str, Any]:
    """The collection entry every registry layer gets, vector or raster: its extents
    those of its data (:func:`data_extents`; a raster's from its file, ``bbox``)."""
    theme = layer.get("theme") or ""
    keywords = [k for k in (theme, THEME_KEYWORDS.get(theme), layer.get("owner_name"),
                            access.sharing_class, *extra_keywords) if k]
    return {
        "type": "collection",
        "title": layer["title"],
        "description": layer.get("description") or layer["title"],
        "keywords": keywords,
        "links": [],
        "extents": _with_spatial(extents) if extents is not None else (
            {"spatial": {"bbox": bbox, "crs": CRS84_URI}} if bbox else _extent()),
        "providers": providers,
    }


def _with_spatial(extents: dict[str, Any]) -> dict[str, Any]:
    """pygeoapi insists on ``extents.spatial``: a collection whose data has no box
    (a table, an empty layer) carries the city's, marked for removal (``jmgeo.nobox``)
    from what clients read (``jmgeo.ogc.router._describe_collections``)."""
    if "spatial" in extents:
        return extents
    return {**extents, "spatial": {**_extent()["spatial"], "jmgeo.nobox": True}}


def layer_resource(layer: dict[str, Any], access: Access,
                   scope: list[float] | None = None) -> dict[str, Any]:
    """One vector registry layer: features, vector tiles and map images, carrying the
    caller's access."""
    provider: dict[str, Any] = {
        "type": "feature",
        "name": PROVIDER,
        "data": {"table": layer["table_name"]},
        "id_field": "fid",
        "geom_field": "geom",
        "storage_crs": STORAGE_CRS,
        "crs": list(SUPPORTED_OUTPUT_CRS),
        "jmgeo": {
            "layer": layer["name"],
            "version": layer["current_version"],
            "access": access,
            "labels": dict(layer.get("field_labels") or {}),
        },
    }
    return collection(layer, access, [provider, tile_provider_def(layer, access),
                                      map_provider_def(layer, access)],
                      extents=data_extents(layer, access, scope))


TABLE_PROVIDER = "jmgeo.ogc.provider.TableProvider"
TABLE_KEYWORDS = ("table", "表格", "无几何 / no geometry")


def table_resource(layer: dict[str, Any], access: Access,
                   scope: list[float] | None = None) -> dict[str, Any]:
    """One table resource: a feature collection whose features have ``geometry: null``.

    No tiles, no bbox, no ``region``; its items are keyed by the declared key when the
    caller may see it in clear (``layers.access_sql.item_id_field``), else by ``fid``.
    It has no spatial extent; pygeoapi insists on ``extents.spatial``, so the keywords
    say "table" (and ``jmgeo.kind``) and the extent is the platform's area of interest.
    """
    id_field = item_id_field(access, layer.get("key_field"))
    provider: dict[str, Any] = {
        "type": "feature",
        "name": TABLE_PROVIDER,
        "data": {"table": layer["table_name"]},
        "id_field": id_field,
        "geom_field": None,
        "jmgeo": {
            "layer": layer["name"],
            "kind": "table",
            "key_field": layer.get("key_field"),
            "version": layer["current_version"],
            "access": access,
            "labels": dict(layer.get("field_labels") or {}),
        },
    }
    return collection(layer, access, [provider], None, *TABLE_KEYWORDS,
                      extents=data_extents(layer, access))


def raster_resource(layer: dict[str, Any], access: Access,
                    scope: list[float] | None = None) -> dict[str, Any]:
    """One raster registry layer: an OGC API Coverages collection, and map images."""
    provider, bbox = coverage_provider_def(layer, access)
    if scope is not None:  # a region grant sees its regions' box, not the file's
        bbox = scope if scope[0] <= scope[2] else None
    return collection(layer, access, [provider, raster_map_provider_def(layer, access)],
                      bbox, "raster")


def audience_resources(conn, caller: Caller) -> tuple[dict[str, Any], dict[str, Access]]:
    """The collections this caller may see, and the access behind each one."""
    from jmgeo.ogc.records import records_resource

    resources: dict[str, Any] = {"regions": regions_resource(),
                                 "catalog": records_resource(caller)}
    accesses: dict[str, Access] = {}
    builders = {"vector": layer_resource, "raster": raster_resource, "table": table_resource}
    scopes: dict[tuple[str, ...] | None, list[float] | None] = {}  # one query per region set
    for layer, access in visible_layers(conn, caller):
        build = builders[layer["kind"]]
        if access.regions not in scopes:
            scopes[access.regions] = _scope_bbox(conn, access)
        resources[layer["name"]] = build(layer, access, scopes[access.regions])
        accesses[layer["name"]] = access
    return resources, accesses


def page_limits() -> dict[str, Any]:
    """pygeoapi's ``server.limits`` from the settings (JMGEO_ITEMS_PAGE_SIZE,
    JMGEO_ITEMS_MAX_LIMIT): a default page that suits desktop clients (100: GDAL reads
    738 features in 8 requests, not 75), a larger ``limit`` refused beyond the maximum."""
    from jmgeo.settings import get_settings

    s = get_settings()
    return {"default_items": s.items_page_size,
            "max_items": max(s.items_max_limit, s.items_page_size), "on_exceed": "error"}


def _scope_bbox(conn, access: Access) -> list[float] | None:
    """The box of a region-scoped grant's regions (None: no scope)."""
    if access.regions is None:
        return None
    row = conn.execute(
        "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 FROM "
        "(SELECT ST_Extent(geom) AS e FROM public.region_part WHERE code = ANY(%s)) s",
        (list(access.regions),)).fetchone()
    return [row["x0"], row["y0"], row["x1"], row["y1"]] if row and row["x0"] is not None \
        else [0.0, 0.0, -1.0, -1.0]  # regions without a boundary: an empty box


def build_config(resources: dict[str, Any], base_url: str) -> dict[str, Any]:
    cfg = copy.deepcopy(static_config())
    cfg["server"]["url"] = f"{base_url.rstrip('/')}/ogc"
    cfg["server"]["templates"] = {"path": str(TEMPLATES_DIR)}
    # pygeoapi 0.24 renders the TileMatrixSets pages with the whole configuration as
    # their template settings (tiles.tilematrixset[s]): it finds `path` at the top
    cfg["path"] = str(TEMPLATES_DIR)
    cfg["server"]["limits"] = page_limits()
    cfg["metadata"]["identification"]["url"] = base_url
    cfg["resources"] = {name: _with_style_links(name, res, base_url)
                        for name, res in resources.items()}
    return cfg


def _with_style_links(name: str, res: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A vector collection links its TileJSON and its MapLibre style (``jmgeo.ogc.tilejson``)."""
    from jmgeo.ogc.tilejson import collection_links
    from jmgeo.ogc.tiles import PROVIDER as TILE_PROVIDER

    if not any(p.get("name") == TILE_PROVIDER for p in res.get("providers", [])):
        return res
    return {**res, "links": [*res.get("links", []), *collection_links(base_url, name)]}


def printable(cfg: Any) -> Any:
    """The configuration with each ``Access`` as a plain mapping (for ``jmgeo ogc config``,
    YAML, and anything else that serialises it); the running API keeps the typed object."""
    if isinstance(cfg, Access):
        return {"layer": cfg.layer, "sharing_class": cfg.sharing_class,
                "fields": list(cfg.fields) if cfg.fields is not None else None,
                "masks": dict(cfg.masks),
                "regions": list(cfg.regions) if cfg.regions is not None else None,
                "grant_id": cfg.grant_id}
    if isinstance(cfg, dict):
        return {k: printable(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [printable(v) for v in cfg]
    return cfg


def _fingerprint_default(value: Any) -> Any:
    """An ``Access`` in a provider entry counts by its exact decision
    (``Access.fingerprint``), not by its repr."""
    if isinstance(value, Access):
        return ["Access", *value.fingerprint()]
    return str(value)


def fingerprint(resources: dict[str, Any], base_url: str) -> str:
    blob = json.dumps([resources, base_url], sort_keys=True, default=_fingerprint_default)
    return hashlib.sha256(blob.encode()).hexdigest()


REGION_PARAMETER = {
    "name": "region", "in": "query", "required": False, "style": "form", "explode": False,
    "description": "行政区划代码 / region codes (GB/T 2260 county or 9-digit town code, "
                   "comma-separated): only features intersecting these regions. Also a "
                   "CQL2 queryable (region = '440781') and a geometry (REGION('440781')).",
    "schema": {"type": "string", "pattern": r"^\d{6}(\d{3})?(,\d{6}(\d{3})?)*$"},
}
CURSOR_PARAMETER = {
    "name": "cursor", "in": "query", "required": False, "style": "form", "explode": False,
    "description": "keyset paging position, as written in the `next` and `prev` links "
                   "(opaque)",
    "schema": {"type": "string"},
}
LIMIT_REF = {"$ref": "#/components/parameters/limit"}


def limit_parameter() -> dict[str, Any]:
    """``limit`` with its default and maximum, declared once (components/parameters):
    QGIS looks for the maximum there, and pages by its own 100 when it finds none."""
    limits = page_limits()
    return {
        "name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
        "description": f"条数上限 / the most items in one page (default "
                       f"{limits['default_items']}, maximum {limits['max_items']}); follow "
                       "the `next` link for the following page",
        "schema": {"type": "integer", "minimum": 1, "maximum": limits["max_items"],
                   "default": limits["default_items"]},
    }


def declare_paging(oas: dict[str, Any]) -> dict[str, Any]:
    """Every items operation refers to the one ``limit``; pygeoapi's ``options``
    operations (a transactions feature: the providers are read-only) are dropped."""
    oas.setdefault("components", {}).setdefault("parameters", {})["limit"] = limit_parameter()
    for path, ops in oas.get("paths", {}).items():
        if not path.endswith("/items") and not path.endswith("/items/{featureId}"):
            continue
        ops.pop("options", None)
        for op in ops.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [LIMIT_REF if p.get("name") == "limit" else p
                                    for p in op["parameters"]]
    return oas
REGION_QUERYABLE = {
    "title": "行政区划 / region", "type": "string",
    "description": "features intersecting the region with this code (= or IN only)",
}


SPATIAL_PARAMS = ("bbox", "bbox-crs", "crs")


def declare_extra_parameters(oas: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """Add the parameters our feature providers understand (`region` and `cursor`; a
    table has no `region`, and loses pygeoapi's `bbox`/`crs`) to the items operation of
    every feature collection in a per-audience OpenAPI document (and ``limit`` once:
    :func:`declare_paging`)."""
    declare_paging(oas)
    for name, res in resources.items():
        names_ = {p.get("name") for p in res.get("providers", [])}
        if PROVIDER in names_:
            extra = (REGION_PARAMETER, CURSOR_PARAMETER)
        elif TABLE_PROVIDER in names_:
            extra = (CURSOR_PARAMETER,)
        else:
            continue
        op = oas.get("paths", {}).get(f"/collections/{name}/items", {}).get("get")
        if op is None:
            continue
        if TABLE_PROVIDER in names_:  # a table has no geometry: no bbox, no crs
            op["parameters"] = [p for p in op.get("parameters", [])
                                if p.get("$ref", "").rsplit("/", 1)[-1] not in SPATIAL_PARAMS]
        names = {p.get("name") for p in op.setdefault("parameters", [])}
        for param in extra:
            if param["name"] not in names:
                op["parameters"].append(dict(param))
    return oas
