"""Shapefile / DBF attributes decoded in bulk: GDAL's values, several times faster.

Why: GDAL's Shapefile driver reads a DBF one record and one field at a time and recodes
every string through iconv; on the 1,000,000-parcel benchmark file (505 bytes a record)
that was 80 % of the read and the largest single cost of the load (issue 16 §6). A DBF
is a fixed-width table, so a whole batch of records can be trimmed and cut as arrays
(NumPy), decoded with one codec call per column, and handed to Arrow as buffers.

The answer is GDAL's in every case, because whatever this module cannot reproduce
exactly is left to GDAL:

- the whole file (:func:`open_dbf` answers ``None``) when a field is not text (``C``) or
  a number (``N``/``F``) as GDAL types it, the header disagrees with the file's size, or
  the record count is not the ``.shp``'s;
- one batch (GDAL reads those records, ``fallback``) when a number is not plainly
  written, text does not decode strictly, or it decodes to a character that iconv maps
  otherwise (GB18030-2022 moved 18 two-byte codes out of the Private Use Area and 4-byte
  codes onto them; Python's codec still has the 2005 table), or the codec is not one of
  the two checked here (UTF-8, GB18030) and the text is not ASCII.

GDAL's own rules, reproduced: text cut at the first NUL and trimmed of leading and
trailing spaces (shapelib's ``TRIM_DBF_WHITESPACE``), empty text → null, a number that is
empty or starts with ``*`` → null, deleted records (flag ``*``) skipped.
``tests/test_loader_dbf.py`` holds both readers equal on generated edge cases, on every
GB18030 code and on the real-world files.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DbfField", "DbfHeader", "DbfReader", "open_dbf", "read_header"]

# decoded text holding one of these reads differently through iconv (GB18030-2022):
# the PUA, and the characters the 2022 table moved there from 4-byte codes
_GB18030_REMAPPED = re.compile("[\ue000-\uf8ff\u1e3f\u9fb4-\u9fbb\ufe10-\ufe19]")
_DECODED = ("utf-8", "gb18030")           # non-ASCII text decoded here; other codecs: GDAL
_NUMBER = {"F": r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$",
           "I": r"^[+-]?\d+$"}
_SPACE, _NUL, _DELETED = 0x20, 0x00, 0x2A


@dataclass(frozen=True)
class DbfField:
    name: bytes                          # the 11-byte name up to its first NUL, undecoded
    kind: str                            # the DBF type letter: C, N, F, D, L, M …
    offset: int                          # in the record (byte 0 is the deletion flag)
    width: int


@dataclass(frozen=True)
class DbfHeader:
    records: int
    header_len: int
    record_len: int
    ldid: int                            # the language driver id (a codepage hint)
    fields: tuple[DbfField, ...]


def read_header(path: Path) -> DbfHeader:
    """A DBF's header and field descriptors — the one reading of them the loaders share
    (the encoding check, the field-name check and the bulk decoder). A ``C`` field's width
    takes the decimal byte as its high byte, as shapelib does, when the record holds it
    (writers of text fields over 255 bytes use it). Raises ``OSError`` /
    ``struct.error`` on a file too short to be a DBF."""
    with open(path, "rb") as fh:
        head = fh.read(32)
        records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        desc = fh.read(max(header_len - 32, 0))
    fields, offset = [], 1
    for i in range(0, len(desc) - 31, 32):
        if desc[i] == 0x0D:
            break
        kind, width = chr(desc[i + 11]), desc[i + 16]
        if kind == "C" and offset + width + 256 * desc[i + 17] <= record_len:
            width += 256 * desc[i + 17]
        fields.append(DbfField(desc[i:i + 11].split(b"\x00", 1)[0], kind, offset, width))
        offset += width
    return DbfHeader(records, header_len, record_len, head[29], tuple(fields))


class DbfReader:
    """The live records of one DBF, in order, ``take(k)`` at a time."""

    def __init__(self, path: Path, schema: pa.Schema, fields: list[tuple[str, int, int]],
                 header_len: int, record_len: int, count: int, codec: str,
                 fallback: Callable[[int, int], pa.Table]) -> None:
        self.schema = schema
        self.fields = fields             # (kind "C"/"F"/"I", offset in record, width)
        self.header_len, self.record_len, self.count = header_len, record_len, count
        self.codec = codec
        self.fallback = fallback         # (raw record index, k) → GDAL's k live records
        self.fallbacks = 0               # batches GDAL read (the report's timing says so)
        self._fd = os.open(path, os.O_RDONLY)
        self._next = 0                   # raw index of the next record not yet read
        self._rows = np.empty((0, record_len), np.uint8)
        self._raw = np.empty(0, np.int64)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _fill(self, k: int) -> None:
        """Read until ``k`` live records are buffered or the file ends (pread, not mmap:
        mapped pages would count in the process's memory for the whole file)."""
        while len(self._rows) < k and self._next < self.count:
            n = min(max(k - len(self._rows), 1024), self.count - self._next)
            buf = os.pread(self._fd, n * self.record_len,
                           self.header_len + self._next * self.record_len)
            n = len(buf) // self.record_len
            if n == 0:
                raise EOFError("DBF shorter than its header says")
            rows = np.frombuffer(buf, np.uint8, n * self.record_len).reshape(n, -1)
            live = rows[:, 0] != _DELETED
            raw = np.arange(self._next, self._next + n, dtype=np.int64)
            if not live.all():
                rows, raw = rows[live], raw[live]
            self._rows = np.concatenate((self._rows, rows)) if len(self._rows) else rows
            self._raw = np.concatenate((self._raw, raw)) if len(self._raw) else raw
            self._next += n

    def take(self, k: int) -> pa.Table:
        """The next ``k`` live records (fewer at the end of the file) as GDAL reads them."""
        self._fill(k)
        rows, self._rows = self._rows[:k], self._rows[k:]
        raw, self._raw = self._raw[:k], self._raw[k:]
        if not len(rows):
            return self.schema.empty_table()
        rows = np.ascontiguousarray(rows)
        arrays = []
        for (kind, off, width), fld in zip(self.fields, self.schema, strict=True):
            arr = _column(rows, off, width, kind, fld.type, self.codec)
            if arr is None:
                self.fallbacks += 1
                return self.fallback(int(raw[0]), len(rows))
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _column(rows: np.ndarray, off: int, width: int, kind: str, typ: pa.DataType,
            codec: str) -> pa.Array | None:
    """One field of a batch of records; ``None``: GDAL must read this batch."""
    m, reclen = rows.shape
    b = rows[:, off:off + width]
    nul = b == _NUL
    if nul.any():                        # a C string ends at its first NUL
        cut = np.where(nul.any(1), nul.argmax(1), width)
        b = np.where(np.arange(width)[None, :] >= cut[:, None], _SPACE, b).astype(np.uint8)
        rows, off, reclen = b, 0, width
    text = b != _SPACE
    has = text.any(1)
    start = np.where(has, text.argmax(1), 0)
    lens = np.where(has, width - text[:, ::-1].argmax(1) - start, 0).astype(np.int64)
    offsets = np.zeros(m + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    base = np.arange(m, dtype=np.int64) * reclen + off + start - offsets[:-1]
    data = rows.reshape(-1)[np.arange(total, dtype=np.int64) + np.repeat(base, lens)]
    if total and int(data.max()) >= 0x80:
        if kind != "C" or codec not in _DECODED:
            return None
        joined = np.zeros(total + m, np.uint8)          # NUL-separated: no text has one
        joined[np.arange(total, dtype=np.int64) + np.repeat(np.arange(m), lens)] = data
        try:
            decoded = joined.tobytes().decode(codec)
        except UnicodeDecodeError:
            return None
        if codec == "gb18030" and _GB18030_REMAPPED.search(decoded):
            return None
        utf8 = np.frombuffer(decoded.encode("utf-8"), np.uint8)
        seps = np.flatnonzero(utf8 == _NUL)
        offsets = np.zeros(m + 1, np.int64)
        offsets[1:] = seps - np.arange(m)
        data = utf8[utf8 != _NUL]
        lens = np.diff(offsets)
    valid = lens > 0
    if kind != "C" and total:            # a number starting with * is null (shapelib)
        first = np.zeros(m, np.uint8)
        first[valid] = data[offsets[:-1][valid]]
        valid &= first != _DELETED
    arr = pa.StringArray.from_buffers(
        m, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data),
        pa.py_buffer(np.packbits(valid, bitorder="little")), null_count=int(m - valid.sum()))
    if kind == "C":
        return arr
    ok = pc.match_substring_regex(arr, _NUMBER[kind])
    if pc.any(pc.invert(ok)).as_py():    # ok is null where the value is: those are fine
        return None
    if kind == "I":                      # Arrow's integer parse refuses a leading +
        arr = pc.utf8_ltrim(arr, characters="+")
    try:
        return pc.cast(arr, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def open_dbf(path: Path, schema: pa.Schema, codec: str, count: int | None,
             fallback: Callable[[int, int], pa.Table]) -> DbfReader | None:
    """A bulk reader for ``path`` whose records GDAL types as ``schema`` (its attribute
    columns, in field order), or ``None`` when GDAL must read the whole file."""
    try:
        head = read_header(path)
        size = path.stat().st_size
    except (OSError, struct.error):
        return None
    n, header_len, record_len = head.records, head.header_len, head.record_len
    if (count is not None and n != count) or size < header_len + n * record_len:
        return None
    fields = [(f.kind, f.offset, f.width) for f in head.fields]
    if sum(w for _, _, w in fields) + 1 != record_len or len(fields) != len(schema):
        return None
    kinds = []
    for (dbf_type, off, width), fld in zip(fields, schema, strict=True):
        if dbf_type == "C" and fld.type == pa.string():
            kinds.append(("C", off, width))
        elif dbf_type in "NF" and fld.type == pa.float64():
            kinds.append(("F", off, width))
        elif dbf_type == "N" and fld.type in (pa.int32(), pa.int64()):
            kinds.append(("I", off, width))
        else:                            # dates, logicals, memos …: GDAL's reading
            return None
    try:
        "az AZ 09".encode(codec)
    except LookupError:
        return None
    return DbfReader(path, schema, kinds, header_len, record_len, n, codec, fallback)
