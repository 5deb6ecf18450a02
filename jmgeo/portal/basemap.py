"""The portal maps' basemap: the framework itself by default, a self-hosted style if the
deployment configured one (``JMGEO_PORTAL_BASEMAP_STYLE`` and its licence text in
``JMGEO_PORTAL_BASEMAP_ATTRIBUTION``, e.g. the 审图号 of the surveying bureau's map).

The framework basemap is the ``regions`` collection's vector tiles: a pale land fill,
county and town boundaries and the Chinese names, drawn by MapLibre with the browser's
local CJK font (``localIdeographFontFamily``) — no online basemap, nothing foreign
(地图管理条例), nothing from the internet."""

from __future__ import annotations

from typing import Any

from jmgeo.ogc.tilejson import glyphs_url, tilejson_url
from jmgeo.settings import get_settings

FRAMEWORK_ATTRIBUTION = "江门市地理空间框架 · 行政区划"
NAME_FIELD = ["get", "name"]
COUNTY_KINDS = ("district", "county_city")


def map_settings() -> dict[str, str]:
    """What a page's map element carries (``data-*``): the basemap style URL and the
    attribution to show."""
    s = get_settings()
    if s.portal_basemap_style:
        return {"basemap": s.portal_basemap_style,
                "attribution": s.portal_basemap_attribution or ""}
    return {"basemap": "/portal/basemap.json", "attribution": FRAMEWORK_ATTRIBUTION}


def framework_style(base_url: str) -> dict[str, Any]:
    """The regions basemap as a MapLibre style (version 8)."""
    ogc = f"{base_url}/ogc"
    src = {"source": "regions", "source-layer": "regions"}
    # county-level divisions (区 and 县级市); towns have no polygons in the demo framework
    county = ["in", ["get", "kind"], ["literal", list(COUNTY_KINDS)]]
    town = ["in", ["get", "kind"], ["literal", ["town", "street"]]]
    return {
        "version": 8,
        "name": "江门市地理空间框架 / Jiangmen framework",
        "metadata": {"jmgeo:basemap": "framework"},
        "sources": {"regions": {"type": "vector", "url": tilejson_url(ogc, "regions"),
                                "attribution": FRAMEWORK_ATTRIBUTION}},
        "glyphs": glyphs_url(ogc),
        "layers": [
            {"id": "background", "type": "background",
             "paint": {"background-color": "#dfe7ee"}},
            {"id": "regions-land", "type": "fill", **src, "filter": county,
             "paint": {"fill-color": "#f7f5f0"}},
            {"id": "regions-town-line", "type": "line", **src, "filter": town,
             "paint": {"line-color": "#c9c3b8", "line-width": 0.6,
                       "line-dasharray": [3, 2]}},
            {"id": "regions-county-line", "type": "line", **src, "filter": county,
             "paint": {"line-color": "#8d8579", "line-width": 1.2}},
            {"id": "regions-label", "type": "symbol", **src, "filter": county,
             "layout": {"text-field": NAME_FIELD, "text-font": ["Noto Sans Regular"],
                        "text-size": 13},
             "paint": {"text-color": "#5d554a", "text-halo-color": "#ffffff",
                       "text-halo-width": 1.2}},
        ],
    }
