"""The bulk DBF decoder (``loaders.dbf``) gives exactly the attributes GDAL gives — names,
types, field metadata, nulls, trimming, deleted records — and hands GDAL the batches and
files it cannot vouch for. Each case reads one file twice through the loader's reader:
bulk on (the default) and off (GDAL feature by feature), and compares the Arrow tables."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely
from pyogrio.raw import write

import loaders.dbf as bulk
from jmgeo.settings import get_settings
from loaders.readers import open_reader
from loaders.source import open_source


def _read(path: Path, monkeypatch, on: bool, batch: int = 4, kind: str | None = None,
          encoding: str | None = None) -> tuple[pa.Table, list]:
    monkeypatch.setattr(get_settings(), "load_bulk_dbf", on)
    with open_source(path, path.name, kind=kind) as src:
        reader = open_reader(src, kind=kind, batch_size=batch, encoding=encoding)
        attrs, geoms = [], []
        for a, g in reader.batches:
            attrs.append(a)
            geoms.append(None if g is None else g.to_pylist())
    return pa.concat_tables(attrs), geoms


def _both(path: Path, monkeypatch, **kw) -> pa.Table:
    got, got_geoms = _read(path, monkeypatch, True, **kw)
    want, want_geoms = _read(path, monkeypatch, False, **kw)
    assert got.schema.equals(want.schema, check_metadata=True)
    assert _plain(got) == _plain(want)
    assert got_geoms == want_geoms
    return got


def _plain(t: pa.Table) -> list[dict]:
    """The rows, NaN spelt out (NaN != NaN would fail two equal tables)."""
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in t.to_pylist()]


def _spy(monkeypatch) -> dict:
    """Counts how the bulk reader was used: opened for the file, batches GDAL read."""
    seen = {"opened": 0, "fallbacks": 0, "bulk_batches": 0}
    real_open, real_take = bulk.open_dbf, bulk.DbfReader.take

    def open_dbf(*a, **k):
        r = real_open(*a, **k)
        seen["opened"] += r is not None
        return r

    def take(self, k):
        before = self.fallbacks
        t = real_take(self, k)
        if t.num_rows:
            seen["fallbacks" if self.fallbacks > before else "bulk_batches"] += 1
        return t

    monkeypatch.setattr(bulk, "open_dbf", open_dbf)
    monkeypatch.setattr(bulk.DbfReader, "take", take)
    return seen


def _shapefile(path: Path, widths: dict[str, np.ndarray], records: list[list[bytes]],
               deleted: set[int] = frozenset(), cpg: str | None = "GBK") -> Path:
    """A point Shapefile whose DBF records are exactly ``records`` (raw field bytes, padded
    to the field width GDAL chose for the placeholder column)."""
    n = len(records)
    write(str(path), geometry=shapely.to_wkb(shapely.points(np.arange(n) * 0.001 + 113,
                                                            np.full(n, 22.5))),
          field_data=list(widths.values()), fields=list(widths), geometry_type="Point",
          crs="EPSG:4490", driver="ESRI Shapefile")
    dbf = path.with_suffix(".dbf")
    raw = bytearray(dbf.read_bytes())
    hlen, rlen = struct.unpack("<HH", raw[8:12])
    desc = raw[32:hlen]
    sizes = [desc[i + 16] for i in range(0, len(widths) * 32, 32)]
    for i, rec in enumerate(records):
        body = b"".join(v[:w].ljust(w, b" ") for v, w in zip(rec, sizes, strict=True))
        raw[hlen + i * rlen:hlen + (i + 1) * rlen] = (b"*" if i in deleted else b" ") + body
    dbf.write_bytes(bytes(raw))
    path.with_suffix(".cpg").unlink(missing_ok=True)
    if cpg:
        path.with_suffix(".cpg").write_text(cpg)
    return path


def _placeholders(n: int) -> dict[str, np.ndarray]:
    return {"name": np.array(["x" * 20] * n, dtype=object), "code": np.zeros(n, np.int32),
            "big": np.zeros(n, np.int64), "area": np.zeros(n, np.float64)}


GBK = "GBK".lower()


def test_edge_cases_read_as_gdal_reads_them(tmp_path, monkeypatch):
    rows = [
        ["  李四  ".encode(GBK), b"  12", b"1234567890123", b" 3.25"],   # spaces both sides
        [b"", b"", b"", b""],                                              # all empty → null
        ["江门\x00垃圾".encode(GBK), b"*********", b"*", b"******"],       # NUL cut; * → null
        [b"ascii only", b"-7", b"-9000000000000", b"1e3"],
        ["蓬江区".encode(GBK), b"+5", b"0", b"-.5"],
        [b"deleted", b"1", b"1", b"1"],                                    # deleted below
        ["新会 区".encode(GBK), b"42", b"7", b"1.5E-2"],                   # inner space kept
        [b"   ", b"  ", b" ", b"   "],                                     # only spaces
        [b"tail", b"3", b"3", b"3"],
    ]
    shp = _shapefile(tmp_path / "edge.shp", _placeholders(len(rows)), rows, deleted={5})
    seen = _spy(monkeypatch)
    got = _both(shp, monkeypatch)
    assert seen == {"opened": 1, "bulk_batches": 2, "fallbacks": 0}, seen
    assert got.num_rows == 8
    assert got.column("name").to_pylist()[:3] == ["李四", None, "江门"]
    assert got.column("code").to_pylist()[:3] == [12, None, None]


@pytest.mark.parametrize("odd", [
    [b"x", b"1,5", b"1", b"1"],               # a number written as no parser agrees
    [b"x", b"1", b"1", b"0x1A"],              # hex: strtod reads it, a strict parse not
    [b"x", b"1", b"1", b"nan"],
    [b"\xa6\xd9", b"1", b"1", b"1"],          # GB18030-2022 moved it out of the PUA
    [b"x", "一".encode(GBK), b"1", b"1"],     # non-ASCII in a number
])
def test_a_batch_the_decoder_will_not_vouch_for_is_read_by_gdal(tmp_path, monkeypatch, odd):
    # common Chinese text around it, so the encoding check (loaders.encoding) accepts GBK
    rows = ([["蓬江区".encode(GBK), b"1", b"1", b"1"]] * 4 + [odd]
            + [["新会区".encode(GBK), b"2", b"2", b"2"]] * 3)
    shp = _shapefile(tmp_path / "odd.shp", _placeholders(len(rows)), rows)
    seen = _spy(monkeypatch)
    _both(shp, monkeypatch)
    # records 1-4 in bulk, 5-8 (holding the odd one) by GDAL
    assert seen == {"opened": 1, "fallbacks": 1, "bulk_batches": 1}


def _direct(shp: Path, encoding: str, codec: str, batch: int) -> tuple[pa.Table, pa.Table]:
    """The bulk decoder on its own (text the loader's encoding check would refuse before
    reading: the decoder must still never differ from GDAL) and GDAL's whole read."""
    kw = {"encoding": encoding, "read_geometry": False}
    schema = pyogrio.read_arrow(shp, max_features=1, **kw)[1].schema
    reader = bulk.open_dbf(shp.with_suffix(".dbf"), schema, codec, None,
                           lambda i, k: pyogrio.read_arrow(shp, skip_features=i,
                                                           max_features=k, **kw)[1])
    assert reader is not None
    parts = []
    while (t := reader.take(batch)).num_rows:
        parts.append(t)
    reader.close()
    return pa.concat_tables(parts), pyogrio.read_arrow(shp, **kw)[1]


def test_text_that_is_not_gb18030_at_all_is_left_to_gdal(tmp_path, monkeypatch):
    rows = [[b"first", b"1", b"1", b"1"]] * 4 + [[b"\xff\xfe\x81", b"1", b"1", b"1"]]
    shp = _shapefile(tmp_path / "bad.shp", _placeholders(len(rows)), rows)
    seen = _spy(monkeypatch)
    with pytest.warns(RuntimeWarning):        # GDAL: "couldn't be converted"
        got, want = _direct(shp, "GB18030", "gb18030", batch=4)
    assert _plain(got) == _plain(want)
    assert seen == {"opened": 1, "fallbacks": 1, "bulk_batches": 1}


def test_fallback_batches_after_deleted_records_start_at_the_right_record(tmp_path,
                                                                          monkeypatch):
    rows = [[f"r{i}".encode(), str(i).encode(), b"1", b"1"] for i in range(12)]
    rows[9][1] = b"9.5"                       # an integer field holding a decimal: GDAL
    shp = _shapefile(tmp_path / "del.shp", _placeholders(len(rows)), rows,
                     deleted={0, 2, 3, 7})
    seen = _spy(monkeypatch)
    got = _both(shp, monkeypatch)
    assert got.column("name").to_pylist() == [f"r{i}" for i in (1, 4, 5, 6, 8, 9, 10, 11)]
    assert seen["fallbacks"] == 1 and seen["bulk_batches"] == 1


def test_every_gb18030_code_reads_as_gdal_reads_it(tmp_path, monkeypatch):
    codes = [bytes([a, b]) for a in range(0x81, 0xFF)
             for b in [*range(0x40, 0x7F), *range(0x80, 0xFF)]]
    codes += [bytes([b1, b2, b3, b4]) for b1 in range(0x81, 0x85) for b2 in range(0x30, 0x3A)
              for b3 in range(0x81, 0xFF) for b4 in range(0x30, 0x3A)]
    codes += ["𠀀𪚥🙂".encode("gb18030")]          # supplementary planes too
    rows = [[c, b"1", b"1", b"1"] for c in codes]
    shp = _shapefile(tmp_path / "gb.shp", _placeholders(len(rows)), rows, cpg="GB18030")
    seen = _spy(monkeypatch)
    with pytest.warns(RuntimeWarning):        # GDAL: some codes "couldn't be converted"
        got, want = _direct(shp, "GB18030", "gb18030", batch=64)
    assert _plain(got) == _plain(want)
    assert seen["bulk_batches"] > 0 and seen["fallbacks"] > 0


def test_utf8_and_a_dbf_alone_as_a_table(tmp_path, monkeypatch):
    rows = [["统一社会信用代码".encode(), b"1", b"2", b"0.5"],
            ["  Ünïcödé  ".encode(), b"3", b"4", b"1.5"]] * 5
    shp = _shapefile(tmp_path / "u.shp", _placeholders(len(rows)), rows, cpg="UTF-8")
    seen = _spy(monkeypatch)
    _both(shp, monkeypatch)
    dbf = shp.with_suffix(".dbf")
    for ext in (".shp", ".shx", ".prj"):
        shp.with_suffix(ext).unlink()
    got = _both(dbf, monkeypatch, kind="table")
    assert got.num_rows == 10 and seen["opened"] == 2 and seen["fallbacks"] == 0


def test_field_types_it_does_not_decode_leave_the_file_to_gdal(tmp_path, monkeypatch):
    n = 6
    write(str(tmp_path / "d.shp"), geometry=shapely.to_wkb(shapely.points(np.full(n, 113.0),
                                                                          np.full(n, 22.5))),
          field_data=[np.array([f"2024-01-0{i + 1}" for i in range(n)], "datetime64[D]"),
                      np.array(["a"] * n, dtype=object)], fields=["day", "s"],
          geometry_type="Point", crs="EPSG:4490", driver="ESRI Shapefile")
    seen = _spy(monkeypatch)
    got = _both(tmp_path / "d.shp", monkeypatch)
    assert seen["opened"] == 0 and got.schema.field("day").type == pa.date32()


def test_the_real_world_shapefiles(monkeypatch):
    root = get_settings().realworld_data
    files = sorted(p for p in root.glob("*/*.shp")) if root.is_dir() else []
    if not files:
        pytest.skip(f"real-world test data {root} is absent (setting JMGEO_REALWORLD_DATA)")
    seen = _spy(monkeypatch)
    for shp in files:
        _both(shp, monkeypatch, batch=500)
    assert seen["opened"] == len(files)
