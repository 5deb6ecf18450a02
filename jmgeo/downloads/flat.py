"""The streamed and flat formats: CSV (UTF-8 with BOM, or GBK), GeoJSON, XLSX.

* ``csv`` — ``COPY … TO STDOUT`` straight from PostgreSQL, UTF-8 with a BOM so Excel
  opens 中文 correctly, gathered into ~1 MiB chunks.
* ``csv-gbk`` — the same COPY, transcoded on the way to GBK for older desktop software
  (no BOM). A character GBK cannot represent (e.g. 𠮷) becomes ``?`` — the stream has
  begun, so it cannot fail half-way; use ``csv`` or ``xlsx`` to keep every character.
* ``geojson`` — a FeatureCollection streamed feature by feature (built in PostGIS).
* ``xlsx`` — openpyxl's write-only workbook fed from the server-side cursor in batches
  (rows go to its temporary XML as they come: memory stays flat), one sheet of data (the
  column names as header) and a ``fields`` sheet of column → 中文 label. Time zones are
  written as UTC (Excel has none); control characters Excel refuses are dropped.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

from jmgeo.db import connection
from jmgeo.downloads import stamp
from jmgeo.downloads.export import Export, fetch_batches

CHUNK = 1 << 20  # bytes per streamed chunk
BOM = "\ufeff".encode()
XLSX_MAX_TEXT = 32_767  # characters per cell (Excel's limit)


def _copy_chunks(export: Export) -> Iterator[bytes]:
    """COPY's blocks are one row each (PostgreSQL sends a CopyData message per row, the
    header first): gather them into ~1 MiB chunks (1M rows: 74 s one row per chunk, a few
    seconds this way), telling ``export.progress`` the rows of each chunk."""
    buf = bytearray()
    rows = -1  # the header block is no row
    with connection() as conn:
        with conn.cursor().copy(export.csv_query()) as copy:
            for block in copy:
                buf += block
                rows += 1
                if len(buf) >= CHUNK:
                    if export.progress is not None and rows > 0:
                        export.progress(rows)
                        rows = 0
                    yield bytes(buf)
                    buf.clear()
    if export.progress is not None and rows > 0:
        export.progress(rows)
    yield bytes(buf)


def stream_csv(export: Export) -> Iterator[bytes]:
    yield BOM
    yield from _copy_chunks(export)


def stream_csv_gbk(export: Export) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8")()  # a chunk may end mid-character
    for chunk in _copy_chunks(export):
        yield decoder.decode(chunk).encode("gbk", errors="replace")
    yield decoder.decode(b"", final=True).encode("gbk", errors="replace")


def stream_geojson(export: Export) -> Iterator[bytes]:
    query, params = export.geojson_query()
    head = {"type": "FeatureCollection", "name": export.layer["name"]}
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [').encode("utf-8")
    first = True
    for rows in fetch_batches(query, params, export.progress):
        chunk = ",\n".join(r[0] for r in rows)
        yield ((chunk if first else ",\n" + chunk).encode("utf-8"))
        first = False
    yield b"]}\n"


def _cell(value):
    """A value as openpyxl takes it."""
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_MAX_TEXT]
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.time) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)[:XLSX_MAX_TEXT]
    return value


def write_xlsx(export: Export, tmp: Path) -> tuple[Path, int]:
    """Write the workbook; returns (its path, rows written)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=export.layer["name"][:31])
    ws.append(export.header())
    query, params = export.flat_query()
    rows = 0
    for batch in fetch_batches(query, params, export.progress):
        for row in batch:
            ws.append([_cell(v) for v in row])
        rows += len(batch)
    labels = export.layer.get("field_labels") or {}
    fields = wb.create_sheet(title="fields")
    fields.append(["column", "label"])
    for col in export.header():
        fields.append([col, {"fid": "要素编号", "WKT": "几何（WKT, EPSG:4490）"}.get(
            col, labels.get(col, ""))])
    path = tmp / f"{export.layer['name']}.xlsx"
    wb.save(path)
    stamp.normalise_zip(path, export.loaded_at)
    return path, rows
