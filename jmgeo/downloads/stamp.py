"""What makes a download file the same bytes every time it is built, and standard.

GDAL, openpyxl and ``zipfile`` write the current date into their files (the DBF header,
GeoPackage's ``gpkg_contents.last_change``, every zip entry, an XLSX's core properties).
A download's bytes must only depend on its key (:mod:`jmgeo.downloads.cache`): these
helpers put the version's load time there instead, so an evicted file is rebuilt
identical and its strong ETag stays true.

The DBF header also gets its *language driver id* (LDID, byte 29): GDAL leaves it 0,
so a GBK shapefile whose ``.cpg`` is lost (e-mailed as ``.shp/.dbf`` only, or opened by
software that ignores ``.cpg``) is read as Latin-1 and the Chinese turns to mojibake.
LDID 0x4D is code page 936 (GBK): GDAL, QGIS and ArcGIS recode from it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

LDID = {"GBK": 0x4D}  # DBF language driver ids by encoding (0x4D: code page 936)
# any prefix: openpyxl writes the Dublin Core terms namespace with the prefix lxml has
# registered for it — ``dcterms``, or ``dct`` once OWSLib was imported in the process
# (``owslib.etree`` registers its well-known prefixes in lxml at import)
_CORE_DATES = re.compile(rb"(<([\w.-]+):(created|modified)\b[^>]*>)[^<]*(</\2:\3>)")


def zip_time(when: dt.datetime) -> tuple[int, int, int, int, int, int]:
    """A zip entry's date (local fields, no zone: zip has none) — UTC, from 1980 on."""
    when = when.astimezone(dt.UTC)
    return max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second


def patch_dbf(path: Path, when: dt.datetime, encoding: str | None) -> None:
    """Set the DBF header's last-update date (bytes 1–3: YY since 1900, MM, DD) and, for
    an encoding with a code page id, its LDID (byte 29)."""
    with path.open("r+b") as f:
        f.seek(1)
        f.write(bytes([when.year - 1900, when.month, when.day]))
        if encoding in LDID:
            f.seek(29)
            f.write(bytes([LDID[encoding]]))


def touch(path: Path, when: dt.datetime) -> None:
    """A file's modification time (what ``ZipFile.write`` records) = ``when``."""
    ts = when.timestamp()
    os.utime(path, (ts, ts))


def gpkg_dates(path: Path, when: dt.datetime) -> None:
    """GeoPackage's ``last_change`` (written by GDAL as 'now') = ``when``."""
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{when.microsecond // 1000:03d}Z"
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE gpkg_contents SET last_change = ?", (stamp,))
        conn.commit()
    finally:
        conn.close()


def normalise_zip(path: Path, when: dt.datetime) -> None:
    """Rewrite a zip (an XLSX) with every entry dated ``when`` and the core properties'
    created/modified dates = ``when``; entries are copied in chunks (memory stays flat)."""
    iso = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                                        allowZip64=True) as dst:
        for info in src.infolist():
            new = zipfile.ZipInfo(info.filename, zip_time(when))
            new.compress_type = zipfile.ZIP_DEFLATED
            new.external_attr = info.external_attr
            if info.filename == "docProps/core.xml":
                data = _CORE_DATES.sub(lambda m: m.group(1) + iso + m.group(4),
                                       src.read(info))
                dst.writestr(new, data)
                continue
            big = info.file_size >= zipfile.ZIP64_LIMIT
            with src.open(info) as r, dst.open(new, "w", force_zip64=big) as w:
                shutil.copyfileobj(r, w, 1 << 20)
    out.replace(path)
