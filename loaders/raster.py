"""GeoTIFF rasters (a DEM, an orthophoto) → a Cloud-Optimized GeoTIFF in EPSG:4490,
registered as a ``raster`` layer version (served as a coverage by its own provider).

GDAL's warper does the reprojection (through rasterio); the COG is written under
``var/rasters/<layer>_v<N>.tif`` *before* the version is published, and publishing is
the same one-transaction step as for vector layers — a killed load leaves at most an
orphan file, never a half-published layer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from layers import registry
from loaders.errors import LoaderError
from loaders.limits import Budget
from loaders.source import Source
from spatial.crs import in_jiangmen


def raster_dir() -> Path:
    from jmgeo.settings import get_settings

    return get_settings().var_dir / "rasters"


def check_raster_size(width: int, height: int, bands: int, display: str) -> None:
    """Refuse a raster bigger than the settings allow, from its header alone: a sparse
    GeoTIFF of a few kilobytes may declare 10^12 pixels, and warping it kept a server
    core busy for minutes (holding the layer's lock)."""
    from jmgeo.settings import get_settings

    limits = get_settings()
    pixels = width * height * max(bands, 1)
    if max(width, height) > limits.raster_max_side or pixels > limits.raster_max_pixels:
        raise LoaderError(
            "raster_too_large", f"栅格过大：{width} × {height} 像素 × {bands} 波段（上限：边长 "
            f"{limits.raster_max_side}，总像素 {limits.raster_max_pixels}）",
            f"the raster is too large: {width} x {height} pixels x {bands} bands (limits: "
            f"{limits.raster_max_side} per side, {limits.raster_max_pixels} pixels in all)",
            file=display, fix_zh="裁剪或降低分辨率后装载；管理员可调高 JMGEO_RASTER_MAX_SIDE / "
            "JMGEO_RASTER_MAX_PIXELS", fix_en="clip or resample it first; an administrator "
            "may raise JMGEO_RASTER_MAX_SIDE / JMGEO_RASTER_MAX_PIXELS")


def load_raster(src: Source, opts, *, dsn: str) -> dict[str, Any]:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    t0 = time.monotonic()
    display = src.display
    try:
        ds = rasterio.open(src.path)
    except rasterio.errors.RasterioIOError as exc:
        raise LoaderError("unreadable", f"无法读取栅格（{exc}）", f"cannot read the raster ({exc})",
                          file=display, fix_zh="确认是完整的 GeoTIFF", fix_en="check it is a "
                          "complete GeoTIFF") from exc
    with ds:
        if opts.src_crs:
            if opts.src_crs.lower().replace("-", "") in ("gcj02", "bd09"):
                raise LoaderError("bad_crs", "栅格不支持 GCJ-02/BD-09（非线性偏移无法用仿射变换表示）",
                                  "rasters in GCJ-02/BD-09 are not supported (the offset is "
                                  "not affine)", file=display, fix_zh="提供 CGCS2000 或 WGS 84 栅格",
                                  fix_en="supply the raster in CGCS2000 or WGS 84")
            from spatial.crs import get_crs

            src_crs = CRS.from_wkt(get_crs(opts.src_crs).to_wkt())
        elif ds.crs:
            src_crs = ds.crs
        else:
            raise LoaderError("unknown_crs", "GeoTIFF 没有坐标参考系", "the GeoTIFF has no CRS",
                              file=display, fix_zh="用 --src-crs 指明", fix_en="pass --src-crs")
        bounds = transform_bounds(src_crs, CRS.from_epsg(4490), *ds.bounds)
        cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        if not opts.allow_outside and not bool(in_jiangmen(cx, cy, margin=0.05)):
            raise LoaderError(
                "outside_jiangmen", f"栅格中心（{cx:.3f}, {cy:.3f}）不在江门市范围内，通常是坐标系不对",
                f"the raster's centre ({cx:.3f}, {cy:.3f}) lies outside Jiangmen, usually "
                "a wrong CRS", file=display, fix_zh="检查坐标系；确属江门以外加 --allow-outside",
                fix_en="check the CRS; add --allow-outside for data beyond Jiangmen")
        check_raster_size(ds.width, ds.height, ds.count, display)
        info = {"bands": ds.count, "dtype": ds.dtypes[0], "nodata": ds.nodata,
                "width": ds.width, "height": ds.height}
        conn = psycopg.connect(dsn, autocommit=False)
        try:
            registry.lock_layer(conn, opts.layer)
            try:
                registry.department_id(conn, opts.dept)
            except registry.RegistryError as exc:
                zh, _, en = str(exc).partition(" / ")
                raise LoaderError("registry", zh, en, file=display) from exc
            version = registry.next_version(conn, opts.layer)
            out = raster_dir() / f"{registry.table_name_for(opts.layer, version)}.tif"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp.tif")
            try:
                with WarpedVRT(ds, src_crs=src_crs, crs=CRS.from_epsg(4490),
                               resampling=Resampling.bilinear) as vrt:
                    check_raster_size(vrt.width, vrt.height, vrt.count, display)
                    Budget(display, t0=t0, cancelled=getattr(opts, "cancelled", None)
                           ).check()  # (the warp itself runs to its end)
                    rio_copy(vrt, tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                             OVERVIEWS="AUTO", BIGTIFF="IF_SAFER")
            except LoaderError:
                tmp.unlink(missing_ok=True)
                raise
            except Exception as exc:  # noqa: BLE001 — GDAL's CPLE_* errors: a damaged file
                tmp.unlink(missing_ok=True)
                raise LoaderError(
                    "unreadable", f"栅格数据读取失败，文件可能不完整或已损坏（{exc}）",
                    f"the raster's pixels cannot be read: the file is truncated or damaged "
                    f"({exc})", file=display, fix_zh="重新导出或完整复制该 GeoTIFF 后再装载",
                    fix_en="export or copy the GeoTIFF again, completely, and load that"
                ) from exc
            if opts.dry_run:
                tmp.unlink(missing_ok=True)
            else:
                tmp.replace(out)
            report = {
                "source": {"file": display, "format": "geotiff",
                           "bytes": src.path.stat().st_size},
                "crs": {"crs": src_crs.to_string(), "source": "option" if opts.src_crs
                        else "file"},
                "target": {"layer": opts.layer, "version": version, "file": str(out),
                           "kind": "raster", "srid": 4490},
                "raster": info, "bbox": list(bounds), "dry_run": opts.dry_run,
                "warnings": [], "seconds": round(time.monotonic() - t0, 2),
            }
            if opts.dry_run:
                conn.rollback()
                report["published"] = False
                return report
            try:
                registry.publish(
                    conn, layer=opts.layer, version=version, table_name=str(out),
                    feature_count=None, report=report, source_name=display,
                    loaded_by=opts.loaded_by, title=opts.title or opts.layer, dept=opts.dept,
                    theme=opts.theme, sharing_class=opts.sharing, legal_basis=opts.legal_basis,
                    description=opts.description, update_cycle=opts.update_cycle,
                    kind="raster", source_crs=src_crs.to_string())
            except registry.RegistryError as exc:
                zh, _, en = str(exc).partition(" / ")
                raise LoaderError("registry", zh, en, file=display) from exc
            conn.commit()
            report["published"] = True
            from loaders.pipeline import catalog_sync

            catalog_sync(conn, opts.layer, report)
            return report
        finally:
            conn.close()
