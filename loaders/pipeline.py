"""One load, end to end: source → batches → staging table → atomic publish → report.

The staging table is the new version's own table (``layer_data.<resource>_v<N>``, made by
:func:`layers.registry.create_data_table`). It is created, filled by COPY, indexed,
checked, and published — the ``layer_version`` row, ``layer.current_version`` and the
registry epoch — all inside ONE database transaction. Until it commits, readers keep
seeing the previous version; if the load is killed at any moment (even SIGKILL) the
server rolls the transaction back and nothing of it remains. ``--dry-run`` runs the
very same path and rolls back at the end.

The work is in named stages (:mod:`loaders.stages`): open → plan → stream → check →
publish. A *table* (``kind="table"``: records without geometry, one declared key
column) goes through the same stages as a layer, minus the CRS and geometry work.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from layers import registry
from loaders.errors import LoaderError
from loaders.report import format_report
from loaders.source import Source, open_source
from loaders.stages import LoadRun, registry_error

__all__ = ["LoadOptions", "catalog_sync", "check_options", "format_report", "load",
           "rollback"]

THEME_RE = r"^[a-z][a-z0-9_]{0,31}$"
HASH_LIMIT = 256 * 1024 ** 2  # hash sources up to this size (or always with skip_unchanged)
LOAD_KINDS = ("vector", "table")  # what --kind may ask for (rasters are known by the file)


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
    kind: str | None = None        # "table": records without geometry (needs ``key``)
    sheet: str | None = None       # XLSX: the sheet (default: the first)
    # asked between batches: True stops the load (``load_cancelled``, nothing changed)
    cancelled: Callable[[], bool] | None = None


def check_options(opts: LoadOptions, display: str) -> None:
    """Refuse bad options before reading a byte of data."""
    try:
        registry.check_layer_name(opts.layer)
        registry.check_sharing(opts.sharing, opts.legal_basis)
    except registry.RegistryError as exc:
        raise registry_error(exc, display) from exc
    if not re.match(THEME_RE, opts.theme or ""):
        raise LoaderError("bad_option", f"主题无效：{opts.theme!r}", f"invalid theme "
                          f"{opts.theme!r}", file=display,
                          fix_zh="用小写英文，如 land、water、transport、civil_defence",
                          fix_en="use a lowercase word such as land, water, transport, "
                          "civil_defence")
    from layers.masking import MASK_KINDS
    from layers.vocab import UPDATE_CYCLES

    if opts.update_cycle not in UPDATE_CYCLES:
        raise LoaderError("bad_option", f"更新周期无效：{opts.update_cycle!r}",
                          f"invalid update cycle {opts.update_cycle!r}", file=display,
                          fix_zh=f"可用：{', '.join(UPDATE_CYCLES)}",
                          fix_en=f"use one of {', '.join(UPDATE_CYCLES)}")
    if opts.kind is not None and opts.kind not in LOAD_KINDS:
        raise LoaderError("bad_option", f"资源类型无效：{opts.kind!r}", f"invalid --kind "
                          f"{opts.kind!r}", file=display, fix_zh=f"可用：{', '.join(LOAD_KINDS)}",
                          fix_en=f"use one of {', '.join(LOAD_KINDS)}")
    if opts.kind == "table" and not (opts.key or "").strip():
        raise LoaderError("no_key_option", "数据表必须声明键字段", "a table needs its key column",
                          file=display, fix_zh="用 --key 字段 指明唯一键（如 统一社会信用代码）",
                          fix_en="name the unique key with --key FIELD (e.g. the USCC column)")
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
    # options added later hash only when set, so existing layers keep their hashes
    relevant = {k: v for k, v in asdict(opts).items()
                if k not in ("dry_run", "loaded_by", "skip_unchanged", "cancelled") and
                not (k in ("kind", "sheet") and v is None)}
    h.update(json.dumps(relevant, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


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
    with open_source(path, display, kind=opts.kind) as src:
        if src.is_raster:
            if opts.kind == "table":
                raise LoaderError("has_geometry", "栅格数据不是数据表", "a raster is not a table",
                                  file=src.display, fix_zh="去掉 --kind table",
                                  fix_en="load it without --kind table")
            from loaders.raster import load_raster

            return load_raster(src, opts, dsn=dsn or database_url())
        return _run(src, opts, dsn or database_url(), t0, progress)


def _run(src: Source, opts: LoadOptions, dsn: str, t0: float,
         show_progress: bool) -> dict[str, Any]:
    """The stages, in one transaction; errors leave the database as it was."""
    size = sum(p.stat().st_size for p in src.files if p.is_file())
    content_hash = _content_hash(src, opts) if (opts.skip_unchanged or size <= HASH_LIMIT) \
        else None
    conn = psycopg.connect(dsn, autocommit=False)
    run = LoadRun(src=src, opts=opts, conn=conn, t0=t0, content_hash=content_hash,
                  size=size, show_progress=show_progress)
    try:
        unchanged = run.open()
        if unchanged is not None:
            return unchanged
        run.plan_load()
        run.stream()
        key_report = run.check()
        report = run.report(key_report)
        if opts.dry_run:
            conn.rollback()
            report["published"] = False
            return report
        result = run.publish(report)
        report["published"] = True
        catalog_sync(conn, opts.layer, report)
        if run.region_index:  # computed beside the load, published with it
            report["region_index"] = "built"
        elif not run.is_table:  # boundaries changed meanwhile: a worker builds it
            from spatial.tasks import defer_region_index

            report["region_index"] = "queued" if defer_region_index(run.table) else \
                "on first use"
        report["epoch"] = result["epoch"]
        report["seconds"] = round(time.monotonic() - t0, 2)
        return report
    except psycopg.DataError as exc:
        # a value PostgreSQL refuses (bad bytes, out of range …): name it, change nothing
        detail = str(exc).strip().splitlines()[0]
        context = (exc.diag.context or "").strip().splitlines()[0:1]
        raise LoaderError(
            "data_error", f"数据库拒收了一个属性值（{detail}；{' '.join(context)}）",
            f"the database refused a value ({detail}; {' '.join(context)})", file=src.display,
            fix_zh="修正该值或用 --encoding 指明正确编码后重试",
            fix_en="correct that value (or the --encoding) and load again") from exc
    except psycopg.errors.ProgramLimitExceeded as exc:
        # a record PostgreSQL cannot store (``row is too big``: hundreds of number fields
        # of one feature over the 8 kB page) — under the property limit, still too wide
        detail = str(exc).strip().splitlines()[0]
        raise LoaderError(
            "too_wide", f"记录过宽，数据库无法存储（{detail}）", f"the records are too wide for "
            f"the database ({detail})", file=src.display,
            fix_zh="只导出需要的字段，或拆成几个图层/数据表",
            fix_en="export only the fields needed, or split into several layers or tables"
        ) from exc
    finally:
        run.close()
        conn.close()  # an uncommitted transaction is rolled back by the server


def catalog_sync(conn: psycopg.Connection, layer: str, report: dict[str, Any]) -> None:
    """Register the published resource (layer or table) in the catalog (政务信息资源目录).
    Best effort: it is already published; catalog readers re-sync on the registry epoch
    anyway."""
    try:
        from catalog.sync import sync_layer

        conn.autocommit = True
        res = sync_layer(conn, layer)
        report["catalog"] = {"code": res.get("code"), "outcome": res.get("outcome")}
    except Exception as exc:  # noqa: BLE001 - never undo a published load for the catalog
        report["warnings"].append(f"目录登记将稍后自动完成（{type(exc).__name__}）/ catalog "
                                  f"registration deferred to the next sync ({exc})")


def rollback(conn: psycopg.Connection, name: str, to_version: int) -> dict[str, Any]:
    """``layers.registry.rollback`` and then the resource's catalog entry (fields, format,
    extent) brought to the restored version at once — here, not in ``layers``, which the
    catalog builds on. Best effort, like a load's: catalog readers re-sync on the epoch."""
    from layers.registry import rollback as registry_rollback

    result = registry_rollback(conn, name, to_version)
    try:
        from catalog.sync import sync_layer

        result["catalog"] = sync_layer(conn, name).get("outcome")
    except Exception:  # noqa: BLE001 - the rollback is done; the catalog follows later
        result["catalog"] = None
    return result
