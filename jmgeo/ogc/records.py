"""OGC API - Records for the catalog, through pygeoapi, under the sharing policy.

pygeoapi builds one API per audience from generated configuration
(``jmgeo.ogc.config``); :func:`records_resource` is the ``catalog`` collection of one
audience, and its provider definition carries the caller's role and department — all
the catalog rule reads. The provider lists the *published* entries among those the
policy lets that caller list (``layers.policy.catalog_filter``, applied by
``catalog.store.list_entries``; ``entry_listed`` for one record): the public open
entries only, departments and the bureau every published entry's metadata (that is how
they know what to request) — never data: links to a layer's OGC API collection are
given only where the class lets every department read it.

Records are GeoJSON features (OGC API - Records Part 1 record core): ``id`` is the
resource code with ``-`` for ``/`` (``103002-000001``), geometry the extent of a spatial
resource, properties the record core (type, title, description, keywords, themes,
contacts, formats, rights, created, updated) and the national core metadata. ``q`` is the
catalog's Chinese search (ranked); ``bbox``, ``datetime`` (publish date), ``sortby`` and
the queryables ``provider``, ``format``, ``sharing_type``, ``update_cycle``, ``class``,
``code`` filter.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from catalog import store, sync, vocab
from catalog.sheet_writers import classification_label
from jmgeo.db import connection
from jmgeo.ogc.compat import BaseProvider, ProviderInvalidQueryError, ProviderItemNotFoundError
from layers.policy import Caller
from spatial.crs import CRS84_URI, JIANGMEN_EXTENT

LOGGER = logging.getLogger(__name__)
PROVIDER = "jmgeo.ogc.records.CatalogRecordsProvider"
QUERYABLES = {"title": "string", "description": "string", "code": "string",
              "provider": "string", "class": "string", "format": "string",
              "sharing_type": "string", "update_cycle": "string", "type": "string"}
SORTABLE = {"title": "name", "code": "code", "updated": "updated", "created": "publish_date",
            "publish_date": "publish_date"}


def audience(caller: Caller) -> dict[str, str | None]:
    """What of the caller the catalog rule reads (role and department), for the provider
    definition: no name or key, so callers alike share one audience configuration."""
    return {"kind": caller.kind, "dept_code": caller.dept_code}


def _caller(opts: dict[str, Any]) -> Caller:
    """The caller of :func:`audience` (anonymous when the definition names none)."""
    kind = opts.get("kind") or "anonymous"
    dept = opts.get("dept_code")
    return Caller(kind=kind, dept_code=dept, name=f"{kind}:{dept}" if dept else kind)


def records_resource(caller: Caller) -> dict[str, Any]:
    """The pygeoapi resource config of the ``catalog`` collection for this caller."""
    return {
        "type": "collection",
        "title": {"zh-CN": "江门市政务信息资源目录",
                  "en-US": "Jiangmen government information resource catalog"},
        "description": {
            "zh-CN": "按《政务信息资源目录编制指南（试行）》编制的全市政务信息资源目录，"
                     "含空间和非空间信息资源的核心元数据。",
            "en-US": "The city's information resource catalog with the national core "
                     "metadata, spatial and non-spatial resources.",
        },
        "keywords": ["政务信息资源目录", "catalog", "records", "metadata"],
        "links": [],
        "extents": {"spatial": {"bbox": list(JIANGMEN_EXTENT), "crs": CRS84_URI}},
        "providers": [{
            "type": "record",
            "name": PROVIDER,
            "data": "catalog_entry",
            "id_field": "id",
            "title_field": "title",
            "time_field": "created",
            "jmgeo": {"caller": audience(caller)},
        }],
    }


def record_id(code: str) -> str:
    return code.replace("/", "-")


def _code(identifier: str) -> str:
    return str(identifier).replace("-", "/")


def _base_url() -> str:
    from jmgeo.settings import get_settings

    return get_settings().base_url


class CatalogRecordsProvider(BaseProvider):
    """Catalog entries as OGC API Records; read-only; filtered to the audience."""

    def __init__(self, provider_def: dict[str, Any]):
        super().__init__(provider_def)
        self.caller = _caller((provider_def.get("jmgeo") or {}).get("caller") or {})
        self._fields = {k: {"type": t} for k, t in QUERYABLES.items()}

    def get_fields(self) -> dict[str, Any]:
        return self._fields

    # ------------------------------------------------------------------ reading

    def _filters(self, properties) -> tuple[dict[str, str], dict[str, str]]:
        filters: dict[str, str] = {"status": "published"}
        post: dict[str, str] = {}
        for name, value in properties or []:
            if name == "provider":
                post["provider"] = str(value)
            elif name == "class":
                filters["class_code"] = str(value)
            elif name in ("format", "sharing_type", "update_cycle"):
                filters[name] = str(value)
            elif name in ("code", "title", "description", "type"):
                post[name] = str(value)
        return filters, post

    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, **kwargs) -> dict[str, Any]:
        if filterq is not None:
            raise ProviderInvalidQueryError(
                user_msg="目录记录不支持 CQL2 过滤，请使用 q 和可查询属性 / the catalog "
                         "records do not take CQL2 filters: use q and the queryables")
        filters, post = self._filters(properties)
        sort = None
        if sortby:
            s = sortby[0]
            col = SORTABLE.get(s["property"])
            if col is None:
                raise ProviderInvalidQueryError(
                    user_msg=f"不能按 {s['property']} 排序 / cannot sort by {s['property']}")
            sort = ("-" if s.get("order") == "-" else "") + col
        box = tuple(float(x) for x in bbox) if bbox else None
        with connection() as conn:
            sync.ensure_synced(conn)
            rows, total = store.list_entries(
                conn, self.caller, q=q, filters=filters,
                limit=1_000_000 if post else limit, offset=0 if post else offset,
                sort=sort, bbox=box, published_between=_interval(datetime_))
        if post:
            rows = [r for r in rows if _matches(r, post)]
            total = len(rows)
            rows = rows[offset:offset + limit]
        fc: dict[str, Any] = {"type": "FeatureCollection", "features": [],
                              "numberMatched": total}
        if resulttype != "hits":
            fc["features"] = [self._record(r, skip_geometry, select_properties)
                              for r in rows]
        fc["numberReturned"] = len(fc["features"])
        return fc

    def get(self, identifier, **kwargs) -> dict[str, Any]:
        with connection() as conn:
            sync.ensure_synced(conn)
            e = store.get_entry(conn, code=_code(identifier))
        if e is None or e["status"] != "published" or not store.visible(self.caller, e):
            raise ProviderItemNotFoundError(user_msg="记录不存在 / record not found")
        return self._record(e, False, None)

    # ----------------------------------------------------------------- encoding

    def _record(self, e: dict[str, Any], skip_geometry: bool,
                select_properties) -> dict[str, Any]:
        cls = e["sharing_class"]
        rights = vocab.ACCESS_RIGHTS[cls]
        if e.get("sharing_condition"):  # part of the entry's metadata the caller may list
            label = "法律依据" if cls == "not_shared" else "共享条件"
            rights = f"{rights}；{label}：{e['sharing_condition']}"
        updated = e.get("updated_at")
        props: dict[str, Any] = {
            "type": "dataset",
            "title": e["name"],
            "description": e["abstract"],
            "keywords": [k for k in (e["item_name"], e["category_name"],
                                     e.get("subcategory_name"),
                                     vocab.FORMATS.label(e["format"]),
                                     vocab.SHARING_TYPES.label(e["sharing_type"])) if k],
            "themes": [{"concepts": [{"id": e["code_prefix"],
                                      "title": classification_label(e)}],
                        "scheme": "政务信息资源目录编制指南（试行）信息资源分类"}],
            "contacts": [{"organization": e["provider_name"], "identifier":
                          e["provider_uscc"], "roles": ["publisher"]}],
            "formats": [{"name": vocab.FORMATS.label(e["format"])}],
            "rights": rights,
            "language": {"code": "zh-CN"},
            "created": e["publish_date"].isoformat() if e.get("publish_date") else None,
            "updated": updated.isoformat() if isinstance(updated, dt.datetime) else None,
            "code": e["code"],
            "provider": e["provider_name"],
            "class": vocab.CLASSES.label(e["class_code"]),
            "format": vocab.FORMATS.label(e["format"]),
            "sharing_class": cls,
            "sharing_type": vocab.SHARING_TYPES.label(e["sharing_type"]),
            "sharing_condition": e.get("sharing_condition"),
            "sharing_method": vocab.SHARING_METHODS.label(e["sharing_method"]),
            "open": "是" if e["is_open"] else "否",
            "open_condition": e.get("open_condition"),
            "update_cycle": vocab.UPDATE_CYCLES.label(e["update_cycle"]),
            "related_codes": list(e.get("related_codes") or []),
            "items": [{"name": it["name"], "data_type": it["data_type"],
                       "length": it.get("length"),
                       "sharing_type": vocab.SHARING_TYPES.label(it["sharing_type"])}
                      for it in e["items"]],
        }
        if e.get("layer_name"):
            props["layer"] = e["layer_name"]
            props["layer_version"] = e.get("layer_version")
        if select_properties:
            props = {k: v for k, v in props.items() if k in select_properties}
        geometry = None
        if e.get("extent") and not skip_geometry:
            x0, y0, x1, y1 = e["extent"]
            geometry = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1],
                                                             [x0, y1], [x0, y0]]]}
        links = []
        if e.get("layer_name") and cls in ("open", "unconditional"):
            links.append({"rel": "item", "type": "application/json",
                          "title": f"{e['name']}（OGC API - Features）",
                          "href": f"{_base_url()}/ogc/collections/{e['layer_name']}"})
        for rc in e.get("related_codes") or []:
            links.append({"rel": "related", "type": "application/geo+json",
                          "title": rc,
                          "href": f"{_base_url()}/ogc/collections/catalog/items/"
                                  f"{record_id(rc)}"})
        return {"id": record_id(e["code"]), "type": "Feature", "geometry": geometry,
                "time": ({"date": e["publish_date"].isoformat()}
                         if e.get("publish_date") else None),
                "properties": props, "links": links}

    def __repr__(self) -> str:
        return f"<CatalogRecordsProvider caller={self.caller.name}>"


def _interval(datetime_: str | None) -> tuple[Any, Any] | None:
    if not datetime_:
        return None
    parts = str(datetime_).split("/")

    def day(s: str):
        s = s.strip()
        if s in ("", ".."):
            return None
        return dt.date.fromisoformat(s[:10])

    try:
        if len(parts) == 1:
            d = day(parts[0])
            return (d, d)
        return (day(parts[0]), day(parts[1]))
    except ValueError as exc:
        raise ProviderInvalidQueryError(
            user_msg=f"datetime 无效：{datetime_} / invalid datetime") from exc


def _matches(e: dict[str, Any], post: dict[str, str]) -> bool:
    for k, v in post.items():
        v = vocab.clean_text(v)
        if k == "provider" and v not in (e["provider_name"], e["provider_code"],
                                         e["provider_uscc"]):
            return False
        if k == "code" and vocab.norm_key(v).replace("-", "/") != e["code"]:
            return False
        if k == "title" and v not in e["name"]:
            return False
        if k == "description" and v not in e["abstract"]:
            return False
        if k == "type" and v != "dataset":
            return False
    return True
