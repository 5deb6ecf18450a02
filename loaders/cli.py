"""``jmgeo load FILE …`` and ``jmgeo layer list|history|rollback|prune|retire|unretire|style|show``.

User errors (a bad file, a wrong option) print one bilingual line and exit 2
(:class:`jmgeo.errors.UserError`); the report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from layers.vocab import SHARING_CLASSES, UPDATE_CYCLES


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "load", help="装载文件为部门图层或数据表 / load a file as a department layer or table",
        description="Load a Shapefile (loose or zipped), GeoPackage, GeoJSON, CSV, KML, "
        "FileGDB or GeoTIFF into the framework (EPSG:4490) as a new version of a layer; or, "
        "with --kind table --key FIELD, records without geometry (CSV, XLSX sheet, DBF, "
        "GeoPackage attribute table) as a new version of a table.")
    p.add_argument("file", help="the file (.shp, .zip, .gpkg, .geojson, .csv, .kml, .gdb, .tif, "
                   ".xlsx, .dbf)")
    p.add_argument("--dept", help="owner department code (e.g. gtzy)")
    p.add_argument("--layer", help="layer name: lowercase ascii, e.g. land_parcels")
    p.add_argument("--theme", help="theme: land, water, transport, civil_defence, …")
    p.add_argument("--sharing", choices=SHARING_CLASSES, help="sharing class")
    p.add_argument("--legal-basis", help="法律依据, required for not_shared")
    p.add_argument("--src-crs", help="source CRS: EPSG:4547, cgcs2000-gk38, gcj02, bd09, "
                   "a WKT/PROJ string … (default: the file's, else inferred)")
    p.add_argument("--encoding", help="attribute encoding (default: .cpg, else detected)")
    p.add_argument("--kind", choices=("vector", "table"),
                   help="table: records without geometry, keyed by --key (default: a layer, "
                   "or a raster for GeoTIFF)")
    p.add_argument("--key", help="unique key field (checked; used to diff versions; required "
                   "for --kind table)")
    p.add_argument("--sheet", metavar="NAME", help="XLSX: the sheet to load (default: the first)")
    p.add_argument("--dry-run", action="store_true", help="full report, nothing changes")
    p.add_argument("--title", help="中文名称 of the layer (default: the layer name)")
    p.add_argument("--description", help="description")
    p.add_argument("--update-cycle", choices=UPDATE_CYCLES, default="other")
    p.add_argument("--source-layer", help="layer inside a GeoPackage / KML / FileGDB")
    p.add_argument("--list-layers", action="store_true",
                   help="list the file's layers (an XLSX's sheets), exit")
    p.add_argument("--allow-outside", action="store_true",
                   help="accept data that lies mostly outside Jiangmen (national data)")
    p.add_argument("--strict", action="store_true",
                   help="refuse invalid geometries instead of repairing them")
    p.add_argument("--force-2d", action="store_true", help="drop Z/M values (reported)")
    p.add_argument("--swap-xy", action="store_true", help="the file has lat/lon order: swap")
    p.add_argument("--sensitive", action="append", default=[], metavar="FIELD=KIND",
                   help="mark a sensitive field (kinds: id_number, phone, person_name, full)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_load)

    lp = sub.add_parser("layer", help="图层 / layers: list, history, rollback, show",
                        description="Inspect layers and their versions; roll back.")
    lsub = lp.add_subparsers(dest="layer_cmd", required=True)
    ls = lsub.add_parser("list", help="every layer with its current version")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    h = lsub.add_parser("history", help="a layer's versions, newest first")
    h.add_argument("name")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_history)
    r = lsub.add_parser("rollback", help="make an earlier version current again")
    r.add_argument("name")
    r.add_argument("--to", type=int, required=True, metavar="N", help="version number")
    r.set_defaults(func=_rollback)
    pr = lsub.add_parser("prune", help="drop the tables of old versions (retention); feeds "
                         "and rollbacks then start from the oldest kept")
    pr.add_argument("name")
    pr.add_argument("--keep", type=int, required=True, metavar="N",
                    help="how many newest versions keep their tables (the current always)")
    pr.add_argument("--force", action="store_true",
                    help="prune even though the resource has live grants")
    pr.set_defaults(func=_prune)
    rt = lsub.add_parser("retire", help="停止服务: hide a resource everywhere (versions, grants, "
                         "change log and audit kept); `unretire` puts it back")
    rt.add_argument("name")
    rt.add_argument("--force", action="store_true",
                    help="retire even though the resource has live grants")
    rt.add_argument("--reason", help="why (recorded in the audit log)")
    rt.set_defaults(func=_retire)
    ur = lsub.add_parser("unretire", help="put a retired resource back in service")
    ur.add_argument("name")
    ur.set_defaults(func=_retire)
    st = lsub.add_parser("style", help="replace a layer's map style (MapLibre JSON, version "
                         "8) or --reset it to the default; the owner's or the bureau's")
    st.add_argument("name")
    st.add_argument("file", nargs="?", help="the style, FILE.json")
    st.add_argument("--reset", action="store_true", help="back to the default style")
    st.add_argument("--dept", help="act as this department (refused unless it owns the layer;"
                    " default: the bureau)")
    st.set_defaults(func=_style)
    s = lsub.add_parser("show", help="a layer's registry entry and current version report")
    s.add_argument("name")
    s.add_argument("--version", type=int, help="another version's report")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_show)


def _parse_sensitive(items: list[str]) -> dict[str, str]:
    from jmgeo.errors import UserError

    out = {}
    for item in items:
        name, sep, kind = item.partition("=")
        if not sep or not name or not kind:
            raise UserError(f"--sensitive 应写成 字段=类型 / --sensitive takes FIELD=KIND, got "
                            f"{item!r}")
        out[name.strip()] = kind.strip()
    return out


def _load(args: argparse.Namespace) -> int:
    from jmgeo.errors import UserError
    from loaders.errors import LoaderError
    from loaders.pipeline import LoadOptions, format_report, load

    if args.list_layers:
        return _list_file_layers(args.file, args.kind)
    missing = [o for o, v in (("--dept", args.dept), ("--layer", args.layer),
                              ("--theme", args.theme), ("--sharing", args.sharing)) if not v]
    if missing:
        raise UserError(f"缺少必填参数 {' '.join(missing)} / missing required options: "
                        f"{' '.join(missing)}")
    opts = LoadOptions(
        dept=args.dept, layer=args.layer, theme=args.theme, sharing=args.sharing,
        legal_basis=args.legal_basis, src_crs=args.src_crs, encoding=args.encoding,
        key=args.key, dry_run=args.dry_run, title=args.title, description=args.description,
        update_cycle=args.update_cycle, source_layer=args.source_layer,
        allow_outside=args.allow_outside, strict=args.strict, force_2d=args.force_2d,
        swap_xy=args.swap_xy, sensitive=_parse_sensitive(args.sensitive),
        loaded_by=f"cli:{_whoami()}", kind=args.kind, sheet=args.sheet)
    previous = _stop_on_sigterm()
    try:
        report = load(args.file, opts, progress=not args.no_progress)
    except LoaderError as exc:
        if exc.code == "load_stopped":
            print(f"jmgeo: {exc}", file=sys.stderr)
            return 143  # 128 + SIGTERM, as a shell reports a terminated command
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        print("jmgeo: 装载已中断，数据库未改变 / load interrupted; the database is unchanged",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        print(format_report(report))
    return 0


def _stop_on_sigterm():
    """SIGTERM (a service manager stopping, ``kill``) stops the load at its next batch:
    its transaction rolls back, the layer's lock goes with it, temporary files are
    removed on the way out — instead of dying mid-COPY or being waited for. Returns the
    handler it replaced (None off the main thread, where signals cannot be set)."""
    import signal
    import threading

    from loaders.limits import stop_all

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: stop_all(
        "收到停止信号（SIGTERM）", "stopped by a signal (SIGTERM)"))


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def _list_file_layers(path: str, kind: str | None = None) -> int:
    from jmgeo.errors import UserError
    from loaders.errors import LoaderError
    from loaders.readers import list_layers
    from loaders.source import open_source
    from loaders.xlsx import list_sheets

    try:
        with open_source(path, kind=kind) as src:
            found = [(n, "table") for n in list_sheets(src)] if src.fmt == "xlsx" \
                else list_layers(src)
            for name, gtype in found:
                print(f"{name}\t{gtype}")
    except LoaderError as exc:
        raise UserError(str(exc)) from exc
    return 0


def _conn():
    import psycopg

    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True)


def _jsonable(rows: Any) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=2, default=str)


def _style(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jmgeo.errors import UserError
    from layers.policy import Caller
    from layers.styles import set_style

    if bool(args.file) == bool(args.reset):
        raise UserError("请给出样式文件或 --reset（二选一）/ give FILE.json or --reset, not both")
    who = f"cli:{_whoami()}"
    caller = (Caller("department", args.dept, f"{who}@{args.dept}") if args.dept
              else Caller(kind="admin", name=who))
    style = None
    if args.file:
        try:
            style = Path(args.file).read_bytes()
        except OSError as exc:
            raise UserError(f"无法读取样式文件 {args.file} / cannot read {args.file}: "
                            f"{exc.strerror}") from exc
    with _conn() as conn:
        out = set_style(conn, caller, args.name, style)
    print(f"{args.name}: " + ("默认样式 / default style restored" if out["reset"] else
                              f"样式已更换 / style replaced ({out['layers']} style layers)"))
    return 0


def _list(args: argparse.Namespace) -> int:
    from layers.registry import list_layers

    with _conn() as conn:
        rows = list_layers(conn)
    if args.json:
        print(_jsonable(rows))
        return 0
    if not rows:
        print("（没有图层）/ no layers yet: load one with `jmgeo load`")
        return 0
    print(f"{'name':<28} {'dept':<6} {'sharing':<14} {'type':<16} {'ver':>4} {'features':>10}  title")
    for r in rows:
        print(f"{r['name']:<28} {r['owner_code']:<6} {r['sharing_class']:<14} "
              f"{(r['geometry_type'] or r['kind']):<16} {r['current_version'] or '-':>4} "
              f"{r['feature_count'] if r['feature_count'] is not None else '-':>10}  {r['title']}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from jmgeo.errors import UserError
    from layers.registry import RegistryError, history

    try:
        with _conn() as conn:
            rows = history(conn, args.name)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print(_jsonable([{k: v for k, v in r.items() if k != "report"} |
                         {"quality": (r["report"] or {}).get("quality")} for r in rows]))
        return 0
    print(f"{'':2}{'ver':>4}  {'loaded at':<25} {'features':>10}  {'quality':>7}  "
          f"{'key diff':<16} source")
    for r in rows:
        rep = r["report"] or {}
        q = (rep.get("quality") or {}).get("score", "-")
        diff = (rep.get("key") or {}).get("diff") or {}
        d = (f"+{diff['added']} -{diff['removed']} ~{diff['changed']}"
             if "added" in diff else "")
        print(f"{'*' if r['current'] else ' ':2}{r['version']:>4}  "
              f"{r['loaded_at']:%Y-%m-%d %H:%M:%S%z}  {r['feature_count'] or 0:>10}  "
              f"{q:>7}  {d:<16} {r['source_name'] or ''} ({r['loaded_by'] or '?'})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from jmgeo.errors import UserError
    from layers.registry import RegistryError
    from loaders.pipeline import rollback

    try:
        with _conn() as conn:
            res = rollback(conn, args.name, args.to)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc
    print(f"{res['layer']}: 当前版本 {res['from_version']} → {res['to_version']} / current version "
          f"{res['from_version']} → {res['to_version']} (registry epoch {res['epoch']})")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from jmgeo.errors import UserError
    from layers.registry import RegistryError, prune

    try:
        with _conn() as conn:
            res = prune(conn, args.name, args.keep, force=args.force, by="cli")
    except RegistryError as exc:
        raise UserError(str(exc)) from exc
    print(f"{res['layer']}: 删除版本 {res['dropped_versions'] or '无'}，保留 {res['kept_versions']} / "
          f"dropped the tables of versions {res['dropped_versions'] or 'none'}, kept "
          f"{res['kept_versions']}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    import getpass

    from jmgeo.errors import UserError
    from layers.lifecycle import retire, unretire
    from layers.registry import RegistryError

    by = f"cli:{getpass.getuser()}"
    try:
        with _conn() as conn:
            if args.layer_cmd == "retire":
                res = retire(conn, args.name, force=args.force, reason=args.reason, by=by)
            else:
                res = unretire(conn, args.name, by=by)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc
    if res["retired"]:
        print(f"{args.name}: 已停止服务（版本、授权与日志保留）/ retired: hidden everywhere, "
              f"history kept; `jmgeo layer unretire {args.name}` puts it back")
    else:
        print(f"{args.name}: 已恢复服务 / back in service")
    return 0


def _show(args: argparse.Namespace) -> int:
    from jmgeo.errors import UserError
    from layers.registry import RegistryError, history, require_layer
    from loaders.pipeline import format_report

    with _conn() as conn:
        try:
            layer = require_layer(conn, args.name)
            versions = history(conn, args.name)
        except RegistryError as exc:
            raise UserError(str(exc)) from exc
    want = args.version or layer["current_version"]
    version = next((v for v in versions if v["version"] == want), None)
    if args.version and version is None:
        raise UserError(f"图层 {args.name} 没有第 {args.version} 版 / layer {args.name!r} has no "
                        f"version {args.version}")
    if args.json:
        print(_jsonable({"layer": layer, "version": version}))
        return 0
    print(f"{layer['name']} — {layer['title']}")
    print(f"  部门 / owner:      {layer['owner_code']} {layer['owner_name']}")
    print(f"  主题 / theme:      {layer['theme']}    共享 / sharing: {layer['sharing_class']}"
          + (f"  法律依据 / legal basis: {layer['legal_basis']}" if layer["legal_basis"] else ""))
    if layer["kind"] == "table":
        print(f"  数据表 / table:    无几何 / no geometry  键 / key: {layer['key_field']}  "
              f"编码 / encoding: {layer['source_encoding']}")
    else:
        print(f"  几何 / geometry:   {layer['geometry_type']}  源坐标系 / source CRS: "
              f"{layer['source_crs']}  编码 / encoding: {layer['source_encoding']}")
    print(f"  版本 / versions:   current {layer['current_version']} of "
          f"{[v['version'] for v in versions]}")
    if layer["sensitive_fields"]:
        print(f"  敏感字段 / sensitive: {layer['sensitive_fields']}")
    if layer["field_labels"]:
        print("  字段 / labels:     " + ", ".join(f"{k}={v}" for k, v in
                                                   layer["field_labels"].items()))
    if version and version["report"]:
        print(format_report(version["report"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
