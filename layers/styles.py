"""Map styles of layers (MapLibre GL style spec, ``version`` 8): the default one per
geometry type, the owner's own one (``layer.style``), and a small reading of either.

One module decides what a layer looks like on a map, so the web map (MapLibre, from
``/ogc/collections/{id}/styles/default``) and the server's map images (OGC API Maps)
draw the same thing. Nothing here knows HTTP: callers pass the URLs the style points
at (the TileJSON of the layer's tiles, the glyphs template).

* :func:`default_style` — fill + outline for polygons, a line for lines, a circle for
  points (all three, filtered by ``$type``, when the registry does not know the
  geometry type), coloured by theme, and a text label layer on the layer's Chinese name
  field (:func:`label_field`) when one is visible and not masked.
* :func:`validate_style` — what an owner may store: a JSON object with ``version: 8``,
  ``sources`` (an object) and ``layers`` (a list of objects with a unique ``id`` and a
  known ``type``), at most :data:`MAX_STYLE_BYTES`.
* :func:`set_style` — the owner (or the bureau: :func:`layers.policy.may_edit`) replaces
  or resets a layer's style; recorded in the audit log (action ``layer.style``).
* :func:`effective_style` — the stored style, else the default.
* :func:`symbology` / :func:`paint_for` — the colours, widths and label field a renderer
  without a full MapLibre engine needs (the map images, ``jmgeo.ogc.render``, read
  :func:`paint_for`: literal paint values only, see :func:`literal`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jmgeo.errors import UserError, bilingual
from layers import policy

MAX_STYLE_BYTES = 256 * 1024
LAYER_TYPES = {"background", "fill", "line", "symbol", "circle", "heatmap",
               "fill-extrusion", "raster", "hillshade", "color-relief"}
#: fill / line colour per theme (registry ``layer.theme``); others get DEFAULT_COLOUR
THEME_COLOURS = {"land": "#b5651d", "water": "#1f78b4", "transport": "#e31a1c",
                 "civil_defence": "#6a3d9a", "planning": "#33a02c", "environment": "#2ca25f",
                 "framework": "#555555"}
DEFAULT_COLOUR = "#3388ff"
LABEL_FONT = ["Noto Sans Regular"]
#: column names that hold a feature's name when no Chinese label says 名称
NAME_COLUMNS = ("name", "mc", "mingcheng", "title")


class StyleError(UserError):
    """A style file that is not a MapLibre style we can store, or a caller who may not."""

    code = "style_error"


class StyleNotFound(StyleError):
    """No such layer — or one the caller may not even list (answered the same)."""

    code = "not_found"


class StyleForbidden(StyleError):
    """The caller sees the layer but is neither its owner nor the bureau."""

    code = "forbidden"


def geometry_family(geometry_type: str | None) -> str | None:
    """``polygon``, ``line``, ``point``, or None (unknown / mixed)."""
    g = (geometry_type or "").lower()
    for family, words in (("polygon", ("polygon", "surface")), ("line", ("line", "curve")),
                          ("point", ("point",))):
        if any(w in g for w in words):
            return family
    return None


def label_field(layer: Mapping[str, Any], fields: Iterable[str],
                masked: Iterable[str] = ()) -> str | None:
    """The column to label features with: the first visible, unmasked column whose
    Chinese label (``field_labels``) contains 名称, else one named like a name
    (``name``, ``*_name``, ``mc``, ``*mc`` — 名称 in pinyin initials), else None."""
    masked = set(masked)
    cols = [c for c in fields if c not in masked]
    labels = dict(layer.get("field_labels") or {})
    for col in cols:
        if "名称" in str(labels.get(col) or ""):
            return col
    for col in cols:
        low = col.lower()
        if low in NAME_COLUMNS or low.endswith(("_name", "mc")):
            return col
    return None


def _filter(family: str) -> list:
    return ["==", ["geometry-type"], {"polygon": "Polygon", "line": "LineString",
                                      "point": "Point"}[family]]


def default_style(layer: Mapping[str, Any], fields: Iterable[str], tilejson_url: str,
                  glyphs_url: str, masked: Iterable[str] = ()) -> dict[str, Any]:
    """The platform's MapLibre style for one vector layer.

    ``layer`` is a registry row (name, title, theme, geometry_type, field_labels);
    ``fields`` the columns the caller's tiles carry (the TileJSON's ``vector_layers``
    fields), ``masked`` those sent masked (never a label). The one source is named after
    the layer and points at ``tilejson_url``; its source-layer is the layer name.
    """
    name = layer["name"]
    colour = THEME_COLOURS.get(layer.get("theme") or "", DEFAULT_COLOUR)
    family = geometry_family(layer.get("geometry_type"))
    families = [family] if family else ["polygon", "line", "point"]
    common = {"source": name, "source-layer": name}
    out: list[dict[str, Any]] = []
    for fam in families:
        flt = {} if family else {"filter": _filter(fam)}
        if fam == "polygon":
            out.append({"id": f"{name}-fill", "type": "fill", **common, **flt,
                        "paint": {"fill-color": colour, "fill-opacity": 0.35}})
            out.append({"id": f"{name}-outline", "type": "line", **common, **flt,
                        "paint": {"line-color": colour, "line-width": 1.2}})
        elif fam == "line":
            out.append({"id": f"{name}-line", "type": "line", **common, **flt,
                        "layout": {"line-cap": "round", "line-join": "round"},
                        "paint": {"line-color": colour, "line-width": 2}})
        else:
            out.append({"id": f"{name}-circle", "type": "circle", **common, **flt,
                        "paint": {"circle-color": colour, "circle-radius": 5,
                                  "circle-stroke-color": "#ffffff",
                                  "circle-stroke-width": 1}})
    label = label_field(layer, fields, masked)
    if label:
        placement = "line" if family == "line" else "point"
        out.append({
            "id": f"{name}-label", "type": "symbol", **common, "minzoom": 12,
            "layout": {"text-field": ["to-string", ["get", label]], "text-font": LABEL_FONT,
                       "text-size": 12, "symbol-placement": placement,
                       **({"text-offset": [0, 1.1]} if family == "point" else {})},
            "paint": {"text-color": "#222222", "text-halo-color": "#ffffff",
                      "text-halo-width": 1.5}})
    return {
        "version": 8,
        "name": layer.get("title") or name,
        "metadata": {"jmgeo:layer": name, "jmgeo:default": True,
                     "jmgeo:label_field": label},
        "sources": {name: {"type": "vector", "url": tilejson_url}},
        "glyphs": glyphs_url,
        "layers": out,
    }


def validate_style(style: Any) -> dict[str, Any]:
    """The style if an owner may store it, else :class:`StyleError` saying what is wrong."""
    if isinstance(style, str | bytes):
        try:
            style = json.loads(style)
        except ValueError as exc:
            raise StyleError(bilingual(f"样式不是有效的 JSON：{exc}",
                                       f"the style is not valid JSON: {exc}")) from None
    if not isinstance(style, dict):
        raise StyleError(bilingual("样式必须是 JSON 对象", "a style must be a JSON object"))
    size = len(json.dumps(style, ensure_ascii=False).encode("utf-8"))
    if size > MAX_STYLE_BYTES:
        raise StyleError(bilingual(f"样式过大（{size} 字节，上限 {MAX_STYLE_BYTES}）",
                                   f"style too large ({size} bytes, at most {MAX_STYLE_BYTES})"))
    if style.get("version") != 8:
        raise StyleError(bilingual("样式须为 MapLibre 样式规范第 8 版（\"version\": 8）",
                                   f"version must be 8 (MapLibre style spec), got "
                                   f"{style.get('version')!r}"))
    if not isinstance(style.get("sources"), dict):
        raise StyleError(bilingual("样式缺少 sources 对象", "\"sources\" must be an object"))
    layers = style.get("layers")
    if not isinstance(layers, list):
        raise StyleError(bilingual("样式缺少 layers 数组", "\"layers\" must be an array"))
    seen: set[str] = set()
    for i, lyr in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(lyr, dict) or not isinstance(lyr.get("id"), str) or not lyr["id"]:
            raise StyleError(bilingual(f"{where} 须为带 id 的对象",
                                       f"{where} must be an object with a string id"))
        if lyr["id"] in seen:
            raise StyleError(bilingual(f"{where} 的 id 重复：{lyr['id']!r}",
                                       f"{where}: duplicate id {lyr['id']!r}"))
        seen.add(lyr["id"])
        if lyr.get("type") not in LAYER_TYPES:
            raise StyleError(bilingual(
                f"{where} 的 type 无效：{lyr.get('type')!r}",
                f"{where}: type must be one of {', '.join(sorted(LAYER_TYPES))}"))
        src = lyr.get("source")
        if lyr["type"] != "background" and src not in style["sources"]:
            raise StyleError(bilingual(f"{where} 引用了未定义的数据源 {src!r}",
                                       f"{where}: source {src!r} is not in \"sources\""))
    if any(lyr["type"] == "symbol" and "text-field" in (lyr.get("layout") or {})
           for lyr in layers) and not isinstance(style.get("glyphs"), str):
        raise StyleError(bilingual("含文字注记的样式须有 glyphs 地址",
                                   "a style with text labels needs a \"glyphs\" URL"))
    return style


def stored_style(conn, name: str) -> dict[str, Any] | None:
    """The owner's style of layer ``name`` (None: none stored — use the default)."""
    row = conn.execute("SELECT style FROM layer WHERE name = %s", (name,)).fetchone()
    if row is None:
        return None
    value = row["style"] if isinstance(row, Mapping) else row[0]
    return value


def set_style(conn, caller: policy.Caller, name: str,
              style: Any | None) -> dict[str, Any]:
    """Store ``style`` (validated) as layer ``name``'s style, or reset it (None). Only the
    owner department or the bureau (:func:`layers.policy.may_edit`); anyone else is told
    the layer does not exist for them if they may not read it, else that they may not."""
    from psycopg.types.json import Jsonb

    from layers import audit

    # the policy's own registry read: a retired layer is one that does not exist
    row = policy.access_row(conn, name)
    if row is None or not (policy.may_edit(caller, row["owner_code"])
                           or policy.listed(caller, row)):
        raise StyleNotFound(bilingual(f"图层 {name!r} 不存在", f"no layer named {name!r}"))
    if not policy.may_edit(caller, row["owner_code"]):
        raise StyleForbidden(bilingual(
            f"只有图层的所有部门（{row['owner_code']}）或统筹局可以更换样式",
            f"only the owner department ({row['owner_code']}) or the bureau may replace "
            f"the style of {name!r}"))
    checked = validate_style(style) if style is not None else None
    with conn.transaction():
        conn.execute("UPDATE layer SET style = %s, updated_at = now() WHERE name = %s",
                     (Jsonb(checked) if checked is not None else None, name))
        audit.record(conn, action="layer.style", caller=caller, layer=name,
                     request={"reset": checked is None,
                              "layers": len(checked["layers"]) if checked else None})
    return {"layer": name, "reset": checked is None,
            "layers": len(checked["layers"]) if checked else 0}


def effective_style(conn, layer: Mapping[str, Any], fields: Iterable[str],
                    tilejson_url: str, glyphs_url: str,
                    masked: Iterable[str] = ()) -> dict[str, Any]:
    """What a map of this layer uses: the owner's stored style, else the default."""
    return stored_style(conn, layer["name"]) or default_style(
        layer, fields, tilejson_url, glyphs_url, masked)


#: the paint properties a map image reads, per geometry family (MapLibre names)
PAINT_PROPERTIES = {
    "fill": ("fill-color", "fill-opacity", "fill-outline-color"),
    "line": ("line-color", "line-width", "line-opacity"),
    "circle": ("circle-color", "circle-radius", "circle-opacity", "circle-stroke-color",
               "circle-stroke-width", "circle-stroke-opacity"),
    "raster": ("raster-opacity",),
}
#: which style layer types draw each geometry family (a line layer outlines polygons)
FAMILY_LAYER_TYPES = {"polygon": ("fill", "line"), "line": ("line",), "point": ("circle",),
                      "raster": ("raster",)}
_GEOMETRY_TYPE_NAMES = {"polygon": "Polygon", "line": "LineString", "point": "Point"}


def literal(value: Any) -> Any:
    """The constant a paint value stands for, or None when it needs evaluating.

    Literals pass; ``["literal", x]`` is x; ``match`` / ``case`` / ``coalesce`` give their
    fallback (the value for "anything else"); anything else (``get``, zoom ``interpolate``
    or ``step``, legacy ``{"stops": ...}`` functions) is None — the renderer then uses its
    own default for that property."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        op = value[0]
        if op == "literal" and len(value) == 2:
            return literal(value[1])
        if op in ("match", "case") and len(value) >= 3:
            return literal(value[-1])
        if op == "coalesce" and len(value) >= 2:
            return literal(value[-1])
    return None


def _applies(lyr: Mapping[str, Any], family: str) -> bool:
    """Whether a style layer's ``filter`` can let features of ``family`` through: only
    geometry-type tests are read (``["==", ["geometry-type"], T]``, the legacy
    ``["==", "$type", T]``, ``!=`` and ``in`` forms); any other filter is taken to pass
    (the renderer draws every feature the caller may see)."""
    flt = lyr.get("filter")
    name = _GEOMETRY_TYPE_NAMES.get(family)
    if not isinstance(flt, list) or len(flt) < 3 or name is None:
        return True
    op, subject = flt[0], flt[1]
    if subject not in ("$type", ["geometry-type"]):
        return True
    values = [v[1] if isinstance(v, list) and len(v) == 2 and v[0] == "literal" else v
              for v in flt[2:]]
    values = [x for v in values for x in (v if isinstance(v, list) else [v])]
    hit = any(isinstance(v, str) and v.removeprefix("Multi") == name for v in values)
    if op in ("==", "in"):
        return hit
    if op in ("!=", "!in"):
        return not hit
    return True


def paint_for(style: Mapping[str, Any], family: str,
              source_layer: str | None = None) -> dict[str, Any]:
    """The literal paint values (MapLibre property names → value) that draw ``family``
    (``polygon``, ``line``, ``point`` or ``raster``) in this style: per style-layer type,
    the first visible layer of that type whose filter lets the family through (and whose
    ``source-layer``, when it names one, is ``source_layer``). A property that is absent
    or not a literal (:func:`literal`) is absent here; zoom ranges are not read."""
    out: dict[str, Any] = {}
    taken: set[str] = set()
    for lyr in style.get("layers") or []:
        kind = lyr.get("type")
        if kind not in FAMILY_LAYER_TYPES.get(family, ()) or kind in taken:
            continue
        if (lyr.get("layout") or {}).get("visibility") == "none" or not _applies(lyr, family):
            continue
        if source_layer and lyr.get("source-layer") not in (None, source_layer):
            continue
        taken.add(kind)
        paint = lyr.get("paint") or {}
        for prop in PAINT_PROPERTIES[kind]:
            value = literal(paint.get(prop))
            if value is not None:
                out[prop] = value
    return out


def symbology(style: Mapping[str, Any]) -> dict[str, Any]:
    """The first fill, line and circle colours, widths and the label field of a style —
    enough for a simple renderer (map images) to draw what MapLibre would, roughly.
    Expressions are not evaluated: a non-literal colour falls back to DEFAULT_COLOUR.
    ``paint`` holds :func:`paint_for` of each geometry family (what map images use)."""
    out: dict[str, Any] = {"fill": None, "fill_opacity": 0.35, "line": None,
                           "line_width": 1.0, "circle": None, "circle_radius": 5.0,
                           "label_field": None}

    def lit(value, default):
        found = literal(value)
        return default if found is None else found

    for lyr in style.get("layers") or []:
        paint = lyr.get("paint") or {}
        kind = lyr.get("type")
        if kind == "fill" and out["fill"] is None:
            out["fill"] = lit(paint.get("fill-color"), DEFAULT_COLOUR)
            out["fill_opacity"] = float(lit(paint.get("fill-opacity"), 0.35))
        elif kind == "line" and out["line"] is None:
            out["line"] = lit(paint.get("line-color"), DEFAULT_COLOUR)
            out["line_width"] = float(lit(paint.get("line-width"), 1.0))
        elif kind == "circle" and out["circle"] is None:
            out["circle"] = lit(paint.get("circle-color"), DEFAULT_COLOUR)
            out["circle_radius"] = float(lit(paint.get("circle-radius"), 5.0))
        elif kind == "symbol" and out["label_field"] is None:
            text = (lyr.get("layout") or {}).get("text-field")
            out["label_field"] = _field_of(text)
    out["paint"] = {family: paint_for(style, family) for family in FAMILY_LAYER_TYPES}
    return out


def _field_of(expr: Any) -> str | None:
    """The property a text-field reads: ``["get", f]``, nested in e.g. ``to-string``, or
    the legacy ``"{f}"`` token."""
    if isinstance(expr, str) and expr.startswith("{") and expr.endswith("}"):
        return expr[1:-1]
    if isinstance(expr, list) and expr:
        if expr[0] == "get" and len(expr) == 2 and isinstance(expr[1], str):
            return expr[1]
        for part in expr[1:]:
            found = _field_of(part)
            if found:
                return found
    return None
