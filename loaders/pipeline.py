"""One load, end to end: source → batches → staging table → atomic publish → report.

The staging table is the new version's own table (``layer_data.<layer>_v<N>``, made by
:func:`layers.registry.create_data_table`). It is created, filled by COPY, indexed,
checked, and published — the ``layer_version`` row, ``layer.current_version`` and the
registry epoch — all inside ONE database transaction. Until it commits, readers keep
seeing the previous version; if the load is killed at any moment (even SIGKILL) the
server rolls the transaction back and nothing of it remains. ``--dry-run`` runs the
very same path and rolls back at the end.

Work is done in batches with array operations; three stages overlap on two cores:
GDAL reading (background thread), geometry/attribute processing (this thread), and
COPY to PostgreSQL (background thread), which parses the rows in its own process.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

from layers import registry
from loaders.attributes import AttributePlan, clean_text, convert, plan_attributes
from loaders.crsdecide import (
    decide_crs,
    outside_error,
    suggest_for_outside,
    swapped_error,
)
from loaders.errors import LoaderError
from loaders.geometry import MULTI_TYPE, GeomOptions, GeomStats, as_geometries, process
from loaders.progress import Progress
from loaders.readers import open_reader
from loaders.source import Source, open_source
from spatial.crs import in_jiangmen

THEME_RE = r"^[a-z][a-z0-9_]{0,31}$"
HASH_LIMIT = 256 * 1024 ** 2  # hash sources up to this size (or always with skip_unchanged)


@dataclass
class LoadOptions:
    """Everything ``jmgeo load`` and ``POST /layers/upload`` accept."""

    dept: str
    layer: str
    theme: str
    sharing: str
    legal_basis: str | None = None
    src_crs: str | None = None
    encoding: str | None = None
    key: str | None = None
    dry_run: bool = False
    title: str | None = None
    description: str | None = None
    update_cycle: str = "other"
    source_layer: str | None = None
    allow_outside: bool = False
    strict: bool = False
    force_2d: bool = False
    swap_xy: bool = False
    sensitive: dict[str, str] = field(default_factory=dict)   # field → mask kind
    loaded_by: str | None = None
    skip_unchanged: bool = False


def _registry_error(exc: registry.RegistryError, display: str) -> LoaderError:
    zh, _, en = str(exc).partition(" / ")
    return LoaderError("registry", zh, en or zh, file=display)


def check_options(opts: LoadOptions, display: str) -> None:
    """Refuse bad options before reading a byte of data."""
    import re

    try:
        registry.check_layer_name(opts.layer)
        registry.check_sharing(opts.sharing, opts.legal_basis)
    except registry.RegistryError as exc:
        raise _registry_error(exc, display) from exc
    if not re.match(THEME_RE, opts.theme or ""):
        raise LoaderError("bad_option", f"主题无效：{opts.theme!r}", f"invalid theme "
                          f"{opts.theme!r}", file=display,
                          fix_zh="用小写英文，如 land、water、transport、civil_defence",
                          fix_en="use a lowercase word such as land, water, transport, "
                          "civil_defence")
    from layers.masking import MASK_KINDS
    from layers.models import UPDATE_CYCLES

    if opts.update_cycle not in UPDATE_CYCLES:
        raise LoaderError("bad_option", f"更新周期无效：{opts.update_cycle!r}",
                          f"invalid update cycle {opts.update_cycle!r}", file=display,
                          fix_zh=f"可用：{', '.join(UPDATE_CYCLES)}",
                          fix_en=f"use one of {', '.join(UPDATE_CYCLES)}")

    for f, kind in opts.sensitive.items():
        if kind not in MASK_KINDS:
            raise LoaderError("bad_option", f"敏感字段 {f} 的类型 {kind!r} 无效",
                              f"sensitive field {f}: unknown kind {kind!r}", file=display,
                              fix_zh=f"可用：{', '.join(MASK_KINDS)}",
                              fix_en=f"use one of {', '.join(MASK_KINDS)}")


# bump when what the loader makes of the same file changes (types, names, repairs), so
# ``skip_unchanged`` (the demo) reloads instead of keeping an outdated version
LOADER_REVISION = 3


def _content_hash(src: Source, opts: LoadOptions) -> str:
    h = hashlib.sha256(f"jmgeo-loader-{LOADER_REVISION}".encode())
    for p in sorted(src.files, key=lambda p: (p.suffix.lower(), p.name)):
        h.update(p.suffix.lower().encode() + (p.name.encode() if src.path.is_dir() else b""))
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    relevant = {k: v for k, v in asdict(opts).items()
                if k not in ("dry_run", "loaded_by", "skip_unchanged")}
    h.update(json.dumps(relevant, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


class _CopyWriter:
    """COPY … FROM STDIN in a background thread, fed CSV chunks through a small queue."""

    def __init__(self, conn: psycopg.Connection, table: str, columns: list[str]) -> None:
        schema, name = table.split(".", 1)
        self.stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns)))
        self.conn = conn
        self.q: queue.Queue = queue.Queue(maxsize=3)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="jmgeo-copy")
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.conn.cursor() as cur, cur.copy(self.stmt) as cp:
                while (chunk := self.q.get()) is not None:
                    cp.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the loading thread
            self.error = exc
            while self.q.get() is not None:  # drain so the producer never blocks
                pass

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(chunk)

    def abandon(self) -> None:
        """Stop after an error elsewhere (the transaction is rolled back anyway)."""
        try:
            self.close()
        except BaseException:  # noqa: BLE001 - the first error is the one to report
            pass

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _csv_bytes(fid: np.ndarray, ewkb: pa.Array, attrs: list[pa.Array]) -> bytes:
    cols = [pa.array(fid, pa.int64()), ewkb, *attrs]
    table = pa.Table.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))])
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False,
                                                  quoting_style="needed"))
    return buf.getvalue()


def _quality(stats: GeomStats, plan: AttributePlan, loaded: int, key_dups: int,
             required: list[str]) -> dict[str, Any]:
    fields = [f for f in plan.fields if f.how != "drop" and
              (not required or f.column in required or f.source in required)]
    cells = sum(f.values for f in fields)
    filled = cells - sum(f.nulls for f in fields)
    completeness = filled / cells if cells else 1.0
    total = max(stats.read - stats.empty, 1)
    validity = 1 - (stats.repaired + stats.rejected + stats.unreadable) / total
    inside = 1 - stats.outside / loaded if loaded else 0.0
    keys = 1 - key_dups / loaded if loaded else 1.0
    score = 100 * (0.3 * completeness + 0.3 * validity + 0.2 * inside + 0.2 * keys)
    return {"score": round(score, 1), "completeness": round(completeness, 4),
            "geometry_validity": round(validity, 4), "inside_extent": round(inside, 4),
            "key_uniqueness": round(keys, 4),
            "completeness_fields": "required" if required else "all"}


def load(path: str | Path, opts: LoadOptions, *, dsn: str | None = None,
         display: str | None = None, progress: bool = True, log=None) -> dict[str, Any]:
    """Load one file as a new version of ``opts.layer``; returns the report.

    Raises :class:`LoaderError` (one bilingual message) on any user-fixable problem;
    the database is then unchanged.
    """
    from jmgeo.settings import database_url

    t0 = time.monotonic()
    display = display or Path(path).name
    check_options(opts, display)
    with open_source(path, display) as src:
        if src.is_raster:
            from loaders.raster import load_raster

            return load_raster(src, opts, dsn=dsn or database_url())
        return _load_vector(src, opts, dsn or database_url(), t0, progress, log)


def _load_vector(src: Source, opts: LoadOptions, dsn: str, t0: float, show_progress: bool,
                 log) -> dict[str, Any]:
    display = src.display
    size = sum(p.stat().st_size for p in src.files if p.is_file())
    content_hash = _content_hash(src, opts) if (opts.skip_unchanged or size <= HASH_LIMIT) \
        else None
    reader = open_reader(src, encoding=opts.encoding, source_layer=opts.source_layer)
    warnings: list[str] = list(reader.notes)
    timing: dict[str, float] = {"open": time.monotonic() - t0}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timing[name] = round(timing.get(name, 0.0) + now - mark, 3)
        mark = now

    conn = psycopg.connect(dsn, autocommit=False)
    writer: _CopyWriter | None = None
    bar = Progress(f"装载 / loading {Path(display).name}", reader.total) if show_progress \
        else None
    try:
        registry.lock_layer(conn, opts.layer)
        try:
            registry.department_id(conn, opts.dept)
            existing = registry.get_layer(conn, opts.layer)
            if existing is not None and existing["owner_code"] != opts.dept:
                raise registry.RegistryError(
                    f"图层 {opts.layer} 属于部门 {existing['owner_code']}，不能以部门 {opts.dept} 的名义装载 / "
                    f"layer {opts.layer!r} belongs to department {existing['owner_code']!r}, "
                    f"not {opts.dept!r}: choose another layer name")
        except registry.RegistryError as exc:
            raise _registry_error(exc, display) from exc
        if opts.skip_unchanged and existing is not None and existing["current_version"]:
            row = conn.execute(
                "SELECT v.report->>'content_hash' FROM layer_version v WHERE v.layer_id = %s "
                "AND v.version = %s", (existing["id"], existing["current_version"])).fetchone()
            if row and row[0] == content_hash:
                conn.rollback()
                return {"layer": opts.layer, "unchanged": True,
                        "version": existing["current_version"], "content_hash": content_hash,
                        "source": {"file": display}}

        batches = iter(reader.batches)
        try:
            first_attrs, first_geoms = next(batches)
        except StopIteration:
            first_attrs, first_geoms = None, np.empty(0, dtype=object)
        text_fixed = 0
        if first_attrs is not None:
            first_attrs, text_fixed = clean_text(first_attrs)
        first_geoms = as_geometries(first_geoms)
        sample = first_geoms[~(shapely.is_missing(first_geoms) | shapely.is_empty(first_geoms))]
        if first_attrs is None or (len(sample) == 0 and reader.total in (None, 0)):
            from loaders.readers import _empty

            raise _empty(src)
        step = max(len(sample) // 5000, 1)
        coords = shapely.get_coordinates(sample[::step])
        if opts.swap_xy:
            coords = coords[:, ::-1]
        crs = decide_crs(coords[:, 0], coords[:, 1], display, opts.src_crs,
                         reader.declared_crs)
        warnings += crs.warnings
        schema = reader.schema if reader.schema is not None else first_attrs.schema
        plan = plan_attributes(schema, first_attrs, set(), reader.text_inference)
        warnings += plan.warnings
        gopts = GeomOptions(crs=crs.input, display=display, strict=opts.strict,
                            force_2d=opts.force_2d, swap_xy=opts.swap_xy)
        stats = GeomStats()
        key_col = None
        if opts.key:
            key_col = plan.column_for(opts.key)
            if key_col is None:
                raise LoaderError("no_key_field", f"没有键字段 {opts.key}",
                                  f"there is no key field {opts.key!r}", file=display,
                                  fix_zh=f"可用字段：{', '.join(f.source for f in plan.fields)}",
                                  fix_en=f"fields are: {', '.join(f.source for f in plan.fields)}")
        sensitive = {}
        for fname, kind in opts.sensitive.items():
            col = plan.column_for(fname)
            if col is None:
                raise LoaderError("no_such_field", f"没有敏感字段 {fname}",
                                  f"there is no field {fname!r} to mark sensitive",
                                  file=display, fix_zh="检查 --sensitive 的字段名",
                                  fix_en="check the --sensitive field names")
            sensitive[col] = kind

        version = registry.next_version(conn, opts.layer)
        offset = 0
        family = None
        table = None
        loaded = 0
        pending = [(first_attrs, first_geoms)] if first_attrs is not None else []
        del first_attrs, first_geoms, sample

        def feed():
            nonlocal text_fixed
            while pending:
                yield pending.pop()
            for attrs, geoms in batches:
                attrs, n = clean_text(attrs)
                text_fixed += n
                yield attrs, geoms

        lap("prepare")
        for attrs, geoms in feed():
            lap("read_wait")
            n_batch = len(geoms)
            keep, ewkb, family = process(geoms, family, gopts, stats, offset)
            del geoms
            lap("geometry")
            if table is None and family:
                # the first batch with geometry decides the table's type; check extent now,
                # before anything is written, so a wrong CRS fails fast
                if (not opts.allow_outside and stats.read and
                        stats.outside > 0.5 * max(stats.read - stats.empty - stats.rejected, 1)):
                    _refuse_outside(display, coords, crs.input, opts)
                try:
                    table = registry.create_data_table(
                        conn, opts.layer, version, MULTI_TYPE[family], plan.columns,
                        title=opts.title or opts.layer, with_index=False)
                except registry.RegistryError as exc:
                    raise _registry_error(exc, display) from exc
                writer = _CopyWriter(conn, table, ["fid", "geom",
                                                   *[c.name for c in plan.columns]])
            kept = np.flatnonzero(keep)
            if len(kept):
                sub = attrs.take(pa.array(kept)) if len(kept) < len(keep) else attrs
                cols = convert(plan, sub, display, offset)
                chunk = _csv_bytes(offset + kept + 1, ewkb, cols)
                lap("attributes")
                writer.put(chunk)
                lap("copy_wait")
                loaded += len(kept)
            offset += n_batch
            if bar:
                bar.update(n_batch)
        if writer is not None:
            if bar:
                bar.set_stage("写入 / COPY")
            writer.close()
            writer = None
        lap("copy_wait")
        if loaded == 0 or table is None:
            raise LoaderError("empty_layer", f"没有可装载的要素（读到 {stats.read} 个，空几何 "
                              f"{stats.empty} 个，无法修复 {stats.rejected} 个）",
                              f"no loadable features ({stats.read} read, {stats.empty} empty, "
                              f"{stats.rejected} unrepairable)", file=display,
                              fix_zh="检查数据内容", fix_en="check the data")
        if not opts.allow_outside and stats.outside > 0.5 * loaded:
            _refuse_outside(display, coords, crs.input, opts)
        if stats.outside:
            warnings.append(f"{stats.outside} 个要素在江门市范围之外（如第 "
                            f"{stats.outside_examples[:5]} 个）/ {stats.outside} features lie "
                            f"outside Jiangmen (e.g. features {stats.outside_examples[:5]})")
        for f in plan.fields:
            if f.failed:
                warnings.append(f"字段 {f.source} 有 {f.failed} 个值无法转换为 {f.pg_type}，已置空 / "
                                f"{f.failed} values of {f.source} could not be read as "
                                f"{f.pg_type} and were left empty")
        if text_fixed:
            warnings.append(f"{text_fixed} 个属性值含无效的 {reader.encoding.label} 字节（多为字段宽度截断了"
                            f"汉字），无法解码的字节已替换为 � / {text_fixed} attribute values held "
                            f"invalid {reader.encoding.label} bytes (mostly a character cut by "
                            "the field width); the undecodable bytes became �")
        if stats.repaired:
            warnings.append(f"修复了 {stats.repaired} 个无效几何 / repaired {stats.repaired} "
                            "invalid geometries (listed in the report)")
        if stats.dropped_z or stats.dropped_m:
            warnings.append(f"丢弃了 Z 值 {stats.dropped_z} 个、M 值 {stats.dropped_m} 个要素 / "
                            f"dropped Z from {stats.dropped_z} and M from {stats.dropped_m} "
                            "features (--force-2d)")
        if bar:
            bar.set_stage("索引 / indexing")
        lap("checks")
        registry.finish_data_table(conn, table)
        lap("index")
        key_report, key_dups = None, 0
        if key_col:
            key_report = _check_key(conn, table, key_col, opts.key, display)
            key_report["diff"] = _diff(conn, opts.layer, table, key_col)
        quality = _quality(stats, plan, loaded, key_dups, [key_col] if key_col else [])
        elapsed = time.monotonic() - t0
        report = {
            "source": {"file": display, "format": src.fmt, "layer": reader.source_layer,
                       "bytes": size},
            "content_hash": content_hash,
            "encoding": reader.encoding.as_dict(),
            "crs": crs.as_dict(),
            "target": {"layer": opts.layer, "version": version, "table": table,
                       "geometry_type": MULTI_TYPE[family], "srid": 4490},
            "counts": {"read": stats.read, "loaded": loaded, "repaired": stats.repaired,
                       "rejected": stats.rejected + stats.unreadable, "empty": stats.empty,
                       "outside": stats.outside, "dropped_z": stats.dropped_z,
                       "dropped_m": stats.dropped_m},
            "bbox": stats.bbox,
            "repairs": stats.repairs,
            "rejects": stats.rejects,
            "fields": [f.as_dict() for f in plan.fields if f.how != "drop"],
            "key": key_report,
            "sensitive_fields": sensitive,
            "quality": quality,
            "warnings": warnings,
            "options": {k: v for k, v in asdict(opts).items() if v not in (None, False, {})},
            "dry_run": opts.dry_run,
            "seconds": round(elapsed, 2),
            "timing": timing,
            "features_per_second": round(stats.read / elapsed) if elapsed > 0 else None,
        }
        if opts.dry_run:
            conn.rollback()
            report["published"] = False
            return report
        if bar:
            bar.set_stage("发布 / publishing")
        try:
            result = registry.publish(
                conn, layer=opts.layer, version=version, table_name=table,
                feature_count=loaded, report=report, source_name=display,
                loaded_by=opts.loaded_by, title=opts.title or opts.layer, dept=opts.dept,
                theme=opts.theme, sharing_class=opts.sharing, legal_basis=opts.legal_basis,
                description=opts.description, update_cycle=opts.update_cycle, kind="vector",
                geometry_type=MULTI_TYPE[family], source_crs=crs.input.label,
                source_encoding=reader.encoding.label, key_field=key_col,
                sensitive_fields=sensitive, field_labels=plan.labels)
        except registry.RegistryError as exc:
            raise _registry_error(exc, display) from exc
        conn.commit()
        lap("publish")
        report["published"] = True
        catalog_sync(conn, opts.layer, report)
        report["epoch"] = result["epoch"]
        report["seconds"] = round(time.monotonic() - t0, 2)
        return report
    except psycopg.DataError as exc:
        # a value PostgreSQL refuses (bad bytes, out of range …): name it, change nothing
        if writer is not None:
            writer.abandon()
        detail = str(exc).strip().splitlines()[0]
        context = (exc.diag.context or "").strip().splitlines()[0:1]
        raise LoaderError(
            "data_error", f"数据库拒收了一个属性值（{detail}；{' '.join(context)}）",
            f"the database refused a value ({detail}; {' '.join(context)})", file=display,
            fix_zh="修正该值或用 --encoding 指明正确编码后重试",
            fix_en="correct that value (or the --encoding) and load again") from exc
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    finally:
        close = getattr(reader.batches, "close", None)
        if close is not None:
            close()
        if bar:
            bar.close()
        conn.close()  # an uncommitted transaction is rolled back by the server


def catalog_sync(conn: psycopg.Connection, layer: str, report: dict[str, Any]) -> None:
    """Register the published layer in the catalog (政务信息资源目录). Best effort: the
    layer is already published; catalog readers re-sync on the registry epoch anyway."""
    try:
        from catalog.sync import sync_layer

        conn.autocommit = True
        res = sync_layer(conn, layer)
        report["catalog"] = {"code": res.get("code"), "outcome": res.get("outcome")}
    except Exception as exc:  # noqa: BLE001 - never undo a published load for the catalog
        report["warnings"].append(f"目录登记将稍后自动完成（{type(exc).__name__}）/ catalog "
                                  f"registration deferred to the next sync ({exc})")


def _refuse_outside(display: str, coords: np.ndarray, crs, opts: LoadOptions):
    x, y = coords[:, 0], coords[:, 1]
    if crs.kind == "crs" and crs.crs is not None and crs.crs.is_geographic and \
            np.mean(in_jiangmen(y, x, margin=0.05)) > 0.5:
        raise swapped_error(display)
    others = suggest_for_outside(x, y, crs)
    err = outside_error(display, f"按 {crs.label} 转换后", f"with {crs.label}")
    if others:
        err.zh += f"；按 {', '.join(others[:4])} 则落在江门"
        err.en += f"; with {', '.join(others[:4])} they would fall in Jiangmen"
        err.args = (err.message,)
    raise err


def _check_key(conn, table: str, key_col: str, key: str, display: str) -> dict[str, Any]:
    t = sql.Identifier(*table.split(".", 1))
    k = sql.Identifier(key_col)
    nulls = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(t, k)
                         ).fetchone()[0]
    dups = conn.execute(sql.SQL(
        "SELECT {k}::text, count(*) FROM {t} WHERE {k} IS NOT NULL GROUP BY {k} "
        "HAVING count(*) > 1 ORDER BY count(*) DESC, 1 LIMIT 5").format(k=k, t=t)).fetchall()
    if nulls or dups:
        examples = ", ".join(f"{v!r}×{n}" for v, n in dups)
        raise LoaderError(
            "key_not_unique", f"键字段 {key} 不唯一（重复：{examples or '无'}；空值 {nulls} 个）",
            f"the key field {key} is not unique (duplicates: {examples or 'none'}; "
            f"{nulls} empty)", file=display,
            fix_zh="修正重复/空的键值，或换一个唯一字段作 --key",
            fix_en="fix the duplicate or empty keys, or choose a unique --key")
    return {"field": key, "column": key_col, "duplicates": 0, "nulls": 0}


def _diff(conn, layer: str, table: str, key_col: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT v.table_name, v.version FROM layer l JOIN layer_version v ON v.layer_id = l.id "
        "AND v.version = l.current_version WHERE l.name = %s AND to_regclass(v.table_name) "
        "IS NOT NULL", (layer,)).fetchone()
    if row is None:
        return None
    old, old_version = row
    has_key = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
        "AND NOT attisdropped", (old, key_col)).fetchone()
    if not has_key:
        return {"against_version": old_version, "note": "previous version has no such key"}
    n = sql.Identifier(*table.split(".", 1))
    o = sql.Identifier(*old.split(".", 1))
    k = sql.Identifier(key_col)
    added, removed, changed = conn.execute(sql.SQL(
        "SELECT count(*) FILTER (WHERE o.k IS NULL), count(*) FILTER (WHERE n.k IS NULL), "
        "count(*) FILTER (WHERE n.k IS NOT NULL AND o.k IS NOT NULL AND n.h <> o.h) FROM "
        "(SELECT {k} AS k, md5((to_jsonb(x) - 'fid')::text) AS h FROM {n} x) n FULL JOIN "
        "(SELECT {k} AS k, md5((to_jsonb(y) - 'fid')::text) AS h FROM {o} y) o ON n.k = o.k"
    ).format(k=k, n=n, o=o)).fetchone()
    return {"against_version": old_version, "added": added, "removed": removed,
            "changed": changed}


def format_report(report: dict[str, Any]) -> str:
    """The report as people read it (the JSON form is stored with the version)."""
    if report.get("unchanged"):
        return (f"{report['source']['file']}: 内容未变，未生成新版本（当前第 {report['version']} 版）/ "
                f"unchanged since version {report['version']}: no new version")
    if report.get("target", {}).get("kind") == "raster":
        t, r = report["target"], report["raster"]
        return (f"{'试装载（未发布）/ DRY RUN — nothing published' if report['dry_run'] else '已发布 / published'}: "
                f"{t['layer']} 第 {t['version']} 版 / version {t['version']} (raster COG "
                f"{t['file']}, EPSG:4490)\n  来源 / source:     {report['source']['file']} "
                f"({r['width']}×{r['height']}, {r['bands']} band(s) {r['dtype']}, nodata "
                f"{r['nodata']})\n  坐标系 / CRS:      {report['crs']['crs']}\n  范围 / bbox:       "
                f"{[round(v, 5) for v in report['bbox']]}\n  用时 / time:       "
                f"{report['seconds']} s")
    c = report["counts"]
    q = report["quality"]
    t = report["target"]
    lines = [
        f"{'试装载（未发布）/ DRY RUN — nothing published' if report['dry_run'] else '已发布 / published'}: "
        f"{t['layer']} 第 {t['version']} 版 / version {t['version']} ({t['table']}, "
        f"{t['geometry_type']}, EPSG:4490)",
        f"  来源 / source:     {report['source']['file']} ({report['source']['format']}, "
        f"{report['source']['bytes'] / 1e6:.1f} MB)",
        f"  编码 / encoding:   {report['encoding']['encoding']} — {report['encoding']['reason']}"
        + (f" — e.g. {report['encoding']['sample']!r}" if report["encoding"].get("sample")
           else ""),
        f"  坐标系 / CRS:      {report['crs']['crs']} — {report['crs']['reason']}",
        f"  要素 / features:   read {c['read']:,}, loaded {c['loaded']:,}, repaired "
        f"{c['repaired']:,}, rejected {c['rejected']:,}, empty {c['empty']:,}, outside "
        f"Jiangmen {c['outside']:,}" + (f", Z/M dropped {c['dropped_z'] + c['dropped_m']:,}"
                                        if c["dropped_z"] or c["dropped_m"] else ""),
        f"  质量 / quality:    {q['score']} / 100 (completeness {q['completeness']:.1%}, "
        f"validity {q['geometry_validity']:.1%}, inside extent {q['inside_extent']:.1%}, "
        f"key uniqueness {q['key_uniqueness']:.1%})",
        "  字段 / fields:     " + ", ".join(
            f"{f['column']}({f['label']}:{f['type']})" for f in report["fields"][:20]),
    ]
    if report.get("key"):
        k = report["key"]
        diff = k.get("diff") or {}
        lines.append(f"  键 / key:          {k['field']} unique" + (
            f"; vs version {diff['against_version']}: +{diff.get('added', 0)} "
            f"-{diff.get('removed', 0)} ~{diff.get('changed', 0)}" if diff.get("added")
            is not None else ""))
    for r in report["repairs"][:5]:
        lines.append(f"  修复 / repaired:   feature {r['feature']}: {r['problem']}")
    for w in report["warnings"]:
        lines.append(f"  注意 / warning:    {w}")
    if report.get("catalog"):
        lines.append(f"  目录 / catalog:    {report['catalog']['code']} "
                     f"({report['catalog']['outcome']})")
    lines.append(f"  用时 / time:       {report['seconds']} s "
                 f"({report['features_per_second'] or 0:,} features/s)")
    return "\n".join(lines)
