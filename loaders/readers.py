"""Readers: a dataset as a stream of (attributes, geometries) batches.

GDAL formats go through pyogrio's Arrow stream (``open_arrow``): GDAL fills Arrow
batches in C, geometries arrive as WKB arrays that shapely parses in one call. CSV goes
through pyarrow's streaming CSV reader (all columns as text first, so codes and phone
numbers keep their leading zeros), geometry from lon/lat, x/y or WKT columns. XLSX
sheets come from :mod:`loaders.xlsx`. A *table* (``kind="table"``: records without
geometry — a CSV, an XLSX sheet, a DBF on its own, a GeoPackage attribute table) yields
``None`` for the geometries. Memory stays flat: one or two batches are alive at a time, whatever the file size.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely

from jmgeo.settings import get_settings
from loaders.encoding import EncodingDecision, decide_dbf, decide_text_file
from loaders.errors import LoaderError
from loaders.source import Source

# pyogrio warns that M is "converted"; the WKB keeps it and loaders.geometry refuses or
# drops it with a proper message, so the warning would only be a second, confusing line
warnings.filterwarnings("ignore", message=r"Measured \(M\) geometry types are not supported")

LON_NAMES = ("lon", "lng", "long", "longitude", "经度", "x", "point_x", "xcoord", "x坐标",
             "东经")
LAT_NAMES = ("lat", "latitude", "纬度", "y", "point_y", "ycoord", "y坐标", "北纬")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "wkt_geom")


@dataclass
class Reader:
    """What the pipeline needs to know before reading, and the batches."""

    schema: pa.Schema | None              # attribute columns (None: the first batch's)
    total: int | None                     # feature count when the format knows it
    declared_crs: str | None              # the file's CRS (WKT / EPSG:…), None when absent
    encoding: EncodingDecision
    geometry_type: str | None
    batches: Iterator[tuple[pa.Table, np.ndarray | pa.Array | None]]  # geoms, WKB or None
    source_layer: str | None = None
    text_inference: bool = False          # CSV, XLSX: infer numbers from text
    notes: list[str] = field(default_factory=list)
    # records of a table: the source row of record N (1-based) is N + row_offset — the
    # CSV line / sheet row a person finds in the file (1 for a header row, 0 for a DBF)
    row_offset: int = 0


def prefetch(it: Iterator, depth: int = 1) -> Iterator:
    """Run ``it`` in a background thread (GDAL reading overlaps our processing)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run():
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    t = threading.Thread(target=run, daemon=True, name="jmgeo-read")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def list_layers(src: Source) -> list[tuple[str, str]]:
    try:
        return [(str(n), str(t)) for n, t in pyogrio.list_layers(src.path)]
    except Exception as exc:  # noqa: BLE001 - GDAL's errors are varied
        raise _gdal_error(src, exc) from exc


def _gdal_error(src: Source, exc: Exception) -> LoaderError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LoaderError("unreadable", f"GDAL 无法读取该文件（{msg}）",
                       f"GDAL cannot read the file ({msg})", file=src.display,
                       fix_zh="确认文件完整、格式正确，必要时从原系统重新导出",
                       fix_en="check the file is complete and of the stated format; export "
                       "it again if needed")


def no_geometry_error(src: Source, what_zh: str, what_en: str) -> LoaderError:
    """A file without geometry loaded as a layer: say it can be loaded as a table."""
    return LoaderError("no_geometry", f"{what_zh}（只是属性表）", f"{what_en} (attribute table "
                       "only)", file=src.display,
                       fix_zh="作为数据表装载：加 --kind table --key 键字段（如 统一社会信用代码）；"
                       "作为图层则须提供带几何的数据",
                       fix_en="load it as a table with --kind table --key FIELD (e.g. the "
                       "USCC column); a layer needs data with geometry")


def _empty(src: Source) -> LoaderError:
    return LoaderError("empty_layer", "图层中没有任何要素", "the layer has no features",
                       file=src.display, fix_zh="确认导出时选中了要素，或换用正确的文件",
                       fix_en="check the export selected the features, or use the right file")


def open_reader(src: Source, *, encoding: str | None = None, source_layer: str | None = None,
                sheet: str | None = None, kind: str | None = None,
                batch_size: int | None = None) -> Reader:
    """The reader for ``src``; ``kind="table"`` reads records without geometry."""
    batch_size = batch_size or get_settings().load_batch
    table = kind == "table"
    if src.fmt == "xlsx":
        from loaders.xlsx import xlsx_reader

        if not table:
            raise no_geometry_error(src, "XLSX 电子表格没有几何", "an XLSX workbook has no "
                                    "geometry")
        return xlsx_reader(src, sheet, batch_size)
    if src.fmt == "csv":
        return _csv_reader(src, encoding, batch_size, table)
    return _gdal_reader(src, encoding, source_layer, batch_size, table)


def _choose_layer(src: Source, source_layer: str | None, table: bool = False) -> str | None:
    if src.fmt in ("shapefile", "dbf"):
        return None
    layers = list_layers(src)
    names = [n for n, _ in layers]
    if source_layer:
        if source_layer not in names:
            raise LoaderError("no_such_layer", f"文件中没有图层 {source_layer}，现有：{', '.join(names)}",
                              f"there is no layer {source_layer!r}; it has: "
                              f"{', '.join(names)}", file=src.display,
                              fix_zh="用 --source-layer 选择其中之一",
                              fix_en="choose one with --source-layer")
        return source_layer
    spatial_layers = [n for n, t in layers if t and t not in ("None", "")]
    if table:  # a table is one of the attribute (non-spatial) tables
        spatial_layers = [n for n in names if n not in spatial_layers] or names
    spatial_layers = spatial_layers or names
    if len(spatial_layers) > 1:
        raise LoaderError("several_layers", f"文件包含多个图层：{', '.join(spatial_layers)}",
                          f"the file holds several layers: {', '.join(spatial_layers)}",
                          file=src.display, fix_zh="用 --source-layer 选择要装载的图层",
                          fix_en="choose one with --source-layer (see --list-layers)")
    return spatial_layers[0] if spatial_layers else None


def _gdal_reader(src: Source, option: str | None, source_layer: str | None,
                 batch_size: int, table: bool = False) -> Reader:
    layer = _choose_layer(src, source_layer, table)
    if src.fmt in ("shapefile", "dbf"):
        dbf = src.path if src.fmt == "dbf" else src.sibling(".dbf")
        enc = decide_dbf(dbf, src.display, option=option, cpg=src.sibling(".cpg"))
        _check_field_names(dbf, enc, src)
    elif option:
        from loaders.encoding import normalise

        enc = EncodingDecision(normalise(option) or option, option, "option",
                               f"按 --encoding 使用 {option} / {option} as --encoding says")
    else:
        enc = EncodingDecision("UTF-8", "UTF-8", "format",
                               f"{src.fmt} 格式规定 UTF-8 / the {src.fmt} format is UTF-8 "
                               "by definition")
    kw = {"layer": layer} if layer is not None else {}
    if src.fmt in ("shapefile", "dbf") or option:
        kw["encoding"] = enc.gdal
    try:
        info = pyogrio.read_info(src.path, **kw)
    except Exception as exc:  # noqa: BLE001
        raise _gdal_error(src, exc) from exc
    check_unique_fields([str(f) for f in info.get("fields", [])], src)
    check_field_count(len(info.get("fields", [])), src)
    total = info.get("features")
    if total == 0:
        raise _empty(src)
    gtype = info.get("geometry_type")
    if gtype in (None, "None"):
        gtype = None
        if not table:
            raise no_geometry_error(src, "图层没有几何字段", "the layer has no geometry column")
    elif table:
        raise LoaderError(
            "has_geometry", f"{layer or src.path.name} 带有几何（{gtype}），不是数据表",
            f"{layer or src.path.name} has geometry ({gtype}): it is a layer, not a table",
            file=src.display, fix_zh="去掉 --kind table 作为图层装载，或用 --source-layer 选择属性表",
            fix_en="load it as a layer (without --kind table), or pick an attribute table "
            "with --source-layer")
    declared = info.get("crs")

    fast = _bulk_dbf(src, kw, enc, total) if src.fmt in ("shapefile", "dbf") else None

    def batches() -> Iterator[tuple[pa.Table, np.ndarray]]:
        if fast is not None:
            yield from _bulk_batches(src, kw, fast, batch_size, table)
            return
        try:
            with pyogrio.open_arrow(src.path, batch_size=batch_size, use_pyarrow=True,
                                    **kw) as (meta, reader):
                gcol = meta.get("geometry_name") or "wkb_geometry"
                fidcol = meta.get("fid_column")
                for batch in reader:
                    names = batch.schema.names
                    keep = [i for i, n in enumerate(names) if n not in (gcol, fidcol)]
                    # WKB travels to the processing thread; GEOS objects are made there, so
                    # only one batch of them is alive at a time
                    yield (pa.Table.from_batches([batch.select(keep)]),
                           None if table else batch.column(gcol))
        except LoaderError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _gdal_error(src, exc) from exc

    # the attribute schema comes with the first batch (opening big GeoJSON twice is slow)
    return Reader(schema=None, total=total, declared_crs=declared, encoding=enc,
                  geometry_type=gtype, batches=prefetch(batches()), source_layer=layer)


def _bulk_dbf(src: Source, kw: dict, enc: EncodingDecision, total: int | None):
    """The DBF's attributes decoded in bulk (:mod:`loaders.dbf`), or None: GDAL reads
    them feature by feature as for any other format."""
    if not get_settings().load_bulk_dbf:
        return None
    from loaders.dbf import open_dbf

    def gdal_records(raw_index: int, k: int) -> pa.Table:
        # the batch the bulk decoder will not vouch for, read by GDAL itself (on a DBF,
        # skip_features is the raw record index; deleted records are skipped after it)
        return pyogrio.read_arrow(src.path, skip_features=raw_index, max_features=k,
                                  read_geometry=False, **kw)[1]

    try:
        schema = pyogrio.read_arrow(src.path, max_features=1, read_geometry=False,
                                    **kw)[1].schema
    except Exception as exc:  # noqa: BLE001
        raise _gdal_error(src, exc) from exc
    dbf = src.path if src.fmt == "dbf" else src.sibling(".dbf")
    return open_dbf(dbf, schema, enc.codec, total, gdal_records)


def _bulk_batches(src: Source, kw: dict, dbf, batch_size: int,
                  table: bool) -> Iterator[tuple[pa.Table, pa.Array | None]]:
    """GDAL reads the geometries alone (every field ignored: it never touches the DBF's
    text); the bulk decoder gives the same records' attributes."""
    try:
        if table:
            while (attrs := dbf.take(batch_size)).num_rows:
                yield attrs, None
            return
        with pyogrio.open_arrow(src.path, batch_size=batch_size, use_pyarrow=True,
                                columns=[], **kw) as (meta, reader):
            gcol = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                attrs = dbf.take(batch.num_rows)
                if attrs.num_rows != batch.num_rows:
                    raise LoaderError(
                        "dbf_mismatch", "DBF 记录数少于 SHP 中的要素数",
                        "the DBF holds fewer records than the SHP has features",
                        file=src.display, fix_zh="从原系统重新导出完整的 Shapefile（.shp/.shx/.dbf）",
                        fix_en="export the whole Shapefile (.shp/.shx/.dbf) again")
                yield attrs, batch.column(gcol)
    except LoaderError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _gdal_error(src, exc) from exc
    finally:
        dbf.close()


def _check_field_names(dbf, enc: EncodingDecision, src: Source) -> None:
    """DBF field names are 10 bytes: UTF-8 Chinese names longer than 3 characters get cut
    in the middle of a character, which GDAL cannot read back."""
    from loaders.dbf import read_header

    for i, fld in enumerate(read_header(dbf).fields):
        raw = fld.name
        try:
            raw.decode(enc.codec)
        except UnicodeDecodeError:
            shown = raw.decode(enc.codec, errors="replace")
            raise LoaderError(
                "bad_field_name", f"字段名 {shown!r} 在第 {i + 1} 列被截断在半个汉字处"
                f"（DBF 字段名最多10字节，{enc.label} 汉字占多个字节）",
                f"field name {shown!r} (column {i + 1}) is cut in the middle of a "
                f"character (DBF field names hold 10 bytes; {enc.label} Chinese characters "
                "take several)", file=src.display,
                fix_zh="把字段名改短（UTF-8 不超过3个汉字），或改用 GeoPackage 导出",
                fix_en="shorten the field names (at most 3 Chinese characters in UTF-8) or "
                "export as GeoPackage") from None


def check_field_count(count: int, src: Source) -> None:
    """More properties than ``load_max_properties`` (a GeoJSON or CSV with thousands of
    columns): refused before reading, not a PostgreSQL ``TooManyColumns`` (internal
    error) after the file has been read."""
    limit = get_settings().load_max_properties
    if count > limit:
        raise LoaderError(
            "too_many_properties", f"属性字段过多：{count} 个，上限 {limit} 个",
            f"too many properties: {count} fields, the limit is {limit}", file=src.display,
            fix_zh="只导出需要的字段（或拆成几个图层/数据表）；确需更多时由管理员调高 "
            "JMGEO_LOAD_MAX_PROPERTIES（PostgreSQL 表最多 1600 列）",
            fix_en="export only the fields needed (or split into several layers or tables); "
            "an administrator may raise JMGEO_LOAD_MAX_PROPERTIES (PostgreSQL tables hold "
            "at most 1600 columns)")


def check_unique_fields(names: list[str], src: Source) -> None:
    """Two columns of one name (``name,name`` in a CSV header, a DBF written by a tool
    that does not check) cannot both become fields: refused naming them, before Arrow
    would fail with ``Field "name" exists 2 times`` (an internal error)."""
    seen: dict[str, str] = {}
    dupes = []
    for name in names:
        key = name.strip().casefold()
        if key in seen and name not in dupes:
            dupes.append(name)
        seen.setdefault(key, name)
    if dupes:
        shown = ", ".join(dupes[:10])
        raise LoaderError(
            "duplicate_field", f"字段名重复：{shown}", f"duplicate field names: {shown}",
            file=src.display, fix_zh="在源数据中给重复的列改名，使每个字段名唯一（不区分大小写）",
            fix_en="rename the repeated columns in the source so that every field name is "
            "unique (case-insensitively)")


def _find(names: list[str], wanted: tuple[str, ...]) -> str | None:
    low = {n.strip().lower(): n for n in names}
    for w in wanted:
        if w in low:
            return low[w]
    return None


def _csv_reader(src: Source, option: str | None, batch_size: int,
                table: bool = False) -> Reader:
    import pyarrow.csv as pacsv

    enc = decide_text_file(src.path, src.display, option)
    with open(src.path, "rb") as fh:
        head = fh.read(65536)
    text = head.decode(enc.codec, errors="replace").lstrip("\ufeff")
    first_line = text.splitlines()[0] if text else ""
    try:
        dialect = csv.Sniffer().sniff(first_line, delimiters=",;\t|")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    names = next(csv.reader(io.StringIO(first_line), delimiter=delim), [])
    names = [n.strip() for n in names]
    if not names or len(text.splitlines()) < 2:
        raise _empty(src)
    check_unique_fields(names, src)
    # a table keeps every column, coordinates included, as attributes
    lon, lat = (None, None) if table else (_find(names, LON_NAMES), _find(names, LAT_NAMES))
    wkt = None if table else _find(names, WKT_NAMES)
    if not table and not ((lon and lat) or wkt):
        raise LoaderError(
            "no_geometry_columns", f"CSV 中找不到坐标列（现有列：{', '.join(names[:20])}）",
            f"no coordinate columns in the CSV (columns: {', '.join(names[:20])})",
            file=src.display, fix_zh="提供名为 经度/纬度、lon/lat、x/y 或 wkt 的列；没有几何的表格用 "
            "--kind table --key 键字段 装载为数据表",
            fix_en="name the columns lon/lat (经度/纬度), x/y, or wkt; a table without "
            "geometry loads with --kind table --key FIELD")
    geo_cols = [] if table else [c for c in (lon, lat) if c] if (lon and lat) else [wkt]
    check_field_count(len(names) - len(geo_cols), src)
    codec = "utf-8" if enc.gdal == "UTF-8" else enc.codec
    read_opts = pacsv.ReadOptions(encoding=codec, block_size=16 << 20, column_names=names,
                                  skip_rows=1)
    parse_opts = pacsv.ParseOptions(delimiter=delim, newlines_in_values=True)
    # database exports write NULL as \N (PostgreSQL COPY, MySQL): that, and only that, is
    # null; empty values become NULL later (attributes.convert), quoted or not
    conv = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                null_values=["\\N"], strings_can_be_null=True,
                                quoted_strings_can_be_null=False)
    schema = pa.schema([pa.field(n, pa.string()) for n in names if n not in geo_cols])

    def batches() -> Iterator[tuple[pa.Table, np.ndarray]]:
        try:
            rd = pacsv.open_csv(src.path, read_options=read_opts, parse_options=parse_opts,
                                convert_options=conv)
            for rb in rd:
                for start in range(0, rb.num_rows, batch_size):
                    b = rb.slice(start, batch_size)
                    if table:
                        yield pa.Table.from_batches([b]), None
                        continue
                    if lon and lat:
                        xs = _to_float(b.column(lon))
                        ys = _to_float(b.column(lat))
                        geoms = shapely.points(xs, ys)
                        # an empty cell is no geometry; an infinite one (1e400) stays,
                        # to be refused naming its row (loaders.geometry)
                        geoms[np.isnan(xs) | np.isnan(ys)] = None
                    else:
                        w = b.column(wkt).to_numpy(zero_copy_only=False)
                        geoms = shapely.from_wkt(w, on_invalid="ignore")
                    t = pa.Table.from_batches([b]).drop_columns(geo_cols)
                    yield t, geoms
        except pa.ArrowInvalid as exc:
            raise LoaderError("bad_csv", f"CSV 格式错误（{exc}）", f"malformed CSV ({exc})",
                              file=src.display, fix_zh="检查分隔符、引号和每行的列数",
                              fix_en="check delimiters, quotes and the column count of "
                              "each row") from exc

    notes = [] if table else [
        f"CSV 坐标列：{lon}, {lat} / CSV coordinate columns: {lon}, {lat}" if lon and lat
        else f"CSV WKT 列：{wkt} / CSV WKT column: {wkt}"]
    return Reader(schema=schema, total=None, declared_crs=None, encoding=enc,
                  geometry_type="Point" if lon and lat else None,
                  batches=prefetch(batches()), text_inference=True, notes=notes,
                  row_offset=1)


def _to_float(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    s = pc.utf8_trim_whitespace(arr)
    ok = pc.fill_null(pc.match_substring_regex(
        s, r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"), False)
    vals = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    if isinstance(vals, pa.ChunkedArray):
        vals = vals.combine_chunks()
    return vals.to_numpy(zero_copy_only=False).astype(np.float64)
