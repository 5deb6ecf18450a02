"""The stages of one load: open → plan → stream → check → publish.

A :class:`LoadRun` carries one load through them; layers and tables take the same
stages (a table skips the CRS decision and the geometry work, and has its key checked
by row and indexed). Everything from ``open`` on happens in ONE database transaction
(see :mod:`loaders.pipeline`): until ``publish`` commits, readers keep seeing the
previous version, and any refusal rolls everything back.

Several things overlap on two cores: reading (a background thread), geometry/attribute
processing (the loading thread, whole Arrow/shapely arrays per batch), COPY (a
background thread; PostgreSQL parses the rows in its own process) and, for a layer, the
version's region index (``spatial.regionindex.LoadIndex``: computed in a thread of its
own, written on a second connection while PostgreSQL builds the GIST index, committed
right after the load — the one thing outside the load's transaction).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import pyarrow as pa
import shapely
from psycopg.types.json import Jsonb

from layers import registry
from loaders.attributes import AttributePlan, clean_text, convert, plan_attributes
from loaders.copying import CopyWriter, csv_bytes
from loaders.crsdecide import (
    CRSDecision,
    decide_crs,
    outside_error,
    suggest_for_outside,
    swapped_error,
)
from loaders.errors import LoaderError
from loaders.geometry import MULTI_TYPE, GeomOptions, GeomStats, as_geometries, process
from loaders.keys import check_key, key_diff
from loaders.limits import Budget
from loaders.progress import Progress
from loaders.readers import Reader, _empty, open_reader
from loaders.report import attribute_warnings, geometry_warnings, quality
from loaders.source import Source
from spatial.crs import in_jiangmen
from spatial.regionindex import LoadIndex

if TYPE_CHECKING:
    from loaders.pipeline import LoadOptions


def registry_error(exc: registry.RegistryError, display: str) -> LoaderError:
    zh, _, en = str(exc).partition(" / ")
    return LoaderError("registry", zh, en or zh, file=display)


@dataclass
class LoadRun:
    """One load in progress: what each stage found, for the next one."""

    src: Source
    opts: LoadOptions
    conn: psycopg.Connection
    t0: float
    content_hash: str | None
    size: int
    show_progress: bool = False
    reader: Reader | None = None
    bar: Progress | None = None
    writer: CopyWriter | None = None
    warnings: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    mark: float = 0.0
    existing: dict[str, Any] | None = None
    plan: AttributePlan | None = None
    crs: CRSDecision | None = None
    coords: np.ndarray | None = None
    gopts: GeomOptions | None = None
    stats: GeomStats = field(default_factory=GeomStats)
    key_col: str | None = None
    sensitive: dict[str, str] = field(default_factory=dict)
    version: int = 0
    table: str | None = None
    family: str | None = None
    loaded: int = 0
    text_fixed: int = 0
    pending: list[tuple[pa.Table, Any]] = field(default_factory=list)
    batches: Any = None
    budget: Budget | None = None
    regions: LoadIndex | None = None      # the version's region index, computed beside
    region_index: bool = False            # … and written with it

    @property
    def is_table(self) -> bool:
        return self.opts.kind == "table"

    @property
    def display(self) -> str:
        return self.src.display

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timing[name] = round(self.timing.get(name, 0.0) + now - self.mark, 3)
        self.mark = now

    # -- open: the reader, the lock, the owner, "unchanged?" ------------------------------
    def open(self) -> dict[str, Any] | None:
        """Open the reader and lock the resource; returns the 'unchanged' answer when
        ``skip_unchanged`` finds the current version made from the same content."""
        opts = self.opts
        self.budget = Budget(self.display, t0=self.t0, cancelled=opts.cancelled)
        self.reader = open_reader(self.src, encoding=opts.encoding, sheet=opts.sheet,
                                  source_layer=opts.source_layer, kind=opts.kind)
        self.budget.check(self.reader.total or 0)  # a count GDAL knows: before reading
        self.warnings += self.reader.notes
        self.timing["open"] = time.monotonic() - self.t0
        self.mark = time.monotonic()
        if self.show_progress:
            self.bar = Progress(f"装载 / loading {Path(self.display).name}", self.reader.total)
        conn = self.conn
        registry.lock_layer(conn, opts.layer)
        try:
            registry.department_id(conn, opts.dept)
            existing = self.existing = registry.get_layer(conn, opts.layer)
            if existing is not None and existing["owner_code"] != opts.dept:
                raise registry.RegistryError(
                    f"图层 {opts.layer} 属于部门 {existing['owner_code']}，不能以部门 {opts.dept} 的名义装载 / "
                    f"layer {opts.layer!r} belongs to department {existing['owner_code']!r}, "
                    f"not {opts.dept!r}: choose another layer name")
        except registry.RegistryError as exc:
            raise registry_error(exc, self.display) from exc
        if opts.skip_unchanged and existing is not None and existing["current_version"]:
            row = conn.execute(
                "SELECT v.report->>'content_hash' FROM layer_version v WHERE v.layer_id = %s "
                "AND v.version = %s", (existing["id"], existing["current_version"])).fetchone()
            if row and row[0] == self.content_hash:
                conn.rollback()
                return {"layer": opts.layer, "unchanged": True,
                        "version": existing["current_version"],
                        "content_hash": self.content_hash, "source": {"file": self.display}}
        return None

    # -- plan: first batch → CRS (layers), columns, key, sensitive fields -----------------
    def plan_load(self) -> None:
        reader, opts, display = self.reader, self.opts, self.display
        self.batches = iter(reader.batches)
        try:
            first_attrs, first_geoms = next(self.batches)
        except StopIteration:
            first_attrs, first_geoms = None, None
        if first_attrs is None:
            raise _empty(self.src)
        first_attrs, self.text_fixed = clean_text(first_attrs)
        if not self.is_table:
            first_geoms = as_geometries(first_geoms if first_geoms is not None
                                        else np.empty(0, dtype=object))
            self._decide_crs(first_geoms)
        schema = reader.schema if reader.schema is not None else first_attrs.schema
        self.plan = plan_attributes(schema, first_attrs, set(), reader.text_inference)
        self.warnings += self.plan.warnings
        fields = ", ".join(f.source for f in self.plan.fields)
        if opts.key:
            self.key_col = self.plan.column_for(opts.key)
            if self.key_col is None:
                raise LoaderError("no_key_field", f"没有键字段 {opts.key}",
                                  f"there is no key field {opts.key!r}", file=display,
                                  fix_zh=f"可用字段：{fields}", fix_en=f"fields are: {fields}")
        for fname, kind in opts.sensitive.items():
            col = self.plan.column_for(fname)
            if col is None:
                raise LoaderError("no_such_field", f"没有敏感字段 {fname}",
                                  f"there is no field {fname!r} to mark sensitive",
                                  file=display, fix_zh=f"检查 --sensitive 的字段名（可用：{fields}）",
                                  fix_en=f"check the --sensitive field names (fields are: "
                                  f"{fields})")
            self.sensitive[col] = kind
        self.version = registry.next_version(self.conn, opts.layer)
        self.pending = [(first_attrs, first_geoms)]
        if self.is_table:  # no geometry to decide the table's type: make it now
            self._create_table(None)
        else:
            self.regions = LoadIndex(self.conn)

    def _decide_crs(self, first_geoms: np.ndarray) -> None:
        opts, reader = self.opts, self.reader
        sample = first_geoms[~(shapely.is_missing(first_geoms) | shapely.is_empty(first_geoms))]
        if len(sample) == 0 and reader.total in (None, 0):
            raise _empty(self.src)
        step = max(len(sample) // 5000, 1)
        coords = shapely.get_coordinates(sample[::step])
        if opts.swap_xy:
            coords = coords[:, ::-1]
        self.coords = coords
        self.crs = decide_crs(coords[:, 0], coords[:, 1], self.display, opts.src_crs,
                              reader.declared_crs)
        self.warnings += self.crs.warnings
        self.gopts = GeomOptions(crs=self.crs.input, display=self.display, strict=opts.strict,
                                 force_2d=opts.force_2d, swap_xy=opts.swap_xy)

    def _create_table(self, geometry_type: str | None) -> None:
        try:
            self.table = registry.create_data_table(
                self.conn, self.opts.layer, self.version, geometry_type, self.plan.columns,
                title=self.opts.title or self.opts.layer, with_index=False)
        except registry.RegistryError as exc:
            raise registry_error(exc, self.display) from exc
        self.writer = CopyWriter(self.conn, self.table, [
            "fid", *([] if geometry_type is None else ["geom"]),
            *[c.name for c in self.plan.columns]])

    # -- stream: batches → geometry / attributes → COPY -----------------------------------
    def _feed(self):
        while self.pending:
            yield self.pending.pop()
        for attrs, geoms in self.batches:
            attrs, n = clean_text(attrs)
            self.text_fixed += n
            yield attrs, geoms

    def stream(self) -> None:
        self.lap("prepare")
        offset = 0
        for attrs, geoms in self._feed():
            self.lap("read_wait")
            n_batch = len(attrs)
            self.budget.check(offset + n_batch)  # wall-clock, features, server stopping
            if self.is_table:
                self.stats.read += n_batch
                kept, ewkb, keep_all = np.arange(n_batch), None, True
            else:
                keep, ewkb, self.family, kept_geoms = process(
                    geoms, self.family, self.gopts, self.stats, offset)
                del geoms
                self.lap("geometry")
                if self.table is None and self.family:
                    # the first batch with geometry decides the table's type; check the
                    # extent now, before anything is written, so a wrong CRS fails fast
                    stats = self.stats
                    if (not self.opts.allow_outside and stats.read and stats.outside >
                            0.5 * max(stats.read - stats.empty - stats.rejected, 1)):
                        self.refuse_outside()
                    self._create_table(MULTI_TYPE[self.family])
                kept = np.flatnonzero(keep)
                keep_all = len(kept) == len(keep)
                if self.regions is not None:
                    self.regions.put(offset + kept + 1, kept_geoms, self.family)
                del kept_geoms
            if len(kept):
                sub = attrs if keep_all else attrs.take(pa.array(kept))
                cols = convert(self.plan, sub, self.display, offset)
                chunk = csv_bytes(offset + kept + 1, ewkb, cols)
                self.lap("attributes")
                self.writer.put(chunk)
                self.lap("copy_wait")
                self.loaded += len(kept)
            offset += n_batch
            if self.bar:
                self.bar.update(n_batch)
        if self.writer is not None:
            if self.bar:
                self.bar.set_stage("写入 / COPY")
            self.writer.close()
            self.writer = None
        self.lap("copy_wait")

    def refuse_outside(self) -> None:
        crs, coords = self.crs.input, self.coords
        x, y = coords[:, 0], coords[:, 1]
        if crs.kind == "crs" and crs.crs is not None and crs.crs.is_geographic and \
                np.mean(in_jiangmen(y, x, margin=0.05)) > 0.5:
            raise swapped_error(self.display)
        others = suggest_for_outside(x, y, crs)
        err = outside_error(self.display, f"按 {crs.label} 转换后", f"with {crs.label}")
        if others:
            err.zh += f"；按 {', '.join(others[:4])} 则落在江门"
            err.en += f"; with {', '.join(others[:4])} they would fall in Jiangmen"
            err.args = (err.message,)
        raise err

    # -- check: counts, extent, key; index ---------------------------------------------
    def check(self) -> dict[str, Any] | None:
        """Refuse what cannot be published; index; returns the key report."""
        stats, display = self.stats, self.display
        if self.is_table and self.loaded == 0:
            raise LoaderError("empty_layer", "数据表中没有任何记录", "the table has no records",
                              file=display, fix_zh="确认导出时包含了数据行",
                              fix_en="check the export holds the records")
        if self.loaded == 0 or self.table is None:
            raise LoaderError("empty_layer", f"没有可装载的要素（读到 {stats.read} 个，空几何 "
                              f"{stats.empty} 个，无法修复 {stats.rejected} 个）",
                              f"no loadable features ({stats.read} read, {stats.empty} empty, "
                              f"{stats.rejected} unrepairable)", file=display,
                              fix_zh="检查数据内容", fix_en="check the data")
        if not self.is_table:
            if not self.opts.allow_outside and stats.outside > 0.5 * self.loaded:
                self.refuse_outside()
            self.warnings += geometry_warnings(stats)
        self.warnings += attribute_warnings(self.plan, self.text_fixed, self.reader.encoding)
        if self.bar:
            self.bar.set_stage("索引 / indexing")
        self.lap("checks")
        key = None
        if self.key_col:  # bad keys are refused (rows named) before the unique index;
            # every declared key, a table's or a layer's, is one probe for online query
            key = check_key(self.conn, self.table, self.key_col, self.opts.key, display,
                            row_offset=self.reader.row_offset, is_table=self.is_table)
            registry.index_key(self.conn, self.table, self.key_col)
        if self.regions is not None:  # written on its own connection meanwhile
            self.regions.start_write(self.conn, self.table)
        registry.finish_data_table(self.conn, self.table)
        self.lap("index")
        if key is None:
            return None
        if self.opts.dry_run:  # a real load's diff is recorded at publish (layers.changes)
            key["diff"] = key_diff(self.conn, self.opts.layer, self.table, self.key_col)
        return key

    def report(self, key_report: dict[str, Any] | None) -> dict[str, Any]:
        src, reader, stats, opts = self.src, self.reader, self.stats, self.opts
        elapsed = time.monotonic() - self.t0
        common = {
            "source": {"file": self.display, "format": src.fmt, "layer": reader.source_layer,
                       "bytes": self.size},
            "content_hash": self.content_hash,
            "encoding": reader.encoding.as_dict(),
        }
        tail = {
            "fields": [f.as_dict() for f in self.plan.fields if f.how != "drop"],
            "key": key_report,
            "sensitive_fields": self.sensitive,
            "quality": quality(stats, self.plan, self.loaded, 0,
                               [] if self.is_table or not self.key_col else [self.key_col],
                               is_table=self.is_table),
            "warnings": self.warnings,
            "options": {k: v for k, v in asdict(opts).items()
                        if v not in (None, False, {}) and k != "cancelled"},
            "dry_run": opts.dry_run,
            "seconds": round(elapsed, 2),
            "timing": self.timing,
        }
        rate = round(stats.read / elapsed) if elapsed > 0 else None
        if self.is_table:
            return {**common, "geometry": None,
                    "target": {"layer": opts.layer, "version": self.version,
                               "table": self.table, "kind": "table", "geometry_type": None,
                               "key_field": self.key_col},
                    "counts": {"read": stats.read, "loaded": self.loaded},
                    **tail, "records_per_second": rate}
        return {
            **common, "crs": self.crs.as_dict(),
            "target": {"layer": opts.layer, "version": self.version, "table": self.table,
                       "geometry_type": MULTI_TYPE[self.family], "srid": 4490},
            "counts": {"read": stats.read, "loaded": self.loaded, "repaired": stats.repaired,
                       "rejected": stats.rejected + stats.unreadable, "empty": stats.empty,
                       "outside": stats.outside, "dropped_z": stats.dropped_z,
                       "dropped_m": stats.dropped_m},
            "bbox": stats.bbox, "repairs": stats.repairs, "rejects": stats.rejects,
            **tail, "features_per_second": rate,
        }

    # -- publish: the version, current, epoch — one commit ------------------------------
    def publish(self, report: dict[str, Any]) -> dict[str, Any]:
        opts = self.opts
        if self.bar:
            self.bar.set_stage("发布 / publishing")
        geometry = {"kind": "table", "geometry_type": None, "source_crs": None} \
            if self.is_table else {"kind": "vector", "geometry_type": MULTI_TYPE[self.family],
                                   "source_crs": self.crs.input.label}
        try:
            result = registry.publish(
                self.conn, layer=opts.layer, version=self.version, table_name=self.table,
                feature_count=self.loaded, report=report, source_name=self.display,
                loaded_by=opts.loaded_by, title=opts.title or opts.layer, dept=opts.dept,
                theme=opts.theme, sharing_class=opts.sharing, legal_basis=opts.legal_basis,
                description=opts.description, update_cycle=opts.update_cycle, **geometry,
                source_encoding=self.reader.encoding.label, key_field=self.key_col,
                sensitive_fields=self.sensitive, field_labels=self.plan.labels)
        except registry.RegistryError as exc:
            raise registry_error(exc, self.display) from exc
        step = result["step"]
        if report.get("key") is not None and step.get("against_version") is not None:
            report["key"]["diff"] = {k: step[k] for k in
                                     ("against_version", "added", "removed", "changed")
                                     if k in step} if "added" in step else {
                "against_version": step["against_version"],
                "note": "previous version has no such key"}
            self.conn.execute(
                "UPDATE layer_version v SET report = jsonb_set(v.report, '{key,diff}', %s) "
                "FROM layer l WHERE l.id = v.layer_id AND l.name = %s AND v.version = %s",
                (Jsonb(report["key"]["diff"]), opts.layer, self.version))
        self.lap("publish")
        ready = self.regions is not None and self.regions.ready()
        self.lap("region_index")                       # what its writing did not hide
        self.conn.commit()
        if ready:
            self.region_index = self.regions.commit()
        self.lap("publish")
        return result

    def close(self) -> None:
        """Stop the background threads and the progress bar (after success or error)."""
        if self.writer is not None:
            self.writer.abandon()
            self.writer = None
        if self.regions is not None:
            self.regions.close()
            self.regions = None
        close = getattr(self.reader.batches, "close", None) if self.reader else None
        if close is not None:
            close()
        if self.bar:
            self.bar.close()
            self.bar = None
