"""Drawing a map image: geometries in a map CRS → PNG or JPEG bytes (Pillow).

Pure drawing, no database and no policy: ``jmgeo.ogc.maps`` hands over only the
geometries the caller may see (already clipped to the box and simplified to the pixel
size in PostGIS). Polygons are filled (translucent) and outlined, lines stroked, points
drawn as circles, in the layer's MapLibre style (``layers.styles``: the owner's, else the
platform's default), read by :func:`style_from_paint` from literal paint values —
``fill-color``/``-opacity``/``-outline-color``, ``line-color``/``-width``/``-opacity``,
``circle-color``/``-radius``/``-opacity``/``-stroke-color``/``-stroke-width``/
``-stroke-opacity``, CSS colours (``#rgb``, ``#rrggbb``, ``#rrggbbaa``, ``rgb()``,
``rgba()``, ``hsl()``, ``hsla()``, names). Whatever cannot be read (a data-driven or zoom
expression, an unknown colour) falls back to :func:`default_style`'s value for that
property; widths and radii are MapLibre's CSS pixels, drawn as image pixels.

Pillow's ``ImageDraw`` does not anti-alias; images up to :data:`SUPERSAMPLE_MAX_PIXELS`
are drawn at twice the size and reduced with a Lanczos filter (Pillow resamples RGBA
with premultiplied alpha, so edges on a transparent background stay clean).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageColor, ImageDraw

FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
FORMAT_ALIASES = {"jpg": "jpeg", "image/png": "png", "image/jpeg": "jpeg"}
SUPERSAMPLE_MAX_PIXELS = 1024 * 1024
JPEG_QUALITY = 85
BACKGROUND = (255, 255, 255)  # behind JPEG and `transparent=false` images

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class MapStyle:
    """How one kind of geometry is drawn (sizes in output pixels)."""

    fill: RGBA | None
    stroke: RGBA | None  # None: no outline
    stroke_width: float
    radius: float = 0.0  # points only


def default_style(kind: str) -> MapStyle:
    """The platform's default look per geometry kind (``polygon``, ``line``, ``point``)."""
    if kind == "polygon":
        return MapStyle(fill=(66, 133, 244, 90), stroke=(25, 80, 170, 255), stroke_width=1.2)
    if kind == "line":
        return MapStyle(fill=None, stroke=(214, 69, 65, 255), stroke_width=2.0)
    return MapStyle(fill=(255, 152, 0, 230), stroke=(120, 60, 0, 255), stroke_width=1.0,
                    radius=4.0)


StyleFor = Callable[[str], MapStyle]
_FUNCTIONAL = re.compile(r"^(rgba?|hsla?)\(([^)]*)\)$")


def css_colour(value: Any, opacity: Any = 1.0) -> RGBA | None:
    """A CSS colour as RGBA, its alpha times ``opacity`` (0..1); None if unreadable.
    ``rgba()``/``hsla()`` take CSS alpha 0..1 (Pillow's parser reads 0..255)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    alpha = 1.0
    m = _FUNCTIONAL.match(text)
    if m and m.group(1).endswith("a"):  # rgba(r,g,b,a) / hsla(h,s%,l%,a)
        parts = m.group(2).split(",")
        if len(parts) != 4:
            return None
        try:
            alpha = float(parts[3][:-1]) / 100 if parts[3].endswith("%") else float(parts[3])
        except ValueError:
            return None
        text = f"{m.group(1)[:-1]}({','.join(parts[:3])})"
    try:
        rgba = ImageColor.getrgb(text)
    except ValueError:
        return None
    if len(rgba) == 4:  # #rrggbbaa
        alpha *= rgba[3] / 255
    try:
        alpha *= float(opacity)
    except (TypeError, ValueError):
        pass
    return (*rgba[:3], round(max(0.0, min(1.0, alpha)) * 255))


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number >= 0 else default


def style_from_paint(kind: str, paint: Mapping[str, Any]) -> MapStyle:
    """How ``kind`` (``polygon``, ``line``, ``point``) is drawn from literal MapLibre paint
    values (``layers.styles.paint_for``); each unreadable property: :func:`default_style`'s.

    Polygons: ``fill-color`` × ``fill-opacity``; outlined by the style's line layer, else
    by ``fill-outline-color`` (1 px), else in the fill colour (MapLibre's antialiased
    edge). Points: a ``circle-color`` disc, outlined only when ``circle-stroke-width`` > 0."""
    base = default_style(kind)
    if kind == "polygon":
        fill = css_colour(paint.get("fill-color"), paint.get("fill-opacity", 1.0))
        if fill is None and "fill-color" in paint:
            fill = base.fill
        if "line-color" in paint or "line-width" in paint:
            stroke = css_colour(paint.get("line-color"), paint.get("line-opacity", 1.0))
            width = _number(paint.get("line-width"), 1.0)
        elif "fill-outline-color" in paint:
            stroke, width = css_colour(paint["fill-outline-color"],
                                       paint.get("fill-opacity", 1.0)), 1.0
        else:
            stroke, width = fill, 1.0
        return MapStyle(fill=fill if fill is not None else base.fill,
                        stroke=stroke if stroke is not None else base.stroke,
                        stroke_width=width if width > 0 else 0.0)
    if kind == "line":
        stroke = css_colour(paint.get("line-color"), paint.get("line-opacity", 1.0))
        return replace(base, stroke=stroke if stroke is not None else base.stroke,
                       stroke_width=_number(paint.get("line-width"), base.stroke_width))
    fill = css_colour(paint.get("circle-color"), paint.get("circle-opacity", 1.0))
    width = _number(paint.get("circle-stroke-width"), 0.0)
    stroke = css_colour(paint.get("circle-stroke-color", "#000000"),
                        paint.get("circle-stroke-opacity", 1.0)) if width > 0 else None
    return MapStyle(fill=fill if fill is not None else base.fill, stroke=stroke,
                    stroke_width=width,
                    radius=_number(paint.get("circle-radius"), base.radius))


def style_reader(paint_of: Callable[[str], Mapping[str, Any]]) -> StyleFor:
    """``style_for`` for :func:`render`: the :class:`MapStyle` of each kind, from the
    paint values ``paint_of(kind)`` gives, worked out once per kind."""
    memo: dict[str, MapStyle] = {}

    def style_for(kind: str) -> MapStyle:
        if kind not in memo:
            memo[kind] = style_from_paint(kind, paint_of(kind))
        return memo[kind]

    return style_for


@dataclass(frozen=True)
class Frame:
    """The map's box in its CRS (x = east, y = north) and the image size in pixels."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    width: int
    height: int

    def to_pixels(self, geoms: np.ndarray, scale: float) -> np.ndarray:
        """Map coordinates → image pixel coordinates (y down), at ``scale`` × the size."""
        sx = self.width * scale / (self.maxx - self.minx)
        sy = self.height * scale / (self.maxy - self.miny)
        offset = np.array([self.minx, self.maxy])
        factor = np.array([sx, -sy])
        return shapely.transform(geoms, lambda c: (c - offset) * factor)


def _flat(coords: np.ndarray) -> list[float]:
    return coords.ravel().tolist()


class _Canvas:
    """Two RGBA layers (translucent fills; opaque strokes) composited once at the end, so
    overlapping fills do not darken each other and strokes stay crisp over fills."""

    def __init__(self, width: int, height: int, scale: float):
        self.scale = scale
        self.size = (width, height)
        self.fills = Image.new("RGBA", self.size, (0, 0, 0, 0))
        self.fill_alpha: int | None = None
        self.strokes = Image.new("RGBA", self.size, (0, 0, 0, 0))
        self.pen = ImageDraw.Draw(self.strokes)

    def polygon(self, poly, style: MapStyle) -> None:
        rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords)
                                                      for r in poly.interiors]
        if style.fill is not None:
            x0, y0 = np.floor(rings[0].min(axis=0)).astype(int)
            x1, y1 = np.ceil(rings[0].max(axis=0)).astype(int)
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, self.size[0]), min(y1, self.size[1])
            if x1 > x0 and y1 > y0:
                # a mask per polygon (its own box) so its holes stay empty
                mask = Image.new("L", (int(x1 - x0) + 1, int(y1 - y0) + 1), 0)
                draw = ImageDraw.Draw(mask)
                shift = np.array([x0, y0])
                draw.polygon(_flat(rings[0] - shift), fill=255)
                for hole in rings[1:]:
                    draw.polygon(_flat(hole - shift), fill=0)
                self.fills.paste(style.fill[:3] + (255,), (int(x0), int(y0)), mask)
                self.fill_alpha = style.fill[3]
        if style.stroke is None or style.stroke_width <= 0:
            return
        width = max(1, round(style.stroke_width * self.scale))
        for ring in rings:
            self.pen.line(_flat(ring), fill=style.stroke, width=width, joint="curve")

    def line(self, line, style: MapStyle) -> None:
        if style.stroke is None or style.stroke_width <= 0:
            return
        width = max(1, round(style.stroke_width * self.scale))
        self.pen.line(_flat(np.asarray(line.coords)), fill=style.stroke, width=width,
                      joint="curve")

    def point(self, point, style: MapStyle) -> None:
        x, y = point.x, point.y
        r = style.radius * self.scale
        outline = style.stroke if style.stroke_width > 0 else None
        self.pen.ellipse((x - r, y - r, x + r, y + r), fill=style.fill, outline=outline,
                         width=max(1, round(style.stroke_width * self.scale)))

    def image(self) -> Image.Image:
        out = Image.new("RGBA", self.size, (0, 0, 0, 0))
        if self.fill_alpha is not None:
            alpha = self.fills.getchannel("A").point(lambda a: a * self.fill_alpha // 255)
            self.fills.putalpha(alpha)
            out.alpha_composite(self.fills)
        out.alpha_composite(self.strokes)
        return out


def _draw(canvas: _Canvas, geom, style_for) -> None:
    kind = shapely.get_type_id(geom)
    if kind in (0,):  # Point
        canvas.point(geom, style_for("point"))
    elif kind in (1, 2):  # LineString, LinearRing
        canvas.line(geom, style_for("line"))
    elif kind == 3:  # Polygon
        canvas.polygon(geom, style_for("polygon"))
    else:  # multi-part and collections: each part by its own kind
        for part in shapely.get_parts(geom):
            _draw(canvas, part, style_for)


def render(frame: Frame, wkbs: Iterable[bytes], fmt: str = "png", transparent: bool = True,
           style_for: StyleFor = default_style) -> bytes:
    """The map image of these geometries (WKB, in the frame's CRS) as PNG or JPEG bytes.

    Polygons are drawn first, then lines, then points, so small things stay on top."""
    scale = 2.0 if frame.width * frame.height <= SUPERSAMPLE_MAX_PIXELS else 1.0
    canvas = _Canvas(round(frame.width * scale), round(frame.height * scale), scale)
    blobs = [bytes(b) for b in wkbs if b is not None]
    if blobs:
        geoms = frame.to_pixels(shapely.from_wkb(blobs), scale)
        dims = shapely.get_dimensions(geoms)
        for dim in (2, 1, 0):  # polygons, lines, points
            for geom in geoms[dims == dim]:
                if not geom.is_empty:
                    _draw(canvas, geom, style_for)
    image = canvas.image()
    if scale != 1.0:
        image = image.resize((frame.width, frame.height), Image.Resampling.LANCZOS)
    return encode(image, fmt, transparent)


def encode(image: Image.Image, fmt: str = "png", transparent: bool = True) -> bytes:
    """An RGBA image as PNG (transparent, or on :data:`BACKGROUND`) or JPEG bytes."""
    buf = io.BytesIO()
    if fmt == "jpeg" or not transparent:
        flat = Image.new("RGB", image.size, BACKGROUND)
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    if fmt == "jpeg":
        image.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buf, "PNG", optimize=False)
    return buf.getvalue()
