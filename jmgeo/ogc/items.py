"""The items of a feature collection as the platform answers them, beyond pygeoapi's:

* **paging links**: only those our providers wrote (:mod:`jmgeo.ogc.paging`: ``next``
  when a page follows, ``prev``, ``first``) — pygeoapi's offset guesses are dropped;
* **CSV** (``f=csv``, or ``Accept: text/csv``): the same page as the GeoJSON — same
  filters, paging, fields, masks and region scope, since it *is* that page, written as
  the CSV download writes rows (:mod:`jmgeo.downloads.flat`): UTF-8 with a BOM, a header
  row, the item id (``fid`` for layers; a table's key is among its fields), the
  properties, and the geometry as WKT in a last column named ``WKT`` (GDAL's and QGIS's
  CSV readers take it as the geometry unasked). Its CRS is the page's, named in the
  ``Content-Crs`` header (CRS84 lon/lat unless ``crs=`` asked for another, in that CRS's
  axis order); the paging links travel in the ``Link`` header;
* **no transactions**: a POST carrying features (``application/geo+json``, as OGC API
  Features Part 4 would create them) answers 415 naming what POST does take (a CQL2 JSON
  filter); PUT/PATCH/DELETE answer 405 with ``Allow`` (Starlette, from the routes).
"""

from __future__ import annotations

import csv
import io
import json
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from jmgeo import jsonfast
from jmgeo.ogc import paging, patches
from jmgeo.ogc.compat import API, APIRequest, itemtypes_api

CSV_TYPE = "text/csv; charset=utf-8"
GEOJSON_TYPE = "application/geo+json"
BOM = "\ufeff"
POST_TYPES = ("application/json", "application/query-cql-json")
FEATURE_TYPES = ("application/geo+json",)


def wants_csv(request: Request) -> bool:
    """``f=csv``, or no ``f`` and ``text/csv`` first in ``Accept``."""
    fmt = request.query_params.get("f")
    if fmt is not None:
        return fmt.strip().lower() == "csv"
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].split(";")[0].strip().lower() == "text/csv"


def refuse_features(request: Request) -> JSONResponse | None:
    """A POST that tries to create features: 415 before any lookup, alike for every
    collection id (no oracle). None: a CQL2 JSON search, answered as usual."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FEATURE_TYPES:
        return None
    return JSONResponse(
        {"code": "UnsupportedMediaType", "type": "UnsupportedMediaType",
         "description": "本服务只读，不能在线新增要素（未提供 OGC API Features 第4部分）；"
                        "POST 只接受 CQL2 JSON 查询条件 / this service is read-only: features "
                        "cannot be created (OGC API Features Part 4 is not offered); POST "
                        "here takes a CQL2 JSON filter (Content-Type: application/json). "
                        "Layers change by loading a new version (jmgeo load)."},
        status_code=415, headers={"Accept-Post": ", ".join(POST_TYPES)})


def collection_items(api: API, request: APIRequest, dataset: str, as_csv: bool = False):
    """pygeoapi's items (GeoJSON when ``as_csv``: :func:`write_csv` writes it after the
    audit), with only our providers' paging links."""
    written: list[str] = []
    paging.PAGE_LINKS.set(written)  # this worker thread's context: the provider's too
    if as_csv:
        request._args = {**dict(request.params), "f": "json"}  # the page, as GeoJSON
    geojson = request.format in (None, "json") and _ours(api, dataset)

    def own_links(body: dict) -> None:  # applied as pygeoapi encodes the page
        body["links"] = paging.own_paging_links(body.get("links", []), written)

    token = patches.ITEMS_BODY.set(own_links if geojson else None)
    try:
        headers, status, content = itemtypes_api.get_collection_items(api, request, dataset)
    finally:
        patches.ITEMS_BODY.reset(token)
    if status == HTTPStatus.OK and geojson:
        headers["Content-Type"] = GEOJSON_TYPE  # pygeoapi says application/json
    return headers, status, content


def collection_item(api: API, request: APIRequest, dataset: str, identifier: str):
    """pygeoapi's item, as ``application/geo+json`` (Features Part 1, GeoJSON)."""
    headers, status, content = itemtypes_api.get_collection_item(api, request, dataset,
                                                                 identifier)
    if (status == HTTPStatus.OK and request.format in (None, "json")
            and _ours(api, dataset)):
        headers["Content-Type"] = GEOJSON_TYPE
    return headers, status, content


def _ours(api: API, dataset: str) -> bool:
    """Is the collection served by one of our paging providers (jmgeo.ogc.provider)?"""
    return any(str(p.get("name", "")).startswith("jmgeo.ogc.provider.")
               for p in api.config["resources"].get(dataset, {}).get("providers", []))


def _feature_provider(api: API, dataset: str) -> dict[str, Any]:
    for p in api.config["resources"][dataset]["providers"]:
        if p.get("type") == "feature":
            return p
    return {}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def write_csv(api: API, dataset: str, headers: dict, content) -> tuple[dict, bytes]:
    """One items page (GeoJSON text) as CSV (see the module docstring)."""
    from shapely import to_wkt
    from shapely.geometry import shape

    body = jsonfast.loads(content)
    provider = _feature_provider(api, dataset)
    table = provider.get("geom_field", "geom") is None
    features = body.get("features", [])
    names: list[str] = list(features[0]["properties"]) if features else []
    with_geometry = not table and (not features or any(f.get("geometry") for f in features))
    id_col = [] if table else [provider.get("id_field", "fid")]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*id_col, *names, *(["WKT"] if with_geometry else [])] or ["-"])
    for f in features:
        props = f.get("properties") or {}
        row = [*([f.get("id")] if id_col else []), *(_cell(props.get(n)) for n in names)]
        if with_geometry:
            geom = f.get("geometry")
            row.append(to_wkt(shape(geom), rounding_precision=-1, trim=True) if geom else "")
        writer.writerow(row)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    headers["Content-Type"] = CSV_TYPE
    links = [x for x in body.get("links", []) if x.get("rel") in paging.PAGING_RELS]
    if links:
        headers["Link"] = ", ".join(f'<{x["href"]}>; rel="{x["rel"]}"' for x in links)
    return headers, out.getvalue().encode("utf-8")
