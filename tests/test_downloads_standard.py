"""Standard downloads and HTTP caching (issue 12 §2, §7), checked with GDAL reading the
files the way a desktop user's software does:

* GeoJSON per RFC 7946: no ``crs`` member, GDAL reads EPSG:4326 lon/lat;
* the GBK Shapefile without its ``.cpg`` still reads correctly (the DBF's LDID byte);
* CSV states its CRS (``Content-Crs``; the ``WKT`` column GDAL reads as geometry);
* GeoPackage columns keep their types;
* strong ETags tied to the version and the caller's access, ``If-None-Match`` → 304
  (items, a tile, a download; audited for non-open data with status 304 and 0 rows);
* a download is built once: repeated and rebuilt files are the same bytes, ``Range``
  resumes it, a caller with other access never gets another's file; the cache is LRU.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import time
import warnings
import zipfile
from datetime import date

import pyogrio
import pytest
from policy_fixtures import (
    FEATURES,
    GRANT_REGION,
    OWNER,
    create_callers,
    create_layers,
    layer_name,
)

LAYER = "tdls_parcels"
CRS_4490 = "<http://www.opengis.net/def/crs/EPSG/0/4490>"
ROWS = [  # fid, lon, lat, 地块名称, 权利人, 面积, 宗地数量, 登记日期, 是否基本农田
    (1, 113.08, 22.58, "北街地块（东区）", "陈大明", 120.5, 3, date(2021, 3, 1), True),
    (2, 113.07, 22.61, "白沙村委会东侧", "欧阳志强", 88.25, 0, date(2022, 7, 15), False),
    (3, 112.79, 22.25, "台城镇水步", "李小红", 300.0, 12, None, None),
]
FORMATS = ("gpkg", "shp", "shp-gbk", "csv", "csv-gbk", "xlsx", "geojson")


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    from layers.registry import Column, create_data_table, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layers(conn)
        callers = create_callers(conn)
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            with conn.transaction():
                cols = [Column("dkmc", label="地块名称"), Column("qlr", label="权利人"),
                        Column("mj", "numeric", label="面积"),
                        Column("zdsl", "integer", label="宗地数量"),
                        Column("djrq", "date", label="登记日期"),
                        Column("sfjbnt", "boolean", label="是否基本农田")]
                table = create_data_table(conn, LAYER, 1, "MultiPolygon", cols)
                for fid, lon, lat, *values in ROWS:
                    conn.execute(
                        f"INSERT INTO {table} (fid, geom, dkmc, qlr, mj, zdsl, djrq, sfjbnt) "
                        "VALUES (%s, ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(%s, %s), "
                        "4490), 0.002, 2)), %s, %s, %s, %s, %s, %s)", (fid, lon, lat, *values))
                publish(conn, layer=LAYER, version=1, table_name=table,
                        feature_count=len(ROWS), report={}, title="标准下载测试地块",
                        dept=OWNER, theme="land", sharing_class="unconditional",
                        sensitive_fields={"qlr": "person_name"},
                        field_labels={"dkmc": "地块名称", "qlr": "权利人"})
    return callers


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def get(client, caller, layer=LAYER, headers=None, **params):
    return client.get(f"/downloads/{layer}", params=params,
                      headers={**auth(caller), **(headers or {})})


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, fresh_settings):
    """An empty download cache for this test (files must be built, not found)."""
    def new(name: str = "cache"):
        monkeypatch.setenv("JMGEO_DOWNLOAD_CACHE_DIR", str(tmp_path / name))
        fresh_settings()
        return tmp_path / name
    return new


def _unzip(content: bytes, directory):
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        zf.extractall(directory)
    return directory


# -- the formats ------------------------------------------------------------------------

def test_geojson_is_rfc7946_and_gdal_reads_crs84_lon_lat(app_client, world, tmp_path):
    r = get(app_client, world["owner"], format="geojson")
    assert r.status_code == 200, r.text
    fc = json.loads(r.content)
    assert "crs" not in fc
    assert all("crs" not in f["geometry"] for f in fc["features"])
    x, y = fc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 112 < x < 114 and 21 < y < 23  # longitude first
    path = tmp_path / "d.geojson"
    path.write_bytes(r.content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = pyogrio.read_info(path)
        df = pyogrio.read_dataframe(path)
    assert not [w for w in caught if "crs" in str(w.message).lower()]
    assert info["crs"] == "EPSG:4326" and len(df) == len(ROWS)
    centroid = df.set_index(df["dkmc"]).geometry.centroid["北街地块（东区）"]
    assert centroid.x == pytest.approx(113.08, abs=1e-6)  # lon/lat, not swapped
    assert centroid.y == pytest.approx(22.58, abs=1e-6)
    if shutil.which("ogrinfo"):  # the system's GDAL, as a desktop user has it
        out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(path)],
                             capture_output=True, text=True, check=True)
        assert "WGS 84" in out.stdout and "Warning" not in out.stderr, out.stderr
        assert "Feature Count: 3" in out.stdout


def test_gbk_shapefile_reads_without_its_cpg(app_client, world, tmp_path):
    r = get(app_client, world["owner"], format="shp-gbk")
    assert r.status_code == 200, r.text
    _unzip(r.content, tmp_path)
    shp, dbf = tmp_path / f"{LAYER}.shp", tmp_path / f"{LAYER}.dbf"
    assert (tmp_path / f"{LAYER}.cpg").read_text() == "GBK"
    (tmp_path / f"{LAYER}.cpg").unlink()  # lost on the way, as .cpg files are
    assert dbf.read_bytes()[29] == 0x4D  # LDID: code page 936
    names = set(pyogrio.read_dataframe(shp)["dkmc"])
    assert names == {row[3] for row in ROWS}
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-ro", "-al", "-q", str(shp)],
                             capture_output=True, check=True).stdout.decode("utf-8")
        assert "白沙村委会东侧" in out
    # the control: the same file with the byte cleared turns to mojibake
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))
    assert not set(pyogrio.read_dataframe(shp)["dkmc"]) & names


def test_utf8_shapefile_keeps_its_cpg_and_no_ldid(app_client, world, tmp_path):
    _unzip(get(app_client, world["owner"], format="shp").content, tmp_path)
    assert (tmp_path / f"{LAYER}.cpg").read_text() == "UTF-8"
    assert (tmp_path / f"{LAYER}.dbf").read_bytes()[29] == 0  # no code page id for UTF-8
    assert set(pyogrio.read_dataframe(tmp_path / f"{LAYER}.shp")["dkmc"]) == \
        {row[3] for row in ROWS}


@pytest.mark.parametrize("fmt,encoding", [("csv", "utf-8-sig"), ("csv-gbk", "gbk")])
def test_csv_states_its_crs_and_gdal_reads_the_wkt(app_client, world, tmp_path, fmt,
                                                    encoding):
    r = get(app_client, world["owner"], format=fmt)
    assert r.status_code == 200
    assert r.headers["content-crs"] == CRS_4490
    rows = list(csv.DictReader(io.StringIO(r.content.decode(encoding))))
    assert list(rows[0]) == ["fid", "dkmc", "qlr", "mj", "zdsl", "djrq", "sfjbnt", "WKT"]
    assert rows[0]["WKT"].startswith("MULTIPOLYGON")  # a plain CSV: no comment line
    if fmt == "csv":
        path = tmp_path / "d.csv"
        path.write_bytes(r.content)
        df = pyogrio.read_dataframe(path)
        assert len(df) == len(ROWS) and df.geometry.notna().all()
    # a table has no geometry: no CRS to state
    t = get(app_client, world["owner"], layer=layer_name("open", "table"), format=fmt)
    assert t.status_code == 200 and "content-crs" not in t.headers


def test_geopackage_columns_are_typed(app_client, world, tmp_path):
    path = tmp_path / "d.gpkg"
    path.write_bytes(get(app_client, world["owner"], format="gpkg").content)
    info = pyogrio.read_info(path)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["mj"] == "float64" and types["zdsl"] in ("int32", "int64")
    assert types["sfjbnt"] == "bool" and types["dkmc"] == "object"
    assert types["djrq"].startswith("datetime64") or types["djrq"] == "object"
    df = pyogrio.read_dataframe(path, fid_as_index=True)
    assert df.loc[1, "mj"] == 120.5 and df.loc[3, "zdsl"] == 12
    assert info["crs"] == "EPSG:4490"


# -- ETag and 304 -----------------------------------------------------------------------

def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _last_audit(db, action: str):
    return db.execute("SELECT rows, request FROM audit_log WHERE layer = %s AND action = %s "
                      "ORDER BY id DESC LIMIT 1", (LAYER, action)).fetchone()


@pytest.mark.parametrize("way", ["items", "item", "tile", "download"])
def test_if_none_match_answers_304(app_client, world, db, way):
    x, y = _tile(113.08, 22.58, 14)
    url, action = {
        "items": (f"/ogc/collections/{LAYER}/items?f=json", "ogc.items"),
        "item": (f"/ogc/collections/{LAYER}/items/2?f=json", "ogc.item"),
        "tile": (f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/14/{y}/{x}?f=mvt",
                 "ogc.tiles"),
        "download": (f"/downloads/{LAYER}?format=geojson", "download")}[way]
    caller = world["unrelated"]
    plain = {"Accept-Encoding": "identity"}  # the bytes as stored: a strong tag
    first = app_client.get(url, headers={**auth(caller), **plain})
    assert first.status_code == 200 and first.content, first.text
    tag = first.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    again = app_client.get(url, headers={**auth(caller), **plain})
    assert again.headers["etag"] == tag and again.content == first.content
    # gzipped (jmgeo.web.Compression), the same tag turns weak — and still revalidates
    zipped = app_client.get(url, headers={**auth(caller), "Accept-Encoding": "gzip"})
    assert zipped.headers["etag"] in (tag, f"W/{tag}")
    n = db.execute("SELECT count(*) FROM audit_log WHERE layer = %s", (LAYER,)).fetchone()[0]
    for sent in (tag, f"W/{tag}", f'"other", {tag}'):
        r = app_client.get(url, headers={**auth(caller), "If-None-Match": sent})
        assert r.status_code == 304 and r.content == b""
        assert r.headers["etag"] == tag
        assert r.headers["cache-control"] == "private, no-store"
    # non-open data: each 304 is audited, with 0 rows (no data left)
    assert db.execute("SELECT count(*) FROM audit_log WHERE layer = %s",
                      (LAYER,)).fetchone()[0] == n + 3
    rows, request = _last_audit(db, action)
    assert rows == 0 and request["status"] == 304
    stale = app_client.get(url, headers={**auth(caller), **plain, "If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_open_items_and_tiles_revalidate_for_anonymous(app_client, world):
    cid = layer_name("open")
    lon, lat = FEATURES[0][1], FEATURES[0][2]
    x, y = _tile(lon, lat, 12)
    for url in (f"/ogc/collections/{cid}/items?f=json&limit=2",
                f"/ogc/collections/{cid}/tiles/WebMercatorQuad/12/{y}/{x}?f=mvt",
                "/ogc/collections/regions/items?f=json&limit=1"):
        first = app_client.get(url)
        assert first.status_code == 200 and first.headers["cache-control"].startswith("public")
        r = app_client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert r.status_code == 304 and r.content == b"", url
    # metadata carries no data tag; an error none either
    assert "etag" not in app_client.get(f"/ogc/collections/{cid}?f=json").headers
    assert "etag" not in app_client.get(f"/ogc/collections/{cid}/items?limit=x").headers


def test_items_pages_are_the_same_bytes(app_client, world):
    url = f"/ogc/collections/{layer_name('open')}/items?f=json"
    a, b = app_client.get(url), app_client.get(url)
    assert a.content == b.content and "timeStamp" not in a.json()


def test_other_access_other_etag_never_another_callers_file(app_client, world):
    owner, unrelated, granted = world["owner"], world["unrelated"], world["limited_grant"]
    mine = get(app_client, owner, format="csv")
    theirs = get(app_client, unrelated, format="csv",
                 headers={"If-None-Match": mine.headers["etag"]})
    assert theirs.status_code == 200  # the owner's tag means nothing for other access
    assert theirs.headers["etag"] != mine.headers["etag"]
    assert "陈大明" in mine.content.decode("utf-8-sig")
    assert "陈大明" not in theirs.content.decode("utf-8-sig")  # masked: its own file
    # same access (two departments, an unconditional layer, the same masks): same data
    same = get(app_client, granted, format="csv")
    assert same.headers["etag"] == theirs.headers["etag"] and same.content == theirs.content
    # a grant's region scope is access too: items and downloads differ from the owner's
    cond = layer_name("conditional")
    tags = {}
    for who in (owner, granted):
        items = app_client.get(f"/ogc/collections/{cond}/items?f=json", headers=auth(who))
        dl = get(app_client, who, layer=cond, format="geojson")
        tags[who.label] = (items.headers["etag"], dl.headers["etag"])
        counties = {f["properties"]["county"] for f in dl.json()["features"]}
        assert counties == ({GRANT_REGION} if who is granted else {"440703", "440781"})
    assert tags["owner"][0] != tags["limited_grant"][0]
    assert tags["owner"][1] != tags["limited_grant"][1]
    r = app_client.get(f"/ogc/collections/{cond}/items?f=json",
                       headers={**auth(granted), "If-None-Match": tags["owner"][0]})
    assert r.status_code == 200


# -- the file cache ---------------------------------------------------------------------

def test_range_resumes_a_repeated_download(app_client, world, fresh_cache):
    fresh_cache()
    full = get(app_client, world["unrelated"], format="gpkg")
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    tag, size = full.headers["etag"], len(full.content)
    cut = size // 3
    r = get(app_client, world["unrelated"], format="gpkg",
            headers={"Range": f"bytes={cut}-", "If-Range": tag})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
    assert r.headers["etag"] == tag
    assert full.content[:cut] + r.content == full.content
    # If-Range with another tag: the whole (current) file
    r = get(app_client, world["unrelated"], format="gpkg",
            headers={"Range": f"bytes={cut}-", "If-Range": '"old"'})
    assert r.status_code == 200 and r.content == full.content


def test_every_format_is_rebuilt_byte_identical(app_client, world, fresh_cache):
    """Evicted and built again, a download is the same bytes: its ETag stays true."""
    first = {}
    fresh_cache("one")
    for fmt in FORMATS:
        first[fmt] = get(app_client, world["unrelated"], format=fmt)
        assert first[fmt].status_code == 200, (fmt, first[fmt].text)
    fresh_cache("two")
    for fmt in FORMATS:
        again = get(app_client, world["unrelated"], format=fmt)
        assert again.headers["etag"] == first[fmt].headers["etag"], fmt
        assert again.content == first[fmt].content, (fmt, _zip_diff(first[fmt].content,
                                                                    again.content))


def _zip_diff(a: bytes, b: bytes) -> list[tuple[str, str, str]] | None:
    """Which entries of two zips (an XLSX) differ, and how: what a failure should say."""
    import zipfile

    try:
        za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    except zipfile.BadZipFile:
        return None
    out = []
    for ia, ib in zip(za.infolist(), zb.infolist(), strict=False):
        if (ia.filename, ia.date_time, ia.CRC) != (ib.filename, ib.date_time, ib.CRC):
            da, db = za.read(ia), zb.read(ib)
            at = next((i for i, (x, y) in enumerate(zip(da, db, strict=False)) if x != y),
                      min(len(da), len(db)))
            out.append((f"{ia.filename} {ia.date_time}", da[max(at - 60, 0):at + 60].decode(
                "utf-8", "replace"), db[max(at - 60, 0):at + 60].decode("utf-8", "replace")))
    return out


def test_the_cache_is_lru_and_bounded(app_client, world, fresh_cache, monkeypatch):
    from jmgeo.downloads import cache

    root = fresh_cache()
    monkeypatch.setattr(cache, "GRACE", 0.0)
    tags = {}
    for fmt in ("csv", "geojson", "gpkg"):
        tags[fmt] = get(app_client, world["unrelated"], format=fmt).headers["etag"]
    entries = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    assert entries == {t.strip('"') for t in tags.values()}
    old = time.time() - 3600
    for i, fmt in enumerate(("csv", "geojson", "gpkg")):  # csv the least recently used
        os.utime(root / tags[fmt].strip('"') / cache.META, (old + i, old + i))
    assert get(app_client, world["unrelated"], format="csv").status_code == 200  # a hit
    gpkg_size = sum(f.stat().st_size for f in (root / tags["gpkg"].strip('"')).iterdir())
    csv_size = sum(f.stat().st_size for f in (root / tags["csv"].strip('"')).iterdir())
    assert cache.evict(gpkg_size + csv_size) >= 1
    left = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    assert tags["geojson"].strip('"') not in left and tags["csv"].strip('"') in left


def test_no_cache_still_downloads_and_leaves_no_file(app_client, world, fresh_cache,
                                                     monkeypatch):
    monkeypatch.setenv("JMGEO_DOWNLOAD_CACHE_MAX_MB", "0")
    root = fresh_cache()
    r = get(app_client, world["unrelated"], format="shp")
    assert r.status_code == 200 and zipfile.is_zipfile(io.BytesIO(r.content))
    assert [p for p in root.iterdir()] == []


def test_xlsx_dates_are_fixed_whatever_the_namespace_prefix(tmp_path):
    """openpyxl writes core.xml's dates under the prefix lxml has registered for Dublin
    Core terms: ``dcterms``, or ``dct`` once OWSLib was imported (``owslib.etree`` does it
    at import: the full test run, a server that imported it) — both must be set to the
    version's time, or a rebuilt download differs from its ETag (the flake of
    ``test_every_format_is_rebuilt_byte_identical`` in full runs)."""
    import datetime as dt
    import zipfile

    from jmgeo.downloads.stamp import normalise_zip

    when = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    for prefix in ("dcterms", "dct"):
        core = (f'<cp:coreProperties xmlns:{prefix}="http://purl.org/dc/terms/"><'
                f'{prefix}:created xsi:type="{prefix}:W3CDTF">2026-12-02T07:08:36Z</'
                f'{prefix}:created><{prefix}:modified xsi:type="{prefix}:W3CDTF">'
                f'2026-12-02T07:08:37Z</{prefix}:modified></cp:coreProperties>')
        path = tmp_path / f"{prefix}.xlsx"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("docProps/core.xml", core)
        normalise_zip(path, when)
        with zipfile.ZipFile(path) as z:
            text = z.read("docProps/core.xml").decode()
        assert text.count("2026-05-04T03:02:01Z") == 2 and "2026-12-02" not in text, text
