"""``jmgeo tiles seed LAYER --zoom 8-14 [--region 440703] [--tms WebMercatorQuad]`` and
``jmgeo tiles status``: fill the tile cache (``jmgeo.ogc.tilecache``) ahead of users.

Seeding makes exactly the tiles an anonymous request would get (the policy's answer for
the public: sensitive fields masked) for every tile that touches the layer's data — and,
with ``--region``, the region's polygon — at each zoom level, skipping tiles already
cached for the current version. Only open layers are cached, so only they are seeded.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from jmgeo.errors import UserError, bilingual


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiles", help="瓦片缓存 / the tile cache of open layers: seed, status")
    tsub = p.add_subparsers(dest="tiles_cmd", required=True)
    s = tsub.add_parser("seed", help="make and cache an open layer's tiles ahead of users")
    s.add_argument("layer")
    s.add_argument("--zoom", required=True, metavar="Z[-Z]", help="zoom levels, e.g. 8-14")
    s.add_argument("--region", metavar="CODE", help="only tiles touching this region "
                   "(GB/T 2260 code, e.g. 440703 蓬江区)")
    s.add_argument("--tms", default="WebMercatorQuad",
                   help="tile matrix set: WebMercatorQuad, WorldCRS84Quad, CGCS2000Quad")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_seed_cli)
    st = tsub.add_parser("status", help="how many tiles and bytes the cache holds")
    st.set_defaults(func=_status_cli)


def parse_zooms(text: str, low: int = 0, high: int = 22) -> list[int]:
    a, _, b = text.partition("-")
    try:
        z0, z1 = int(a), int(b or a)
    except ValueError:
        raise UserError(bilingual(f"缩放级别格式无效：{text!r}（例如 8-14）",
                                  f"--zoom takes Z or Z-Z, e.g. 8-14: {text!r}")) from None
    if not low <= z0 <= z1 <= high:
        raise UserError(bilingual(f"缩放级别须在 {low}..{high} 之间且由小到大：{text!r}",
                                  f"--zoom must be ascending within {low}..{high}: {text!r}"))
    return list(range(z0, z1 + 1))


def tiles_in_bbox(tms: str, z: int, bbox: tuple[float, float, float, float]
                  ) -> Iterator[tuple[int, int]]:
    """(row, col) of every tile of matrix ``z`` overlapping ``bbox`` (lon/lat degrees)."""
    w, s, e, n = bbox
    if tms == "WebMercatorQuad":
        size = 2 ** z
        rows, cols = size, size

        def row(lat: float) -> int:
            lat = max(min(lat, 85.0511287798), -85.0511287798)
            return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * size)

        def col(lon: float) -> int:
            return int((lon + 180) / 360 * size)
    else:
        step = 180 / 2 ** z
        rows, cols = 2 ** z, 2 ** (z + 1)

        def row(lat: float) -> int:
            return int((90 - lat) / step)

        def col(lon: float) -> int:
            return int((lon + 180) / step)
    r0, r1 = max(row(n), 0), min(row(s), rows - 1)
    c0, c1 = max(col(w), 0), min(col(e), cols - 1)
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            yield r, c


def _region(conn, code: str):
    from shapely import wkb

    row = conn.execute("SELECT ST_AsBinary(geom) AS g FROM region WHERE code = %s AND "
                       "valid_to IS NULL AND geom IS NOT NULL", (code,)).fetchone()
    if row is None:
        raise UserError(bilingual(f"行政区划 {code} 不存在或没有界线",
                                  f"no region {code} with a boundary: see `jmgeo regions list`"))
    return wkb.loads(bytes(row["g"]))


def seed(layer: str, zooms: list[int], *, region: str | None = None,
         tms: str = "WebMercatorQuad",
         progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Fill the cache for ``layer``; returns counts (``made``, ``empty``, ``cached``)."""
    from shapely import box
    from shapely.prepared import prep

    from jmgeo.db import connection
    from jmgeo.ogc.tilecache import tile_cache
    from jmgeo.ogc.tilejson import data_bounds
    from jmgeo.ogc.tiles import TILE_MATRIX_SETS, PolicyMVTProvider, tile_bounds, tile_provider_def
    from layers import policy

    if tms not in TILE_MATRIX_SETS:
        raise UserError(bilingual(f"不支持的瓦片矩阵集 {tms!r}",
                                  f"unknown tile matrix set {tms!r}: use one of "
                                  f"{', '.join(TILE_MATRIX_SETS)}"))
    cache = tile_cache()
    if not cache.enabled:
        raise UserError(bilingual("瓦片缓存已关闭（JMGEO_TILE_CACHE_MB=0）",
                                  "the tile cache is off (JMGEO_TILE_CACHE_MB=0)"))
    with connection() as conn:
        row, access = policy.lookup(conn, policy.system("tile-seed"), layer)
        if row is None or row["kind"] != "vector":
            raise UserError(bilingual(f"没有名为 {layer!r} 的矢量图层",
                                      f"no vector layer named {layer!r}: see "
                                      "`jmgeo layer list`"))
        if row["sharing_class"] != "open" or access is None:
            raise UserError(bilingual(
                f"只缓存开放图层；{layer} 为 {row['sharing_class']}，其瓦片按调用者逐次生成",
                f"only open layers are cached; {layer} is {row['sharing_class']} and its "
                "tiles are made per request for each caller's access"))
        shape = _region(conn, region) if region else None
    provider = PolicyMVTProvider(tile_provider_def(row, access))
    bounds = data_bounds(provider)
    if bounds is None:
        return {"layer": layer, "version": row["current_version"], "tms": tms,
                "made": 0, "empty": 0, "cached": 0, "tiles": 0}
    area = box(*bounds)
    if shape is not None:
        area = area.intersection(shape)
    counts = {"layer": layer, "version": row["current_version"], "tms": tms,
              "made": 0, "empty": 0, "cached": 0, "tiles": 0}
    if area.is_empty:
        return counts
    where = prep(area)
    started = time.monotonic()
    for z in zooms:
        todo = [(r, c) for r, c in tiles_in_bbox(tms, z, area.bounds)
                if where.intersects(box(*tile_bounds(tms, z, r, c)))]
        for i, (r, c) in enumerate(todo, 1):
            key = provider.cache_key(tms, z, r, c)
            if cache.get(key) is not None:
                counts["cached"] += 1
            else:
                data = provider.get_tiles(tileset=tms, z=z, y=r, x=c)
                counts["made" if data else "empty"] += 1
            counts["tiles"] += 1
            if progress and (i == len(todo) or i % 50 == 0):
                progress({"z": z, "done": i, "of": len(todo),
                          "elapsed": time.monotonic() - started, **counts})
    counts["seconds"] = round(time.monotonic() - started, 2)
    return counts


def _seed_cli(args: argparse.Namespace) -> int:
    def show(p: dict[str, Any]) -> None:
        end = "\n" if p["done"] == p["of"] else ""
        print(f"\r  z{p['z']}: {p['done']}/{p['of']} tiles  (made {p['made']}, empty "
              f"{p['empty']}, already cached {p['cached']}; {p['elapsed']:.1f} s)",
              end=end, file=sys.stderr, flush=True)

    zooms = parse_zooms(args.zoom)
    out = seed(args.layer, zooms, region=args.region, tms=args.tms,
               progress=None if args.no_progress else show)
    print(f"{out['layer']} v{out['version']} {out['tms']} z{zooms[0]}-{zooms[-1]}: "
          f"{out['tiles']} tiles — {out['made']} made, {out['empty']} empty, "
          f"{out['cached']} already cached ({out.get('seconds', 0)} s)")
    return 0


def _status_cli(args: argparse.Namespace) -> int:
    from jmgeo.ogc.tilecache import tile_cache

    cache = tile_cache()
    files, size = cache.usage()
    print(f"{cache.root}: {files} tiles, {size / 1024 / 1024:.1f} MiB of "
          f"{cache.max_bytes / 1024 / 1024:.0f} MiB")
    return 0
