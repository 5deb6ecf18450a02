"""DCAT (W3C Data Catalog Vocabulary, v2) JSON-LD of the catalog, for machines.

Each entry is a ``dcat:Dataset`` with ``dct:identifier`` (the resource code),
``dct:publisher`` (the provider, with its 统一社会信用代码), ``dct:accessRights`` (the
plan's sharing class, with the condition or legal basis), ``dct:accrualPeriodicity``
(the update cycle as a Dublin Core frequency), the data items under ``jm:dataItem``
and, for spatial layers shared without conditions, the OGC API collection as a
``dcat:Distribution``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from catalog import vocab
from layers import localday as clock

FREQUENCY = "http://purl.org/cld/freq/"
FREQUENCIES = {"realtime": "continuous", "daily": "daily", "weekly": "weekly",
               "monthly": "monthly", "quarterly": "quarterly", "halfyearly": "semiannual",
               "yearly": "annual", "other": "irregular"}
MEDIA = {"vector": "application/geo+json", "raster": "image/tiff", "service": "application/json",
         "database": "application/sql", "spreadsheet": "application/vnd.openxmlformats-"
         "officedocument.spreadsheetml.sheet", "electronic_file": "application/pdf",
         "image": "image/png", "streaming": "video/mp4", "self_describing": "application/xml"}
CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "locn": "http://www.w3.org/ns/locn#",
    "jm": "urn:jiangmen:catalog#",
}


def _lit(text: str | None, lang: str = "zh-CN") -> dict[str, str] | None:
    return {"@value": text, "@language": lang} if text else None


def dataset(e: dict[str, Any], base_url: str) -> dict[str, Any]:
    cls = vocab.sharing_class(e["sharing_type"], e["is_open"])
    rights = vocab.ACCESS_RIGHTS[cls]
    if e.get("sharing_condition"):
        rights += f"；{'法律依据' if cls == 'not_shared' else '共享条件'}：{e['sharing_condition']}"
    d: dict[str, Any] = {
        "@id": f"{base_url}/catalog/entries/{e['id']}",
        "@type": "dcat:Dataset",
        "dct:identifier": e["code"],
        "dct:title": _lit(e["name"]),
        "dct:description": _lit(e["abstract"]),
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": _lit(e["provider_name"]),
                          "dct:identifier": e.get("provider_uscc")},
        "dct:accessRights": {"@type": "dct:RightsStatement", "@id": f"jm:{cls}",
                             "dct:description": _lit(rights)},
        "dct:accrualPeriodicity": {"@id": FREQUENCY + FREQUENCIES[e["update_cycle"]]},
        "dcat:theme": [_lit(x) for x in (vocab.CLASSES.label(e["class_code"]),
                                         e["item_name"], e["category_name"],
                                         e.get("subcategory_name")) if x],
        "dcat:keyword": [k for k in (e["item_name"], e["category_name"],
                                     vocab.FORMATS.label(e["format"])) if k],
        "dct:format": vocab.FORMATS.label(e["format"]),
        "jm:sharingType": vocab.SHARING_TYPES.label(e["sharing_type"]),
        "jm:sharingMethod": vocab.SHARING_METHODS.label(e["sharing_method"]),
        "jm:openToPublic": bool(e["is_open"]),
        "jm:dataItem": [{"jm:name": it["name"], "jm:dataType": it["data_type"],
                         "jm:length": it.get("length"),
                         "jm:sharingType": vocab.SHARING_TYPES.label(it["sharing_type"])}
                        for it in e["items"]],
    }
    if e.get("publish_date"):
        d["dct:issued"] = {"@value": e["publish_date"].isoformat(), "@type": "xsd:date"}
    if e.get("updated_at"):
        d["dct:modified"] = {"@value": e["updated_at"].isoformat(), "@type": "xsd:dateTime"}
    if e.get("related_codes"):
        d["dct:relation"] = list(e["related_codes"])
    if e.get("extent"):
        x0, y0, x1, y1 = e["extent"]
        d["dct:spatial"] = {"@type": "dct:Location", "dcat:bbox": {
            "@value": f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))",
            "@type": "http://www.opengis.net/ont/geosparql#wktLiteral"}}
    if e.get("layer_name") and cls in ("open", "unconditional"):
        d["dcat:distribution"] = [{
            "@type": "dcat:Distribution",
            "dcat:accessURL": {"@id": f"{base_url}/ogc/collections/{e['layer_name']}"},
            "dcat:mediaType": MEDIA["vector"] if e["format"] == "vector" else None,
            "dct:title": _lit("OGC API"),
        }]
    return {k: v for k, v in d.items() if v is not None}


def catalog_jsonld(entries: list[dict[str, Any]], base_url: str,
                   issued: dt.date | None = None) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@id": f"{base_url}/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _lit("江门市政务信息资源目录"),
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": _lit("江门市网信统筹局")},
        "dct:issued": {"@value": (issued or clock.today()).isoformat(), "@type": "xsd:date"},
        "dcat:dataset": [dataset(e, base_url) for e in entries],
    }
