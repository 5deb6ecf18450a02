"""pygeoapi under /ogc, one API instance per audience.

pygeoapi has no access control and reads its configuration once. We keep its OGC surface
(its request parsing, its JSON/HTML, its OpenAPI) and choose, per request, an ``API``
built from the configuration of the caller's audience (see ``jmgeo.ogc.config``). A
collection the caller may not see is simply absent from that configuration, so it
answers exactly like one that never existed — in listings, items, OpenAPI and errors.

The data routes (items, item, tiles, coverage) carry a strong ``ETag`` (``data_etag``):
the digest of the collection's configuration entry — its version's table or file and the
caller's ``Access`` — and the request; ``If-None-Match`` with it answers 304 before
pygeoapi runs (audited for non-open data: status 304, 0 rows; no audit row, no answer).
The regions (no version) are tagged by their body's digest. Items pages lose pygeoapi's
``timeStamp`` so the same version is the same bytes.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import re
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from jmgeo import etags
from jmgeo.db import DatabaseUnavailable, connection
from jmgeo.http import AUDIT_DOWN, VARY_CALLER, audit_refusal
from jmgeo.ogc import config as ogc_config
from jmgeo.ogc import conformance as ogc_conformance
from jmgeo.ogc import coverages as ogc_coverages
from jmgeo.ogc import items as ogc_items
from jmgeo.ogc import maps as ogc_maps
from jmgeo.ogc import tilejson as ogc_tilejson
from jmgeo.ogc import tiles as ogc_tiles
from jmgeo.ogc.audiences import AUDIENCES
from jmgeo.ogc.compat import (
    API,
    APIRequest,
    apply_gzip,
    core_api,
    itemtypes_api,
    tiles_api,
)
from jmgeo.ogc.paging import REQUEST_URL
from jmgeo.settings import get_settings
from layers.policy import Caller

LOGGER = logging.getLogger(__name__)


def base_url_for(request: Request) -> str:
    """The base of every link: configuration (``JMGEO_PUBLIC_URL``), never the request's
    ``Host`` — answers are cached publicly (``Cache-Control: public``) and a forged Host
    would otherwise poison the cache with links to another server."""
    return get_settings().base_url


def ogc_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "type": code, "description": description},
                        status_code=status)


def _to_response(headers: dict, status: int, content) -> Response:
    if headers.get("Content-Type") == "text/html":
        response: Response = HTMLResponse(content=content, status_code=status)
    elif isinstance(content, dict):
        response = JSONResponse(content, status_code=status)
    else:
        response = Response(content, status_code=status)
    response.headers.update(headers)
    return response


_TIMESTAMP_RE = re.compile(r',\s*"timeStamp":\s*"[^"]*"')


def data_etag(api: API, accesses: dict, request: Request, base_url: str) -> str | None:
    """The strong ETag of a data route's answer for a registry layer (None: no version
    to tie it to — the regions, a POST search — the tag is then the body's digest).

    The collection's configuration entry holds the version (its table or raster file
    name) and the caller's ``Access``; with the request (path, query, the negotiating
    headers) it fixes the answer, so the tag is known before pygeoapi runs."""
    cid = request.path_params.get("collection_id")
    if request.method != "GET" or cid not in accesses:
        return None
    headers = request.headers
    return etags.strong(
        "ogc", base_url, ogc_config.fingerprint({cid: api.config["resources"][cid]},
                                                base_url),
        request.url.path, sorted(request.query_params.multi_items()),
        headers.get("accept", ""), headers.get("accept-language", ""))


def _no_timestamp(content):
    """pygeoapi stamps each items page with the time it was made (``timeStamp``, optional
    in OGC API Features): dropped, so the same version answers the same bytes under its
    strong ETag. It is the page's last member."""
    if isinstance(content, str) and content.endswith("}"):
        tail = content[-120:]
        return content[:-120] + _TIMESTAMP_RE.sub("", tail, count=1)
    return content


def _call(loop: asyncio.AbstractEventLoop, func, *args):
    asyncio.set_event_loop(loop)  # pygeoapi API calls expect a loop in their thread
    return func(*args)


def cache_control(caller: Caller, document: bool) -> str:
    """THE ``Cache-Control`` of /ogc. Data: anonymous callers only ever see open data
    (``public, max-age=60``); anything else must not sit in shared caches (``private,
    no-store``). Caller-dependent documents (landing page, collections, OpenAPI,
    conformance) are revalidated on every use, ``no-cache``: clients whose cache ignores
    ``Vary`` (QGIS) would otherwise answer a keyed request from an anonymous copy;
    ``private`` for keyed callers, whose list names what they may see."""
    anonymous = caller.kind == "anonymous"
    if document:
        return "public, no-cache" if anonymous else "private, no-cache"
    return "public, max-age=60" if anonymous else "private, no-store"


async def execute(request: Request, func, *args, skip_valid_check: bool = False,
                  action: str | None = None, document: bool = False,
                  finish=None) -> Response:
    """Run one pygeoapi API function for the caller's audience. A route that hands out
    data states what it is (``action``: one of ``layers.audit.OGC_DATA_ACTIONS``); the
    audit records that, not which function ran. ``document``: a description of the
    audience's API (see :func:`cache_control`). ``finish(api, headers, content)``: turns
    a 200's content into another format after the audit counted its rows (CSV items)."""
    from layers.audit import record_ogc
    from layers.record_log import PageUnreadable

    caller: Caller = request.state.caller
    loop = asyncio.get_running_loop()
    base_url = base_url_for(request)
    try:  # in the request's context: its read scope (jmgeo.replicas) picks the source
        api, accesses = await loop.run_in_executor(
            None, contextvars.copy_context().run, AUDIENCES.get, caller, base_url)
    except DatabaseUnavailable:
        return ogc_error(503, "ServiceUnavailable",
                         "数据库暂不可用，请稍后重试 / database temporarily unavailable")
    cid = request.path_params.get("collection_id")
    if cid is not None and cid not in api.config["resources"]:
        # absent for this caller: a refusal is audited when it is one (the 404 stays)
        await loop.run_in_executor(None, contextvars.copy_context().run, audit_refusal,
                                   caller, cid, "ogc", request.url.path, request.url.query,
                                   request.method)
    etag = data_etag(api, accesses, request, base_url) if action else None
    if etag is not None and etags.matches(request.headers.get("if-none-match"), etag):
        return await _not_modified(loop, caller, accesses, action, request, etag)
    api_request = await APIRequest.from_starlette(request, api.locales)
    tagged = False  # only a data route's 200 carries the tag
    if not skip_valid_check and not api_request.is_valid():
        headers, status, content = api.get_format_exception(api_request)
    else:
        # the provider's paging links: the platform's own URL, never the request's Host
        query = request.url.query
        REQUEST_URL.set(f"{base_url}{request.url.path}" + (f"?{query}" if query else ""))
        ctx = contextvars.copy_context()  # carries the caller into the worker thread
        headers, status, content = await loop.run_in_executor(
            None, ctx.run, _call, loop, func, api, api_request, *args)
        try:  # audit non-open data access; no audit row, no data
            await loop.run_in_executor(None, record_ogc, caller, accesses, action, request,
                                       status, content)
        except PageUnreadable as exc:  # a record-logged resource as an HTML page
            return ogc_error(406, "NotAcceptable", str(exc))
        except Exception:  # noqa: BLE001
            LOGGER.exception("audit write failed for %s", request.url.path)
            return ogc_error(503, "ServiceUnavailable", AUDIT_DOWN)
        if finish is not None and status == HTTPStatus.OK:
            headers, content = finish(api, headers, content)
        tagged = (action is not None and request.method == "GET" and status == HTTPStatus.OK
                  and headers.get("Content-Type") != "text/html")
        if tagged and action == "items":
            content = _no_timestamp(content)
        if tagged and etag is None:  # no version (the regions): the body's digest
            etag = etags.strong("ogc-body", request.url.path, hashlib.sha256(
                content if isinstance(content, bytes) else str(content).encode()).hexdigest())
            if etags.matches(request.headers.get("if-none-match"), etag):
                return _cache_headers(Response(status_code=304), caller, etag)
        if status != HTTPStatus.NO_CONTENT:
            content = apply_gzip(headers, content)
    response = _to_response(headers, status, content)
    return _cache_headers(response, caller, etag if tagged else None, document)


def _cache_headers(response: Response, caller: Caller, etag: str | None,
                   document: bool = False) -> Response:
    response.headers["Cache-Control"] = cache_control(caller, document)
    # the answer depends on the key, the negotiated format and language
    response.headers["Vary"] = f"{VARY_CALLER}, Accept, Accept-Language"
    if etag is not None:
        response.headers["ETag"] = etag
    return response


async def _not_modified(loop, caller: Caller, accesses: dict, action: str,
                        request: Request, etag: str) -> Response:
    """304 for a caller whose copy is current: no data leaves, no query runs. On non-open
    data it is audited all the same (status 304, 0 rows: who confirmed holding which
    layer's data, under which grant); no audit row, no answer (503)."""
    from layers.audit import record_ogc

    try:
        await loop.run_in_executor(None, record_ogc, caller, accesses, action, request,
                                   HTTPStatus.NOT_MODIFIED, None)
    except Exception:  # noqa: BLE001
        LOGGER.exception("audit write failed for %s", request.url.path)
        return ogc_error(503, "ServiceUnavailable", AUDIT_DOWN)
    return _cache_headers(Response(status_code=304), caller, etag)


def _openapi(api: API, request: APIRequest):
    """The per-audience OpenAPI document (pygeoapi's own handler reads a global file)."""
    if request.format == "html":
        return core_api.openapi_(api, request)
    headers = request.get_response_headers(**api.api_headers)
    headers["Content-Type"] = "application/vnd.oai.openapi+json;version=3.0"
    return headers, HTTPStatus.OK, json.dumps(api.openapi, ensure_ascii=False, default=str)


async def landing(request: Request) -> Response:
    return await execute(request, core_api.landing_page, document=True)


async def openapi(request: Request) -> Response:
    return await execute(request, _openapi, document=True)


async def conformance(request: Request) -> Response:
    return await execute(request, ogc_conformance.conformance, document=True)


def _served_by(api: API, dataset: str, provider: str) -> bool:
    providers = api.config["resources"].get(dataset, {}).get("providers", [])
    return any(p.get("name") == provider for p in providers)


def _describe_collections(api: API, request: APIRequest, dataset: str | None):
    """pygeoapi's collection metadata, with tables told apart: a table resource (or an
    empty layer) has no spatial extent (pygeoapi's configuration requires one, so the
    config carries the city's; it is removed from what clients read)."""
    headers, status, content = core_api.describe_collections(api, request, dataset)
    if status != HTTPStatus.OK or request.format == "html":
        return headers, status, content
    tables = {name for name in ([dataset] if dataset else api.config["resources"])
              if _served_by(api, name, ogc_config.TABLE_PROVIDER) or api.config["resources"]
              .get(name, {}).get("extents", {}).get("spatial", {}).get("jmgeo.nobox")}
    if not tables:  # most audiences, and every layer: pygeoapi's answer as it is
        return headers, status, content
    body = json.loads(content)
    for coll in [body] if dataset else body.get("collections", []):
        if coll.get("id") in tables:
            extent = coll.get("extent") or {}
            extent.pop("spatial", None)
            if not extent:
                coll.pop("extent", None)
    return headers, status, json.dumps(body, ensure_ascii=False, default=str)


async def collections(request: Request) -> Response:
    return await execute(request, _describe_collections,
                         request.path_params.get("collection_id"), document=True)


def _queryables(api: API, request: APIRequest, dataset: str):
    """pygeoapi's queryables plus the virtual `region` of our feature collections; a
    table's without the `geometry` pygeoapi adds to every feature collection."""
    headers, status, content = itemtypes_api.get_collection_queryables(api, request, dataset)
    if status != HTTPStatus.OK or request.format == "html":
        return headers, status, content
    if _served_by(api, dataset, ogc_config.PROVIDER):
        body = json.loads(content)
        body.setdefault("properties", {}).setdefault("region", ogc_config.REGION_QUERYABLE)
        content = json.dumps(body, ensure_ascii=False)
    elif _served_by(api, dataset, ogc_config.TABLE_PROVIDER):
        body = json.loads(content)
        body.get("properties", {}).pop("geometry", None)
        content = json.dumps(body, ensure_ascii=False)
    return headers, status, content


async def queryables(request: Request) -> Response:
    return await execute(request, _queryables, request.path_params["collection_id"])


async def schema(request: Request) -> Response:
    return await execute(request, core_api.get_collection_schema,
                         request.path_params["collection_id"])


async def items(request: Request) -> Response:
    cid = request.path_params["collection_id"]
    if request.method == "POST":  # CQL2 JSON in the body; never features (no transactions)
        return ogc_items.refuse_features(request) or await execute(
            request, ogc_items.collection_items, cid, skip_valid_check=True, action="items")
    if ogc_items.wants_csv(request):  # the GeoJSON page, written as CSV once audited
        return await execute(request, ogc_items.collection_items, cid, True,
                             skip_valid_check=True, action="items",
                             finish=lambda api, h, c: ogc_items.write_csv(api, cid, h, c))
    # pygeoapi checks the format itself (with the collection's formats)
    return await execute(request, ogc_items.collection_items, cid, skip_valid_check=True,
                         action="items")


async def item(request: Request) -> Response:
    return await execute(request, ogc_items.collection_item,
                         request.path_params["collection_id"], request.path_params["item_id"],
                         action="item")


def _tilematrixsets(api: API, request: APIRequest):
    """pygeoapi's list of tile matrix sets plus our CGCS2000Quad (pygeoapi only lists the
    sets shipped in its package)."""
    headers, status, content = tiles_api.tilematrixsets(api, request)
    if status == HTTPStatus.OK and request.format != "html":
        body = json.loads(content)
        href = f"{api.base_url}/TileMatrixSets/CGCS2000Quad?f=json"
        body["tileMatrixSets"].append({
            "title": "CGCS2000 geographic quad (EPSG:4490)", "id": "CGCS2000Quad",
            "uri": "urn:jmgeo:def:tilematrixset:CGCS2000Quad",
            "links": [{"rel": "self", "type": "application/json", "href": href,
                       "title": "The JSON representation of the CGCS2000Quad tile matrix set"}]})
        content = json.dumps(body, ensure_ascii=False)
    return headers, status, content


async def tilematrixsets(request: Request) -> Response:
    tms = request.path_params.get("tms_id")
    if tms:
        return await execute(request, tiles_api.tilematrixset, tms)
    return await execute(request, _tilematrixsets)


async def _tile_response(request: Request, func, *args, action: str | None = None
                         ) -> Response:
    response = await execute(request, func, *args, skip_valid_check=True, action=action)
    if response.status_code >= 400 and "vnd.mapbox" in response.headers.get("content-type", ""):
        response.headers["Content-Type"] = "application/json"  # pygeoapi set the MVT type
    return response


async def collection_tiles(request: Request) -> Response:
    return await execute(request, tiles_api.get_collection_tiles,
                         request.path_params["collection_id"])


async def collection_tiles_metadata(request: Request) -> Response:
    return await _tile_response(request, ogc_tiles.tiles_metadata,
                                request.path_params["collection_id"],
                                request.path_params["tms_id"])


TILE_FORMATS = {"mvt": ogc_tiles.MVT_FORMAT["mimetype"]}


async def collection_tile(request: Request) -> Response:
    p = request.path_params
    fmt = request.query_params.get("f")
    if fmt is not None and fmt.lower() not in TILE_FORMATS:
        # answered before any lookup, the same for every collection id (no oracle)
        return ogc_error(400, "InvalidParameterValue",
                         f"矢量瓦片不支持格式 f={fmt} / vector tiles are not available as "
                         f"f={fmt}: formats are " + ", ".join(
                             f"{k} ({v})" for k, v in TILE_FORMATS.items()))
    if fmt is None:
        # MVT is a tile's only format: a client that names none (a browser's fetch sends
        # `Accept: */*`, QGIS sends nothing) gets it, as if it had asked with f=mvt
        query = request.scope.get("query_string", b"")
        scope = dict(request.scope, query_string=(query + b"&" if query else b"") + b"f=mvt")
        request = Request(scope, request.receive)
    return await _tile_response(request, tiles_api.get_collection_tiles_data,
                                p["collection_id"], p["tms_id"], p["z"], p["y"], p["x"],
                                action="tiles")


async def collection_tilejson(request: Request) -> Response:
    return await _tile_response(request, ogc_tilejson.tilejson_document,
                                request.path_params["collection_id"],
                                request.path_params["tms_id"])


async def collection_styles(request: Request) -> Response:
    return await execute(request, ogc_tilejson.styles_list, request.path_params["collection_id"],
                         skip_valid_check=True)


async def collection_style(request: Request) -> Response:
    if request.method == "PUT":
        return await put_style(request)
    p = request.path_params
    return await execute(request, ogc_tilejson.style_document, p["collection_id"],
                         p["style_id"], skip_valid_check=True)


async def put_style(request: Request) -> Response:
    """Replace a layer's default style (its owner, or the bureau): the body is the
    MapLibre style JSON; ``DELETE``-like reset with a JSON ``null`` body."""
    from layers.styles import StyleError, StyleForbidden, StyleNotFound, set_style

    p = request.path_params
    if p["style_id"] != ogc_tilejson.DEFAULT_STYLE:
        return ogc_error(404, "NotFound", f"样式不存在 / no style {p['style_id']!r}")
    body = await request.body()

    def run():
        with connection() as conn:
            return set_style(conn, request.state.caller, p["collection_id"],
                             None if body.strip() == b"null" else body)

    try:
        result = await asyncio.get_running_loop().run_in_executor(None, run)
    except StyleNotFound as exc:
        return ogc_error(404, "NotFound", str(exc))
    except StyleForbidden as exc:
        return ogc_error(403, "Forbidden", str(exc))
    except StyleError as exc:
        return ogc_error(400, "InvalidParameterValue", str(exc))
    return JSONResponse(result, headers={"Cache-Control": "private, no-store"})


async def glyphs(request: Request) -> Response:
    data = ogc_tilejson.glyph_range(request.path_params["fontstack"],
                                    request.path_params["range"])
    if data is None:
        return ogc_error(400, "InvalidParameterValue",
                         "字形范围无效 / glyph range must look like 0-255")
    return Response(data, media_type="application/x-protobuf",
                    headers={"Cache-Control": "public, max-age=86400"})


async def coverage(request: Request) -> Response:
    return await execute(request, ogc_coverages.get_collection_coverage,
                         request.path_params["collection_id"], skip_valid_check=True,
                         action="coverage")


async def collection_map(request: Request) -> Response:
    return await execute(request, ogc_maps.get_collection_map,
                         request.path_params["collection_id"], skip_valid_check=True,
                         action="map")


async def collection_map_tile(request: Request) -> Response:
    p = request.path_params
    return await execute(request, ogc_maps.get_collection_map_tile, p["collection_id"],
                         p["tms_id"], p["z"], p["y"], p["x"], skip_valid_check=True,
                         action="map")


async def cgcs2000_tms(request: Request) -> Response:
    return await execute(request, ogc_tiles.cgcs2000_tilematrixset)


def routes() -> list[Route]:
    return [
        Route("/", landing),
        Route("/openapi", openapi),
        Route("/conformance", conformance),
        Route("/TileMatrixSets", tilematrixsets),
        Route("/TileMatrixSets/CGCS2000Quad", cgcs2000_tms),
        Route("/TileMatrixSets/{tms_id}", tilematrixsets),
        Route("/collections", collections),
        Route("/collections/{collection_id}", collections),
        Route("/collections/{collection_id}/queryables", queryables),
        Route("/collections/{collection_id}/schema", schema),
        Route("/collections/{collection_id}/items", items, methods=["GET", "POST"]),
        Route("/collections/{collection_id}/items/{item_id}", item),
        Route("/collections/{collection_id}/coverage", coverage),
        Route("/collections/{collection_id}/map", collection_map),
        Route("/collections/{collection_id}/map/tiles/{tms_id}/{z}/{y}/{x}",
              collection_map_tile),
        Route("/collections/{collection_id}/tiles", collection_tiles),
        Route("/collections/{collection_id}/tiles/{tms_id}", collection_tiles_metadata),
        Route("/collections/{collection_id}/tiles/{tms_id}/metadata", collection_tiles_metadata),
        Route("/collections/{collection_id}/tiles/{tms_id}/tilejson.json", collection_tilejson),
        Route("/collections/{collection_id}/styles", collection_styles),
        Route("/collections/{collection_id}/styles/{style_id}", collection_style,
              methods=["GET", "PUT"]),
        Route("/styles/glyphs/{fontstack}/{range}.pbf", glyphs),
        Route("/collections/{collection_id}/tiles/{tms_id}/{z}/{y}/{x}", collection_tile),
    ]
