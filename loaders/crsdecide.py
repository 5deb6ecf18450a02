"""Which CRS are the incoming coordinates in? ``--src-crs``, the file's own CRS, or an
inference from magnitudes, zone prefixes and the Jiangmen extent — and when more than
one candidate fits, a refusal that names them (DESIGN.md §4: never guess silently).

All CRS knowledge (names, zones, datums, transforms) lives in :mod:`spatial.crs`; this
module only weighs the evidence a file brings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loaders.errors import LoaderError
from spatial.crs import (
    CRSNotSupported,
    InputCRS,
    detect_zone_prefix,
    in_jiangmen,
    prefixed_zone_epsg,
    resolve_input_crs,
    to_canonical,
)

# unprefixed projected candidates around Jiangmen (GK 3-degree zones 37/38, 6-degree
# zone 19, UTM 49N/50N) in each datum data arrives in
PROJECTED_CANDIDATES = (4546, 4547, 2382, 2383, 2434, 2435, 4508, 32649, 32650)
DATUM_NAMES = {"cgcs2000": "CGCS2000", "wgs84": "WGS 84", "xian80": "西安80 Xian 1980",
               "beijing54": "北京54 Beijing 1954", "gcj02": "GCJ-02", "bd09": "BD-09",
               "other": "other"}


@dataclass
class CRSDecision:
    input: InputCRS
    source: str                    # option | file | inferred
    reason: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"crs": self.input.label, "kind": self.input.kind, "datum": self.input.datum,
                "epsg": self.input.epsg, "source": self.source, "reason": self.reason,
                "approximate": self.input.approximate, "warnings": self.warnings}


def _resolve(spec, display: str, what_zh: str, what_en: str) -> InputCRS:
    try:
        return resolve_input_crs(spec)
    except (CRSNotSupported, ValueError) as exc:
        raise LoaderError(
            "bad_crs", f"无法识别{what_zh}的坐标参考系（{exc}）".split(" / ")[0],
            f"cannot interpret the CRS {what_en}: {str(exc).split(' / ')[-1]}", file=display,
            fix_zh="用 --src-crs 指明，如 EPSG:4547、cgcs2000-gk38、gcj02",
            fix_en="pass --src-crs, e.g. EPSG:4547, cgcs2000-gk38, gcj02") from exc


def _share_inside(x: np.ndarray, y: np.ndarray, crs) -> float:
    try:
        lon, lat = to_canonical(x, y, crs)
    except Exception:  # noqa: BLE001 - a candidate that cannot even transform does not fit
        return 0.0
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return 0.0
    return float(np.mean(in_jiangmen(lon[ok], lat[ok], margin=0.05)))


def _approx_warning(info: InputCRS) -> list[str]:
    if not info.approximate:
        return []
    name = DATUM_NAMES.get(info.datum, info.datum)
    env = "JMGEO_XIAN80_TOWGS84" if info.datum == "xian80" else "JMGEO_BEIJING54_TOWGS84"
    return [f"{name} → CGCS2000 为近似转换（无本地转换参数，误差可达数十至上百米），请配置 {env} / "
            f"{name} → CGCS2000 is APPROXIMATE (no local transformation parameters "
            f"configured; errors of tens to hundreds of metres): set {env} to the surveying "
            "bureau's 7- or 4-parameter values"]


def decide_crs(x: np.ndarray, y: np.ndarray, display: str, option: str | None,
               declared: str | None) -> CRSDecision:
    """Decide from the option, the file's CRS, or a coordinate sample (x, y arrays)."""
    if option:
        info = _resolve(option, display, " --src-crs ", f"given with --src-crs ({option})")
        reason = f"按 --src-crs 使用 {info.label} / {info.label} as --src-crs says"
        warnings = _approx_warning(info)
        if declared and info.kind != "crs":
            warnings.append(f"文件声明的坐标系被 --src-crs {option} 覆盖 / the file's own CRS "
                            f"declaration was overridden by --src-crs {option}")
        return CRSDecision(info, "option", reason, warnings)
    if declared:
        info = _resolve(declared, display, "文件（.prj）", "the file declares (.prj)")
        warnings = _approx_warning(info)
        if info.datum == "wgs84" and info.crs is not None and info.crs.is_geographic:
            warnings.append(
                "文件声明 WGS 84：国内网络地图导出的数据常常实为 GCJ-02（偏移约600米），如来自高德/腾讯请用 "
                "--src-crs gcj02，来自百度用 --src-crs bd09 / the file declares WGS 84; data "
                "exported from Chinese web maps often is GCJ-02 (about 600 m off here): if it "
                "came from Amap/Tencent pass --src-crs gcj02, from Baidu --src-crs bd09")
        return CRSDecision(info, "file", f"文件声明 {info.label} / the file declares "
                           f"{info.label}", warnings)
    return infer_crs(x, y, display)


def _refuse_ambiguous(display: str, fits: list[InputCRS], why_zh: str, why_en: str):
    names = "; ".join(f"EPSG:{c.epsg} {c.crs.name}" for c in fits)
    first = fits[0].epsg
    raise LoaderError(
        "ambiguous_crs", f"没有 .prj 等坐标系说明，{why_zh}，多个坐标系都符合：{names}",
        f"no .prj or other CRS declaration, and {why_en}; several CRSs fit: {names}",
        file=display, fix_zh=f"向数据提供方确认后用 --src-crs 指明（如 --src-crs EPSG:{first}）",
        fix_en=f"ask the data's producer and pass --src-crs (e.g. --src-crs EPSG:{first})")


def infer_crs(x: np.ndarray, y: np.ndarray, display: str) -> CRSDecision:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size == 0:
        raise LoaderError("no_coordinates", "没有可用的坐标", "there are no usable coordinates",
                          file=display, fix_zh="检查数据是否为空", fix_en="check the data")
    if np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90):
        inside = float(np.mean(in_jiangmen(x, y, margin=0.05)))
        swapped = float(np.mean(in_jiangmen(y, x, margin=0.05)))
        if swapped > 0.5 and inside < 0.5:
            raise swapped_error(display)
        info = resolve_input_crs(4490)
        warnings = []
        if inside > 0.5:
            warnings.append("坐标为经纬度，按 CGCS2000 处理；若来自高德/腾讯地图应为 GCJ-02，请用 "
                            "--src-crs gcj02 / lon/lat taken as CGCS2000; if the data came from "
                            "Amap/Tencent web maps it is GCJ-02: pass --src-crs gcj02")
        return CRSDecision(
            info, "inferred",
            "无 .prj；坐标在经纬度范围内，推断为地理坐标（CGCS2000 与 WGS 84 相差不到1米）/ no .prj; "
            "coordinates are within lon/lat ranges, so geographic lon/lat was inferred "
            "(CGCS2000 and WGS 84 agree within a metre)", warnings)
    zone = detect_zone_prefix(x)
    if zone is not None:
        fits = []
        for datum in ("cgcs2000", "xian80", "beijing54"):
            try:
                info = resolve_input_crs(prefixed_zone_epsg(zone, datum))
            except (CRSNotSupported, ValueError):
                continue
            if _share_inside(x, y, info) > 0.5:
                fits.append(info)
        if len(fits) == 1:
            return CRSDecision(fits[0], "inferred", f"无 .prj；带带号 {zone} 的高斯-克吕格坐标 / "
                               f"no .prj; Gauss-Kruger eastings with zone prefix {zone}",
                               _approx_warning(fits[0]))
        if fits:
            _refuse_ambiguous(display, fits, f"坐标是带带号 {zone} 的高斯-克吕格投影坐标，但看不出大地基准",
                              f"the coordinates are Gauss-Kruger eastings with zone prefix "
                              f"{zone} but the datum cannot be told from them")
        raise outside_error(display, "带号坐标不在江门", "zone-prefixed coordinates do not "
                            "fall in Jiangmen")
    candidates = [3857] if np.all(np.abs(x) > 1e7) else list(PROJECTED_CANDIDATES)
    fits = []
    for code in candidates:
        info = resolve_input_crs(code)
        if _share_inside(x, y, info) > 0.5:
            fits.append(info)
    if len(fits) == 1:
        return CRSDecision(fits[0], "inferred", f"无 .prj；只有 {fits[0].label} 能把坐标放进江门 / "
                           f"no .prj; only {fits[0].label} puts the coordinates in Jiangmen",
                           _approx_warning(fits[0]))
    if fits:
        _refuse_ambiguous(display, fits, "坐标是投影坐标（米），但看不出投影带和大地基准",
                          "the coordinates are projected metres but the zone and datum cannot "
                          "be told from them")
    raise LoaderError(
        "unknown_crs", "没有 .prj，坐标也不符合江门常用的任何坐标系（经纬度、高斯-克吕格、Web墨卡托）",
        "no .prj, and the coordinates fit none of the CRSs used around Jiangmen (lon/lat, "
        "Gauss-Kruger, Web Mercator)", file=display,
        fix_zh="提供 .prj，或用 --src-crs 指明坐标系", fix_en="supply the .prj or pass --src-crs")


def swapped_error(display: str) -> LoaderError:
    return LoaderError(
        "swapped_axes", "坐标的经纬度顺序颠倒了（第一个数是纬度约22，第二个是经度约112），交换后才落在江门",
        "the coordinates are in latitude, longitude order (first ≈ 22, second ≈ 112): "
        "swapped, they would fall in Jiangmen", file=display,
        fix_zh="按“经度, 纬度”（x=经度）重新导出，或用 --swap-xy 装载",
        fix_en="export as longitude, latitude (x = longitude), or load with --swap-xy")


def outside_error(display: str, zh: str, en: str) -> LoaderError:
    return LoaderError(
        "outside_jiangmen", f"{zh}，大部分要素落在江门市范围（约111.9–113.3E, 21.4–22.9N）之外，"
        "通常是坐标系不对", f"{en}: most features fall outside Jiangmen (about 111.9–113.3 E, "
        "21.4–22.9 N), the usual sign of a wrong CRS", file=display,
        fix_zh="检查 .prj 或用 --src-crs 指明正确坐标系；确属江门以外的数据请加 --allow-outside",
        fix_en="check the .prj or pass the right --src-crs; for data that really lies "
        "beyond Jiangmen add --allow-outside")


def suggest_for_outside(x: np.ndarray, y: np.ndarray, current: InputCRS) -> list[str]:
    """Other CRSs that would put these coordinates in Jiangmen (for the error message)."""
    out = []
    for spec in ("gcj02", "bd09", 4490, *PROJECTED_CANDIDATES, 3857):
        info = resolve_input_crs(spec)
        if info.label == current.label:
            continue
        if _share_inside(x, y, info) > 0.5:
            out.append(info.label)
    return out
