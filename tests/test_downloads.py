"""Bulk downloads (批量下载): every format opened with GDAL (pyogrio) and compared to the
source table — count, attributes (Chinese text included), geometry within 1e-7° — plus
the policy: hidden layers 404 like nonexistent ones, masks, grant fields and regions,
region-limited downloads, audit, cache headers.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date

import pyogrio
import pytest
import shapely
from policy_fixtures import GRANT_FIELDS, create_callers, create_layers, layer_name

LAYER = "tdl_parcels"
TOL = 1e-7
LONG_A, LONG_B = "land_use_category_name", "land_use_category_code"
COLUMNS = ["dkbm", "dkmc", "qlr", "mj", LONG_A, LONG_B, "djrq", "sfjbnt", "zdsl", "bz"]


def _rows() -> list[dict]:
    out = []
    for i in range(25):
        taishan = i % 3 == 0
        lon = (112.75 if taishan else 113.05) + (i % 5) * 0.0101234567
        lat = (22.22 if taishan else 22.56) + (i // 5) * 0.0098765432
        d = 0.004123456
        ring = [(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d), (lon, lat)]
        out.append({
            "fid": i + 1,
            "wkt": "MULTIPOLYGON(((" + ", ".join(f"{x:.9f} {y:.9f}" for x, y in ring) + ")))",
            "county": "440781" if taishan else "440703",
            "dkbm": f"0{'440781' if taishan else '440703'}{i:04d}",
            "dkmc": ["北街地块", "白沙村委会东侧", "台城镇水步"][i % 3] + str(i),
            "qlr": ["陈大明", "李小红", "欧阳志强"][i % 3],
            "mj": None if i == 4 else round(100 + i * 12.345, 3),
            LONG_A: "耕地" if i % 2 else "林地",
            LONG_B: "0101" if i % 2 else "0301",
            "djrq": None if i == 5 else date(2020 + i % 5, 1 + i % 12, 1 + i % 28),
            "sfjbnt": None if i == 6 else bool(i % 2),
            "zdsl": i * 3,
            "bz": "含生僻字𠮷" if i == 7 else ("" if i == 8 else None if i == 9 else f"备注{i}"),
        })
    return out


ROWS = _rows()
BY_FID = {r["fid"]: r for r in ROWS}


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    from layers.registry import Column, create_data_table, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layers(conn)
        callers = create_callers(conn)
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            with conn.transaction():
                cols = [Column("dkbm", label="地块编码"), Column("dkmc", label="地块名称"),
                        Column("qlr", label="权利人"),
                        Column("mj", "double precision", label="面积"),
                        Column(LONG_A, label="地类名称"), Column(LONG_B, label="地类编码"),
                        Column("djrq", "date", label="登记日期"),
                        Column("sfjbnt", "boolean", label="是否基本农田"),
                        Column("zdsl", "integer", label="宗地数量"),
                        Column("bz", label="备注")]
                table = create_data_table(conn, LAYER, 1, "MultiPolygon", cols)
                for r in ROWS:
                    conn.execute(
                        f"INSERT INTO {table} (fid, geom, {', '.join(COLUMNS)}) VALUES "
                        f"(%s, ST_GeomFromText(%s, 4490), {', '.join(['%s'] * len(COLUMNS))})",
                        [r["fid"], r["wkt"], *[r[c] for c in COLUMNS]])
                publish(conn, layer=LAYER, version=1, table_name=table,
                        feature_count=len(ROWS), report={}, title="下载测试地块", dept="gtzy",
                        theme="land", sharing_class="unconditional",
                        sensitive_fields={"qlr": "person_name"},
                        field_labels={c.name: c.label for c in cols})
    return callers


@pytest.fixture(scope="module")
def client(app_client):
    """The app as mounted for users (downloads included)."""
    return app_client


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def get(client, layer, caller, **params):
    return client.get(f"/downloads/{layer}", params=params, headers=auth(caller))


def masked_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 2) + name[-1] if len(name) > 2 else name[0] + "*"


def expected(r: dict, col: str, masked: bool = True):
    value = r[col]
    if col == "qlr" and masked:
        return masked_name(value)
    return value


def check_geometry(got, fid: int) -> None:
    want = shapely.from_wkt(BY_FID[fid]["wkt"])
    if got.geom_type == "Polygon":  # a Shapefile does not tell single- from multi-part
        got = shapely.multipolygons([got])
    assert got.geom_type == "MultiPolygon"
    assert shapely.equals_exact(shapely.normalize(got), shapely.normalize(want), TOL), fid


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and a != a):
        return b is None or (isinstance(b, float) and b != b)
    if isinstance(b, float):
        return a == pytest.approx(b)
    return a == b


def norm(value):
    """pandas/GDAL value → plain Python (NaN/NaT → None, Timestamp → date)."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        return None if value != value else value.to_pydatetime().date()
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def check_frame(df, mapping: dict[str, str], gbk: bool = False, masked: bool = True,
                fids=None) -> None:
    """Compare a GeoDataFrame (index = fid) to ROWS through column ``mapping``."""
    fids = set(fids or BY_FID)
    assert set(df.index) == fids
    assert len(df) == len(fids)
    for fid, rec in df.iterrows():
        src = BY_FID[fid]
        check_geometry(rec["geometry"], fid)
        for col, name in mapping.items():
            want = expected(src, col, masked)
            got = norm(rec[name])
            if col == "sfjbnt" and got is not None:
                got = bool(got)
            if col == "bz" and want == "" and got is None:
                continue  # DBF cannot tell '' from NULL
            if gbk and isinstance(want, str):
                want = want.encode("gbk", errors="ignore").decode("gbk")  # GDAL drops them
            assert same(got, want), (fid, col, got, want)


def test_geopackage(client, world):
    r = get(client, LAYER, world["unrelated"], format="gpkg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    assert f'filename="{LAYER}.gpkg"' in r.headers["content-disposition"]
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "private, no-store"
    info = pyogrio.read_info(io.BytesIO(r.content))
    assert info["crs"] == "EPSG:4490"
    assert info["geometry_type"] == "MultiPolygon"
    df = pyogrio.read_dataframe(io.BytesIO(r.content), fid_as_index=True)
    check_frame(df, {c: c for c in COLUMNS})


def _unzip(content: bytes, tmp_path):
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path)
    return names


@pytest.mark.parametrize("fmt,encoding", [("shp", "UTF-8"), ("shp-gbk", "GBK")])
def test_shapefile(client, world, tmp_path, fmt, encoding):
    r = get(client, LAYER, world["unrelated"], format=fmt)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    names = _unzip(r.content, tmp_path)
    assert {f"{LAYER}{e}" for e in (".shp", ".shx", ".dbf", ".prj", ".cpg")} <= names
    assert (tmp_path / f"{LAYER}.cpg").read_text().strip() == encoding
    assert "China_2000" in (tmp_path / f"{LAYER}.prj").read_text()
    # long names shortened to ≤ 10 characters, uniquely, listed in fields.csv
    with open(tmp_path / "fields.csv", encoding="utf-8-sig") as fh:
        fields = {row["column"]: row for row in csv.DictReader(fh)}
    short = {c: fields[c]["shapefile_field"] for c in COLUMNS}
    assert short[LONG_A] == "land_use_c" and short[LONG_B] == "land_use_1"
    assert fields["dkmc"]["label"] == "地块名称"
    assert all(len(s) <= 10 for s in short.values())
    df = pyogrio.read_dataframe(tmp_path / f"{LAYER}.shp")  # decodes with the .cpg
    df = df.set_index(df["fid"].astype(int))
    check_frame(df, short, gbk=encoding == "GBK")
    if encoding == "GBK":
        dbf = (tmp_path / f"{LAYER}.dbf").read_bytes()
        assert "北街地块".encode("gbk") in dbf and "北街地块".encode() not in dbf
        assert "some characters cannot be represented in GBK" in r.headers["warning"]
    else:
        assert "北街地块".encode() in (tmp_path / f"{LAYER}.dbf").read_bytes()
        assert "warning" not in r.headers


def test_csv(client, world, tmp_path):
    r = get(client, LAYER, world["unrelated"], format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8 Chinese
    text = r.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["fid", *COLUMNS, "WKT"]
    assert len(rows) == len(ROWS)
    for row in rows:
        src = BY_FID[int(row["fid"])]
        assert row["dkbm"] == src["dkbm"]  # leading zero kept
        assert row["dkmc"] == src["dkmc"] and row["bz"] == (src["bz"] or "")
        assert row["qlr"] == masked_name(src["qlr"])
        check_geometry(shapely.from_wkt(row["WKT"]), int(row["fid"]))
    # GDAL opens it too, with the WKT column as geometry
    path = tmp_path / f"{LAYER}.csv"
    path.write_bytes(r.content)
    df = pyogrio.read_dataframe(path)
    assert len(df) == len(ROWS)
    for fid, geom in zip(df["fid"].astype(int), df.geometry, strict=True):
        check_geometry(geom, fid)


def test_csv_gbk_and_xlsx_of_a_layer(client, world):
    """Offered for layers too (issue 9): a WKT column carries the geometry."""
    import openpyxl

    r = get(client, LAYER, world["unrelated"], format="csv-gbk")
    assert r.status_code == 200, r.text
    assert not r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("gbk"))))
    assert list(rows[0]) == ["fid", *COLUMNS, "WKT"] and len(rows) == len(ROWS)
    for row in rows:
        src = BY_FID[int(row["fid"])]
        assert row["dkmc"] == src["dkmc"] and row["qlr"] == masked_name(src["qlr"])
        # 𠮷 is outside GBK: replaced, the rest of the text kept
        assert row["bz"] == (src["bz"] or "").replace("𠮷", "?")
        check_geometry(shapely.from_wkt(row["WKT"]), int(row["fid"]))
    r = get(client, LAYER, world["unrelated"], format="xlsx")
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    header, *cells = [list(x) for x in sheet.iter_rows(values_only=True)]
    assert header == ["fid", *COLUMNS, "WKT"] and len(cells) == len(ROWS)
    for values in cells:
        row = dict(zip(header, values, strict=True))
        src = BY_FID[row["fid"]]
        assert row["zdsl"] == src["zdsl"] and row["qlr"] == masked_name(src["qlr"])
        assert row["bz"] == (src["bz"] or None)  # 𠮷 kept; empty text reads back empty
        check_geometry(shapely.from_wkt(row["WKT"]), row["fid"])


def test_geojson(client, world):
    r = get(client, LAYER, world["unrelated"], format="geojson")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geo+json"
    fc = json.loads(r.content)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(ROWS)
    df = pyogrio.read_dataframe(io.BytesIO(r.content))
    assert len(df) == len(ROWS)
    for feat in fc["features"]:
        src = BY_FID[feat["id"]]
        check_geometry(shapely.geometry.shape(feat["geometry"]), feat["id"])
        p = feat["properties"]
        assert p["dkmc"] == src["dkmc"] and p["qlr"] == masked_name(src["qlr"])
        assert p["djrq"] == (src["djrq"].isoformat() if src["djrq"] else None)
        assert same(p["mj"], src["mj"]) and p["sfjbnt"] == src["sfjbnt"]
        assert p["bz"] == src["bz"]


def test_batches_keep_memory_flat(client, world, monkeypatch, tmp_path, fresh_settings):
    """Tiny batches (7 rows) give the same files: rows stream through, never all at once.
    (An empty download cache: the files are built here, not found.)"""
    from jmgeo.downloads import export

    monkeypatch.setenv("JMGEO_DOWNLOAD_CACHE_DIR", str(tmp_path / "cache"))
    fresh_settings()
    monkeypatch.setattr(export, "BATCH", 7)
    r = get(client, LAYER, world["unrelated"], format="gpkg")
    check_frame(pyogrio.read_dataframe(io.BytesIO(r.content), fid_as_index=True),
                {c: c for c in COLUMNS})
    fc = json.loads(get(client, LAYER, world["unrelated"], format="geojson").content)
    assert sorted(f["id"] for f in fc["features"]) == sorted(BY_FID)


def test_owner_gets_clear_values(client, world):
    r = get(client, LAYER, world["owner"], format="gpkg")
    df = pyogrio.read_dataframe(io.BytesIO(r.content), fid_as_index=True)
    check_frame(df, {c: c for c in COLUMNS}, masked=False)


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv", "geojson"])
def test_region_limited_download(client, world, fmt, tmp_path):
    r = get(client, LAYER, world["unrelated"], format=fmt, region="440781")
    assert r.status_code == 200, r.text
    assert f'filename="{LAYER}_440781' in r.headers["content-disposition"]
    taishan = {f for f, row in BY_FID.items() if row["county"] == "440781"}
    if fmt == "gpkg":
        fids = set(pyogrio.read_dataframe(io.BytesIO(r.content), fid_as_index=True).index)
    elif fmt == "shp":
        _unzip(r.content, tmp_path)
        fids = set(pyogrio.read_dataframe(tmp_path / f"{LAYER}.shp")["fid"].astype(int))
    elif fmt == "csv":
        fids = {int(row["fid"]) for row in csv.DictReader(
            io.StringIO(r.content.decode("utf-8-sig")))}
    else:
        fids = {f["id"] for f in json.loads(r.content)["features"]}
    assert fids == taishan


def test_grant_fields_and_region_intersected(client, world):
    cond = layer_name("conditional")
    gh = world["limited_grant"]  # grant: fields GRANT_FIELDS, region 440703
    fc = json.loads(get(client, cond, gh, format="geojson").content)
    assert {f["id"] for f in fc["features"]} == {1, 2}
    assert all(set(f["properties"]) == set(GRANT_FIELDS) for f in fc["features"])
    # the city contains the granted county: still only 蓬江区's rows
    fc = json.loads(get(client, cond, gh, format="geojson", region="440700").content)
    assert {f["id"] for f in fc["features"]} == {1, 2}
    # a region outside the grant: nothing
    fc = json.loads(get(client, cond, gh, format="geojson", region="440781").content)
    assert fc["features"] == []
    df = pyogrio.read_dataframe(io.BytesIO(get(client, cond, gh, format="gpkg").content),
                                fid_as_index=True)
    assert set(df.index) == {1, 2}
    assert set(df.columns) - {"geometry"} == set(GRANT_FIELDS)


@pytest.mark.parametrize("caller,layer", [
    ("anonymous", LAYER), ("anonymous", layer_name("conditional")),
    ("unrelated", layer_name("not_shared")), ("expired_grant", layer_name("conditional"))])
@pytest.mark.parametrize("params", [{"format": "gpkg"}, {"format": "csv"},
                                    {"format": "nonsense"}, {"region": "999999"}])
def test_hidden_layer_is_404_like_nonexistent(client, world, caller, layer, params):
    hidden = get(client, layer, world[caller], **params)
    missing = get(client, "tdl_never_existed", world[caller], **params)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert hidden.json()["code"] == "NotFound" and layer not in hidden.text
    assert set(hidden.headers) == set(missing.headers)


def test_bad_parameters_are_400_naming_them(client, world):
    # (xlsx was the example of an unsupported format; since issue 9 it is offered)
    r = get(client, LAYER, world["unrelated"], format="kml")
    assert r.status_code == 400 and r.json()["description"].startswith("format")
    r = get(client, LAYER, world["unrelated"], region="449999")
    assert r.status_code == 400 and r.json()["description"].startswith("region")


def test_non_open_download_is_audited(client, world, db):
    def rows():
        return db.execute("SELECT rows FROM audit_log WHERE layer = %s AND action = "
                          "'download' ORDER BY id DESC LIMIT 1", (LAYER,)).fetchone()

    n = db.execute("SELECT count(*) FROM audit_log WHERE action = 'download'").fetchone()[0]
    get(client, LAYER, world["unrelated"], format="csv", region="440781")
    assert rows()[0] == sum(1 for r in ROWS if r["county"] == "440781")
    get(client, LAYER, world["unrelated"], format="shp")
    assert rows()[0] == len(ROWS)
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'download'"
                      ).fetchone()[0] == n + 2
    # open data: no audit row, cacheable for anonymous callers
    r = get(client, layer_name("open"), world["anonymous"], format="geojson")
    assert r.status_code == 200
    assert r.headers["cache-control"].startswith("public")
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'download'"
                      ).fetchone()[0] == n + 2


def test_shapefile_names_and_text_checks():
    from jmgeo.downloads import TextCheck, shapefile_names

    assert shapefile_names(["dkmc", "land_use_category_name", "land_use_category_code",
                            "LAND_USE_C_x", "fid"]) == \
        ["dkmc", "land_use_c", "land_use_1", "LAND_USE_2", "fid_1"]
    import pyarrow as pa

    batch = pa.record_batch([pa.array(["地" * 85, "短"]), pa.array(["𠮷", None])],
                            names=["a", "b"])
    utf8, gbk = TextCheck("UTF-8"), TextCheck("GBK")
    utf8(batch)
    gbk(batch)
    assert utf8.too_long and not utf8.unencodable  # 255 UTF-8 bytes
    assert gbk.unencodable and not gbk.too_long  # 170 GBK bytes


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_no_audit_row_no_data(client, world, monkeypatch, fmt):
    import layers.audit

    def broken(*args, **kwargs):
        raise RuntimeError("audit database down")

    monkeypatch.setattr(layers.audit, "record_access", broken)
    r = get(client, LAYER, world["unrelated"], format=fmt)
    assert r.status_code == 503
    assert r.json()["code"] == "ServiceUnavailable"
