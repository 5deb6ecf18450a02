"""Find the dataset in what the user handed over, safely, and check it is whole.

* A ``.zip`` is unpacked into a private temporary directory — refusing ``../`` or
  absolute member paths (zip-slip) and zip bombs (huge total size or compression ratio,
  checked on the bytes actually written, not only on the header's claims). Chinese
  member names written by Windows tools (GBK, without the UTF-8 flag) are decoded.
* A Shapefile is checked before GDAL sees it: the ``.shp``, ``.shx`` and ``.dbf`` must
  all be present and not truncated, and agree on the record count. Errors name the
  missing or broken part and say how to fix it.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from jmgeo.settings import get_settings
from loaders.errors import LoaderError

VECTOR_EXTS = {".shp": "shapefile", ".gpkg": "gpkg", ".geojson": "geojson",
               ".json": "geojson", ".csv": "csv", ".txt": "csv", ".kml": "kml",
               ".kmz": "kml", ".gdb": "filegdb", ".geojsonl": "geojson",
               ".geojsons": "geojson", ".fgb": "flatgeobuf"}
RASTER_EXTS = {".tif": "geotiff", ".tiff": "geotiff"}
# formats that hold records without geometry only (loaded with --kind table)
TABLE_EXTS = {".xlsx": "xlsx", ".xlsm": "xlsx"}
SIDE_EXTS = (".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix", ".xml", ".qpj")

# zip bomb limits (the bytes actually written are counted too); the total is the
# ``zip_max_bytes`` setting (JMGEO_ZIP_MAX_BYTES)
ZIP_MAX_RATIO = 500          # uncompressed / compressed (deflate tops out near 1030:1)
ZIP_RATIO_MIN_SIZE = 16 * 1024 ** 2
ZIP_MAX_MEMBERS = 20_000


@dataclass
class Source:
    """The dataset GDAL will open, and what it was found in."""

    path: Path                      # file (or .gdb directory) GDAL opens
    given: Path                     # what the user named
    fmt: str                        # shapefile, gpkg, geojson, csv, kml, filegdb, geotiff …
    display: str                    # the name used in messages (zip!member for zips)
    files: list[Path] = field(default_factory=list)   # every file that makes up the dataset

    @property
    def is_raster(self) -> bool:
        return self.fmt in RASTER_EXTS.values()

    def sibling(self, ext: str) -> Path | None:
        """A Shapefile side file (``.cpg``, ``.prj`` …), matched case-insensitively."""
        return find_sibling(self.path, ext)


def find_sibling(path: Path, ext: str) -> Path | None:
    want = (path.stem + ext).lower()
    try:
        for p in path.parent.iterdir():
            if p.name.lower() == want:
                return p
    except OSError:
        return None
    return None


# -- zip -----------------------------------------------------------------------------
def _member_name(info: zipfile.ZipInfo) -> str:
    """Decode a member name: UTF-8 flag, else try UTF-8 then GBK (Windows zips)."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return name


def safe_extract(zpath: Path, dest: Path) -> list[Path]:
    """Unpack ``zpath`` into ``dest`` refusing path traversal and zip bombs."""
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoaderError("bad_zip", f"不是有效的zip压缩包（{exc}）", f"not a valid zip archive ({exc})",
                          file=zpath, fix_zh="重新压缩后再上传", fix_en="re-create the zip") from exc
    out: list[Path] = []
    max_total = get_settings().zip_max_bytes
    with zf:
        infos = zf.infolist()
        if len(infos) > ZIP_MAX_MEMBERS:
            raise LoaderError("zip_bomb", f"压缩包内文件过多（{len(infos)}个）",
                              f"the zip holds too many members ({len(infos)})", file=zpath,
                              fix_zh="只打包要装载的数据文件", fix_en="zip only the dataset's files")
        declared = 0
        names = []
        for info in infos:
            name = _member_name(info)
            pure = PurePosixPath(name.replace("\\", "/"))
            if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
                raise LoaderError(
                    "zip_traversal", f"压缩包含有不安全的路径 {name!r}（指向解压目录之外），已拒绝",
                    f"the zip contains an unsafe path {name!r} that points outside the "
                    "extraction folder (zip-slip); nothing was extracted", file=zpath,
                    fix_zh="用相对路径重新打包（不含 ../ 或绝对路径）",
                    fix_en="re-create the zip with plain relative paths (no ../, no /)")
            declared += info.file_size
            if (info.file_size > ZIP_RATIO_MIN_SIZE and
                    info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1)):
                raise _bomb(zpath, name, info.file_size, info.compress_size)
            names.append((info, pure))
        packed = sum(i.compress_size for i in infos)
        # the whole archive too, not only each member: many members each under the
        # per-member threshold may together expand to gigabytes
        if declared > max_total or (declared > ZIP_RATIO_MIN_SIZE and
                                    declared > ZIP_MAX_RATIO * max(packed, 1)):
            raise _bomb(zpath, "*", declared, packed)
        written = 0
        for info, pure in names:
            if info.is_dir():
                continue
            target = dest.joinpath(*pure.parts)
            if dest.resolve() not in target.resolve().parents:
                raise LoaderError("zip_traversal", f"压缩包路径不安全：{pure}",
                                  f"unsafe path in zip: {pure}", file=zpath,
                                  fix_zh="用相对路径重新打包", fix_en="re-create the zip with "
                                  "relative paths")
            target.parent.mkdir(parents=True, exist_ok=True)
            member_written = 0
            with zf.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    member_written += len(chunk)
                    written += len(chunk)
                    if member_written > info.file_size or written > max_total or (
                            member_written > ZIP_RATIO_MIN_SIZE and
                            member_written > ZIP_MAX_RATIO * max(info.compress_size, 1)) or (
                            written > ZIP_RATIO_MIN_SIZE and
                            written > ZIP_MAX_RATIO * max(packed, 1)):
                        raise _bomb(zpath, str(pure), member_written, info.compress_size)
                    dst.write(chunk)
            out.append(target)
    return out


def _bomb(zpath: Path, name: str, size: int, packed: int) -> LoaderError:
    return LoaderError(
        "zip_bomb", f"压缩包异常：{name} 解压后 {size / 1e6:.0f} MB，压缩比 "
        f"{size / max(packed, 1):.0f}:1，疑似压缩炸弹，已停止解压",
        f"suspicious zip: {name} expands to {size / 1e6:.0f} MB, a compression ratio of "
        f"{size / max(packed, 1):.0f}:1 (zip bomb?); extraction stopped", file=zpath,
        fix_zh="请直接上传原始数据文件或正常压缩的数据", fix_en="send the data files themselves "
        "or an ordinary zip of them")


# -- finding the dataset --------------------------------------------------------------
def _datasets_in(folder: Path, kind: str | None = None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        for d in list(dirs):
            if d.lower().endswith(".gdb"):
                found.append(rootp / d)
                dirs.remove(d)
            elif d.startswith("__MACOSX"):
                dirs.remove(d)
        for f in files:
            ext = Path(f).suffix.lower()
            if f.startswith("._"):
                continue
            if ext in (".shp", ".gpkg", ".geojson", ".csv", ".kml", ".kmz", ".tif", ".tiff",
                       ".fgb", ".json", *TABLE_EXTS):
                found.append(rootp / f)
            elif ext == ".dbf" and kind == "table" and not find_sibling(rootp / f, ".shp"):
                found.append(rootp / f)  # a lone attribute table
    return sorted(found)


def _orphan_shapefiles(folder: Path) -> list[Path]:
    """A .dbf or .shx whose .shp is missing (the commonest broken hand-over)."""
    out = []
    for root, _dirs, files in os.walk(folder):
        lower = {f.lower() for f in files}
        for f in files:
            p = Path(f)
            if p.suffix.lower() in (".dbf", ".shx") and (p.stem + ".shp").lower() not in lower:
                out.append(Path(root) / (p.stem + ".shp"))
    return sorted(set(out))


def _missing_shp(shp: Path, display: str | None = None) -> LoaderError:
    present = [p.name for p in (find_sibling(shp, e) for e in SIDE_EXTS) if p]
    fix_zh = f"把 {shp.name} 与 .shx、.dbf 一起提供（同一目录或同一zip）"
    fix_en = f"supply {shp.name} together with its .shx and .dbf (same folder or zip)"
    if not find_sibling(shp, ".shx"):  # a lone .dbf may be an attribute table
        fix_zh += "；若它只是属性表，用 --kind table --key 字段 装载为数据表"
        fix_en += "; if it is only an attribute table, load it with --kind table --key FIELD"
    return LoaderError(
        "missing_shp", f"缺少几何文件 {shp.name}（只有 {', '.join(present) or '无'}），"
        "Shapefile 的几何数据在 .shp 中，缺了它无法装载",
        f"the geometry file {shp.name} is missing (found only {', '.join(present) or 'nothing'});"
        " a Shapefile's shapes live in the .shp, so it cannot be loaded", file=display or shp,
        fix_zh=fix_zh, fix_en=fix_en)


def pick_dataset(folder: Path, display: str, kind: str | None = None) -> Path:
    found = _datasets_in(folder, kind)
    # a .json next to a .shp is metadata, not a dataset
    if any(p.suffix.lower() == ".shp" for p in found):
        found = [p for p in found if p.suffix.lower() != ".json"]
    if not found:
        orphans = _orphan_shapefiles(folder)
        if orphans:
            raise _missing_shp(orphans[0], f"{display}!{orphans[0].name}")
        raise LoaderError("no_dataset", "没有找到可装载的数据文件",
                          "no loadable dataset found (.shp, .gpkg, .geojson, .csv, .kml, "
                          ".gdb, .tif, .xlsx)", file=display,
                          fix_zh="确认压缩包中包含数据文件", fix_en="check the archive holds the data")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found[:10])
        raise LoaderError("several_datasets", f"包含多个数据集：{names}",
                          f"it holds several datasets: {names}", file=display,
                          fix_zh="每次装载一个数据集（每个图层一个zip）",
                          fix_en="load one dataset at a time (one zip per layer)")
    return found[0]


def fmt_of(path: Path, kind: str | None = None) -> str:
    ext = path.suffix.lower()
    if ext in RASTER_EXTS:
        return RASTER_EXTS[ext]
    if ext in VECTOR_EXTS:
        return VECTOR_EXTS[ext]
    if ext in TABLE_EXTS:
        return TABLE_EXTS[ext]
    if ext == ".dbf" and kind == "table" and not find_sibling(path, ".shp"):
        return "dbf"  # a DBF on its own: an attribute table
    if ext in (".dbf", ".shx", ".prj", ".cpg"):
        return "shapefile_part"
    return "other"


@contextmanager
def open_source(given: str | Path, display: str | None = None,
                kind: str | None = None) -> Iterator[Source]:
    """Yield the dataset inside ``given`` (a file, a .gdb folder, a folder or a zip).

    ``kind="table"`` (``--kind table``) also accepts a DBF without its .shp as a dataset.
    """
    given = Path(given)
    display = display or given.name
    tmp: str | None = None
    try:
        if not given.exists():
            if given.suffix.lower() == ".shp" and (find_sibling(given, ".dbf") or
                                                   find_sibling(given, ".shx")):
                raise _missing_shp(given, display)
            raise LoaderError("not_found", "文件不存在", "file not found", file=display,
                              fix_zh="检查路径和文件名", fix_en="check the path and file name")
        if given.is_dir() and not given.name.lower().endswith(".gdb"):
            path = pick_dataset(given, display, kind)
            display = f"{display}/{path.relative_to(given)}"
        elif given.suffix.lower() == ".zip":
            tmp = tempfile.mkdtemp(prefix="jmgeo-load-")
            safe_extract(given, Path(tmp))
            path = pick_dataset(Path(tmp), display, kind)
            display = f"{display}!{path.relative_to(tmp)}"
        else:
            path = given
        fmt = fmt_of(path, kind)
        if fmt == "shapefile_part":
            shp = path.with_suffix(".shp")
            real = find_sibling(path, ".shp")
            if real is None:
                raise _missing_shp(shp, display)
            path, fmt = real, "shapefile"
        if fmt == "other":
            raise LoaderError(
                "unknown_format", f"不支持的文件类型 {path.suffix or '(无扩展名)'}",
                f"unsupported file type {path.suffix or '(no extension)'}", file=display,
                fix_zh="提供 Shapefile、GeoPackage、GeoJSON、CSV、KML、FileGDB、GeoTIFF，"
                "或数据表（CSV、XLSX、DBF）",
                fix_en="supply a Shapefile, GeoPackage, GeoJSON, CSV, KML, FileGDB or "
                "GeoTIFF, or a table (CSV, XLSX, DBF)")
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        if fmt == "shapefile":
            files = check_shapefile(path, display)
        elif path.is_file() and path.stat().st_size == 0:
            raise LoaderError("empty_file", "文件为空（0字节）", "the file is empty (0 bytes)",
                              file=display, fix_zh="重新导出数据", fix_en="export the data again")
        if fmt == "dbf":
            files = [path, *[p for p in (find_sibling(path, ".cpg"),) if p]]
        yield Source(path=path, given=given, fmt=fmt, display=display, files=files)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# -- shapefile integrity ---------------------------------------------------------------
def _truncated(part: Path, display: str, detail_zh: str, detail_en: str) -> LoaderError:
    return LoaderError(
        f"truncated_{part.suffix.lower().lstrip('.')}",
        f"{part.name} 不完整（{detail_zh}），文件可能在复制或下载时被截断",
        f"{part.name} is truncated ({detail_en}); the copy or download was probably cut "
        "short", file=display, fix_zh="从原系统重新导出或重新复制完整文件",
        fix_en="export or copy the complete file again")


def check_shapefile(shp: Path, display: str) -> list[Path]:
    """The .shp/.shx/.dbf trio is present, whole, and agrees; returns its files."""
    parts = {".shp": shp}
    for ext in (".shx", ".dbf"):
        p = find_sibling(shp, ext)
        if p is None:
            what = {".shx": ("索引文件", "index file"), ".dbf": ("属性表文件", "attribute table")}[ext]
            raise LoaderError(
                f"missing_{ext[1:]}", f"缺少{what[0]} {shp.stem}{ext}",
                f"the {what[1]} {shp.stem}{ext} is missing", file=display,
                fix_zh=f"把 {shp.stem}{ext} 与 .shp 放在一起（同一目录或同一zip）",
                fix_en=f"supply {shp.stem}{ext} with the .shp (same folder or zip)")
        parts[ext] = p
    lengths = {}
    for ext in (".shp", ".shx"):
        p = parts[ext]
        size = p.stat().st_size
        if size < 100:
            raise _truncated(p, display, f"只有{size}字节，文件头需100字节",
                             f"{size} bytes, shorter than the 100-byte header")
        with open(p, "rb") as fh:
            head = fh.read(100)
        code, = struct.unpack(">i", head[0:4])
        declared = struct.unpack(">i", head[24:28])[0] * 2
        if code != 9994:
            raise LoaderError("bad_shp", f"{p.name} 不是 Shapefile（文件头错误）",
                              f"{p.name} is not a Shapefile part (bad header)", file=display,
                              fix_zh="从原系统重新导出", fix_en="export the layer again")
        if size < declared:
            raise _truncated(p, display, f"文件头声明 {declared} 字节，实际只有 {size} 字节",
                             f"the header declares {declared} bytes, the file has {size}")
        lengths[ext] = declared
    shx_records = (lengths[".shx"] - 100) // 8
    dbf = parts[".dbf"]
    size = dbf.stat().st_size
    with open(dbf, "rb") as fh:
        head = fh.read(32)
    if len(head) < 32:
        raise _truncated(dbf, display, f"只有{size}字节", f"only {size} bytes")
    nrec, hlen, rlen = struct.unpack("<IHH", head[4:12])
    if size < hlen + nrec * rlen:
        raise _truncated(dbf, display, f"应有 {nrec} 条记录（{hlen + nrec * rlen} 字节），实际 {size} 字节",
                         f"{nrec} records need {hlen + nrec * rlen} bytes, the file has {size}")
    if nrec != shx_records:
        raise LoaderError(
            "record_mismatch", f".dbf 有 {nrec} 条记录，而 .shx 有 {shx_records} 条，文件不配套",
            f"the .dbf has {nrec} records but the .shx has {shx_records}: the files do not "
            "belong together", file=display,
            fix_zh="确认 .shp/.shx/.dbf 来自同一次导出", fix_en="make sure .shp, .shx and .dbf "
            "come from the same export")
    # the last shx entry must point inside the .shp
    if shx_records:
        with open(parts[".shx"], "rb") as fh:
            fh.seek(100 + (shx_records - 1) * 8)
            off, clen = struct.unpack(">ii", fh.read(8))
        if (off + 4 + clen) * 2 > parts[".shp"].stat().st_size:
            raise _truncated(parts[".shp"], display, "最后的要素超出文件末尾",
                             "the last shape ends beyond the end of the file")
    files = [parts[".shp"], parts[".shx"], dbf]
    files += [p for p in (find_sibling(shp, e) for e in (".prj", ".cpg")) if p]
    return files
