"""The load report: quality score, warnings, and the text people read.

The JSON form is stored with each version (``layer_version.report``); :func:`format_report`
prints it for ``jmgeo load`` and ``jmgeo layer show``. A table's report has no CRS,
extent or geometry sections ("no geometry"): counts, fields, key and quality.
"""

from __future__ import annotations

from typing import Any

from loaders.attributes import AttributePlan
from loaders.encoding import EncodingDecision
from loaders.geometry import GeomStats


def quality(stats: GeomStats, plan: AttributePlan, loaded: int, key_dups: int,
            required: list[str], *, is_table: bool = False) -> dict[str, Any]:
    """Completeness, geometry validity, inside extent and key uniqueness, and a score.

    A table has no geometry: its score is completeness (over all fields — its key is
    complete by construction) and key uniqueness."""
    fields = [f for f in plan.fields if f.how != "drop" and
              (not required or f.column in required or f.source in required)]
    cells = sum(f.values for f in fields)
    filled = cells - sum(f.nulls for f in fields)
    completeness = filled / cells if cells else 1.0
    keys = 1 - key_dups / loaded if loaded else 1.0
    if is_table:
        return {"score": round(100 * (0.5 * completeness + 0.5 * keys), 1),
                "completeness": round(completeness, 4), "key_uniqueness": round(keys, 4),
                "completeness_fields": "all"}
    total = max(stats.read - stats.empty, 1)
    validity = 1 - (stats.repaired + stats.rejected + stats.unreadable) / total
    inside = 1 - stats.outside / loaded if loaded else 0.0
    score = 100 * (0.3 * completeness + 0.3 * validity + 0.2 * inside + 0.2 * keys)
    return {"score": round(score, 1), "completeness": round(completeness, 4),
            "geometry_validity": round(validity, 4), "inside_extent": round(inside, 4),
            "key_uniqueness": round(keys, 4),
            "completeness_fields": "required" if required else "all"}


def attribute_warnings(plan: AttributePlan, text_fixed: int,
                       encoding: EncodingDecision) -> list[str]:
    """What attribute conversion had to change (values left empty, bytes replaced)."""
    out = []
    for f in plan.fields:
        if f.failed:
            out.append(f"字段 {f.source} 有 {f.failed} 个值无法转换为 {f.pg_type}，已置空 / "
                       f"{f.failed} values of {f.source} could not be read as "
                       f"{f.pg_type} and were left empty")
    if text_fixed:
        out.append(f"{text_fixed} 个属性值含无效的 {encoding.label} 字节（多为字段宽度截断了"
                   f"汉字），无法解码的字节已替换为 � / {text_fixed} attribute values held "
                   f"invalid {encoding.label} bytes (mostly a character cut by "
                   "the field width); the undecodable bytes became �")
    return out


def geometry_warnings(stats: GeomStats) -> list[str]:
    out = []
    if stats.outside:
        out.append(f"{stats.outside} 个要素在江门市范围之外（如第 "
                   f"{stats.outside_examples[:5]} 个）/ {stats.outside} features lie "
                   f"outside Jiangmen (e.g. features {stats.outside_examples[:5]})")
    if stats.repaired:
        out.append(f"修复了 {stats.repaired} 个无效几何 / repaired {stats.repaired} "
                   "invalid geometries (listed in the report)")
    if stats.dropped_z or stats.dropped_m:
        out.append(f"丢弃了 Z 值 {stats.dropped_z} 个、M 值 {stats.dropped_m} 个要素 / "
                   f"dropped Z from {stats.dropped_z} and M from {stats.dropped_m} "
                   "features (--force-2d)")
    return out


def _head(report: dict[str, Any], what: str) -> str:
    t = report["target"]
    return (f"{'试装载（未发布）/ DRY RUN — nothing published' if report['dry_run'] else '已发布 / published'}: "
            f"{t['layer']} 第 {t['version']} 版 / version {t['version']} ({what})")


def _key_line(report: dict[str, Any]) -> list[str]:
    k = report.get("key")
    if not k:
        return []
    diff = k.get("diff") or {}
    return [f"  键 / key:          {k['field']} unique" + (
        f"; vs version {diff['against_version']}: +{diff.get('added', 0)} "
        f"-{diff.get('removed', 0)} ~{diff.get('changed', 0)}" if diff.get("added")
        is not None else "")]


def _source_lines(report: dict[str, Any]) -> list[str]:
    s = report["source"]
    return [
        f"  来源 / source:     {s['file']} ({s['format']}"
        + (f", {s['layer']}" if s.get("layer") else "") + f", {s['bytes'] / 1e6:.1f} MB)",
        f"  编码 / encoding:   {report['encoding']['encoding']} — {report['encoding']['reason']}"
        + (f" — e.g. {report['encoding']['sample']!r}" if report["encoding"].get("sample")
           else ""),
    ]


def _fields_line(report: dict[str, Any]) -> str:
    return "  字段 / fields:     " + ", ".join(
        f"{f['column']}({f['label']}:{f['type']})" for f in report["fields"][:20])


def _tail(report: dict[str, Any], rate: str) -> list[str]:
    lines = [f"  注意 / warning:    {w}" for w in report["warnings"]]
    if report.get("catalog"):
        lines.append(f"  目录 / catalog:    {report['catalog']['code']} "
                     f"({report['catalog']['outcome']})")
    lines.append(f"  用时 / time:       {report['seconds']} s ({rate})")
    return lines


def format_table_report(report: dict[str, Any]) -> str:
    c, q, t = report["counts"], report["quality"], report["target"]
    lines = [
        _head(report, f"table {t['table']}, key {t['key_field']}"),
        *_source_lines(report),
        "  几何 / geometry:   无（数据表）/ no geometry (a table)",
        f"  记录 / records:    read {c['read']:,}, loaded {c['loaded']:,}",
        f"  质量 / quality:    {q['score']} / 100 (completeness {q['completeness']:.1%}, "
        f"key uniqueness {q['key_uniqueness']:.1%})",
        _fields_line(report), *_key_line(report),
    ]
    return "\n".join(lines + _tail(report, f"{report.get('records_per_second') or 0:,} "
                                           "records/s"))


def format_report(report: dict[str, Any]) -> str:
    """The report as people read it (the JSON form is stored with the version)."""
    if report.get("unchanged"):
        return (f"{report['source']['file']}: 内容未变，未生成新版本（当前第 {report['version']} 版）/ "
                f"unchanged since version {report['version']}: no new version")
    kind = report.get("target", {}).get("kind")
    if kind == "table":
        return format_table_report(report)
    if kind == "raster":
        t, r = report["target"], report["raster"]
        return (f"{_head(report, 'raster COG ' + t['file'] + ', EPSG:4490')}\n"
                f"  来源 / source:     {report['source']['file']} "
                f"({r['width']}×{r['height']}, {r['bands']} band(s) {r['dtype']}, nodata "
                f"{r['nodata']})\n  坐标系 / CRS:      {report['crs']['crs']}\n  范围 / bbox:       "
                f"{[round(v, 5) for v in report['bbox']]}\n  用时 / time:       "
                f"{report['seconds']} s")
    c, q, t = report["counts"], report["quality"], report["target"]
    lines = [
        _head(report, f"{t['table']}, {t['geometry_type']}, EPSG:4490"),
        *_source_lines(report),
        f"  坐标系 / CRS:      {report['crs']['crs']} — {report['crs']['reason']}",
        f"  要素 / features:   read {c['read']:,}, loaded {c['loaded']:,}, repaired "
        f"{c['repaired']:,}, rejected {c['rejected']:,}, empty {c['empty']:,}, outside "
        f"Jiangmen {c['outside']:,}" + (f", Z/M dropped {c['dropped_z'] + c['dropped_m']:,}"
                                        if c["dropped_z"] or c["dropped_m"] else ""),
        f"  质量 / quality:    {q['score']} / 100 (completeness {q['completeness']:.1%}, "
        f"validity {q['geometry_validity']:.1%}, inside extent {q['inside_extent']:.1%}, "
        f"key uniqueness {q['key_uniqueness']:.1%})",
        _fields_line(report), *_key_line(report),
    ]
    for r in report["repairs"][:5]:
        lines.append(f"  修复 / repaired:   feature {r['feature']}: {r['problem']}")
    return "\n".join(lines + _tail(report, f"{report['features_per_second'] or 0:,} "
                                           "features/s"))
