"""Loaders: files departments hand over → the framework (EPSG:4490), checked, versioned.

Every broken file of the corpus (made by code in ``test_loaders_files``) must end in exit 2 with
ONE bilingual line (Chinese first) naming the file, the problem and the fix — and leave
the database exactly as it was. Real-world files come from the ``realworld_data`` setting
and are skipped (with the reason) where absent.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
import shapely
from test_loaders_files import (
    corpus,
    feature,
    geojson,
    parcels_shp,
    points,
    squares,
    write,
    zip_dir,
)

from jmgeo.settings import get_settings
from layers import registry
from loaders.errors import LoaderError
from loaders.pipeline import LoadOptions, load

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def dsn(database_url: str) -> str:
    from layers.departments import ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
    return database_url


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return registry.counts(conn)


def rows(dsn: str, layer: str, cols: str = "*") -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        table = conn.execute(
            "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id AND "
            "v.version = l.current_version WHERE l.name = %s", (layer,)).fetchone()[0]
        return conn.execute(f"SELECT {cols} FROM {table} ORDER BY fid").fetchall()


def opts(layer: str, **kw) -> LoadOptions:
    base = {"dept": "gtzy", "layer": layer, "theme": "land", "sharing": "open"}
    return LoadOptions(**{**base, **kw})


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from jmgeo.cli import main

    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_clear_line(err: str, filename: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("jmgeo: ")
    zh, sep, en = line.partition(" / ")
    assert sep, line
    assert CJK.search(zh), "Chinese comes first"
    assert filename in zh and filename in en, f"the message names the file: {line}"
    assert "fix" in en or "处理办法" in zh or "use" in en, line


# -- the broken-file corpus -------------------------------------------------------------
CORPUS = ["truncated_shp", "missing_dbf", "missing_shx", "missing_shp", "empty_geojson",
          "empty_shp", "wrong_encoding", "self_intersection", "mixed_types",
          "no_prj_ambiguous", "swapped_lonlat", "zip_traversal", "zip_bomb", "huge_field",
          "3d", "measured"]


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict:
    return corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("case", CORPUS)
def test_broken_file_exits_2_with_one_clear_message_and_changes_nothing(
        case, broken, dsn, capsys):
    path, extra, code = broken[case]
    before = counts(dsn)
    rc, out, err = cli(["load", str(path), "--dept", "gtzy", "--layer", "tload_broken",
                        "--theme", "land", "--sharing", "open", "--no-progress", *extra],
                       capsys)
    assert rc == 2, (out, err)
    assert_one_clear_line(err, path.name)
    assert counts(dsn) == before
    with pytest.raises(LoaderError) as exc:  # the API answers with the same code
        load(path, opts("tload_broken", strict="--strict" in extra), dsn=dsn, progress=False)
    assert exc.value.code == code


def test_zip_traversal_extracts_nothing(broken, tmp_path):
    from loaders.source import safe_extract

    path, _, _ = broken["zip_traversal"]
    dest = tmp_path / "x" / "y"
    dest.mkdir(parents=True)
    with pytest.raises(LoaderError):
        safe_extract(path, dest)
    assert not list(tmp_path.rglob("*.shp"))


def test_zip_bomb_with_lying_header_is_stopped_while_extracting(tmp_path, monkeypatch):
    """The header may claim a small size: bytes actually written are counted too."""
    import loaders.source as source

    z = tmp_path / "liar.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dbf", b"\0" * (8 << 20))
    monkeypatch.setattr(source, "ZIP_RATIO_MIN_SIZE", 1 << 20)
    monkeypatch.setattr(get_settings(), "zip_max_bytes", 4 << 20)
    with pytest.raises(LoaderError) as exc:
        source.safe_extract(z, tmp_path / "out")
    assert exc.value.code == "zip_bomb"


def test_self_intersections_are_repaired_and_listed_without_strict(broken, dsn):
    path, _, _ = broken["self_intersection"]
    report = load(path, opts("tload_repaired"), dsn=dsn, progress=False)
    assert report["counts"]["repaired"] == 1
    assert report["repairs"][0]["feature"] == 1
    assert "Self-intersection" in report["repairs"][0]["problem"]
    (valid, gtype), = rows(dsn, "tload_repaired", "ST_IsValid(geom), GeometryType(geom)")
    assert valid and gtype == "MULTIPOLYGON"


def test_3d_loads_2d_with_force_2d_and_reports_dropped_z(broken, dsn):
    path, _, _ = broken["3d"]
    report = load(path, opts("tload_force2d", force_2d=True), dsn=dsn, progress=False)
    assert report["counts"]["dropped_z"] == 10
    assert any("--force-2d" in w for w in report["warnings"])
    assert all(r[0] == 2 for r in rows(dsn, "tload_force2d", "ST_NDims(geom)"))


def test_not_shared_needs_legal_basis_before_reading(dsn, tmp_path, capsys):
    p = parcels_shp(tmp_path / "a" / "宗地.shp", 5, crs=4490)
    before = counts(dsn)
    rc, _, err = cli(["load", str(p), "--dept", "rf", "--layer", "tload_secret", "--theme",
                      "civil_defence", "--sharing", "not_shared", "--no-progress"], capsys)
    assert rc == 2 and "--legal-basis" in err and "法律依据" in err
    rc, _, err = cli(["load", str(p), "--dept", "nosuch", "--layer", "tload_secret",
                      "--theme", "land", "--sharing", "open", "--no-progress"], capsys)
    assert rc == 2 and "nosuch" in err
    rc, _, err = cli(["load", str(p), "--dept", "gtzy", "--layer", "Bad-Name", "--theme",
                      "land", "--sharing", "open", "--no-progress"], capsys)
    assert rc == 2 and "Bad-Name" in err
    assert counts(dsn) == before


# -- encodings ---------------------------------------------------------------------------
def test_gbk_shapefile_without_cpg_loads_correct_chinese(dsn, tmp_path):
    p = parcels_shp(tmp_path / "gbk" / "宗地.shp", 30, encoding="GBK", cpg=False, crs=4547)
    assert not p.with_suffix(".cpg").exists()
    report = load(p, opts("tload_gbk"), dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert report["encoding"]["source"] == "detected"
    assert report["crs"]["epsg"] == 4547
    got = rows(dsn, "tload_gbk", "qlr, dlmc")
    assert got[0] == ("北街村民陈", got[0][1]) or CJK.search(got[0][0])
    assert {r[1] for r in got} <= {"耕地", "林地", "住宅用地", "水域及水利设施用地"}
    with psycopg.connect(dsn) as conn:
        labels = conn.execute("SELECT field_labels FROM layer WHERE name = 'tload_gbk'"
                              ).fetchone()[0]
        comment = conn.execute(
            "SELECT col_description(to_regclass(%s), attnum) FROM pg_attribute WHERE "
            "attrelid = to_regclass(%s) AND attname = 'qlr'",
            (report["target"]["table"], report["target"]["table"])).fetchone()[0]
    assert labels["qlr"] == "权利人" and comment == "权利人"


def test_utf8_without_cpg_is_detected_as_utf8(dsn, tmp_path):
    p = parcels_shp(tmp_path / "u8" / "宗地.shp", 20, encoding="UTF-8", cpg=False, crs=4490)
    report = load(p, opts("tload_utf8"), dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "UTF-8"
    assert report["encoding"]["source"] == "detected"
    assert all(CJK.search(r[0]) for r in rows(dsn, "tload_utf8", "qlr"))


def test_encoding_option_overrides_and_garbage_is_refused(dsn, tmp_path):
    p = parcels_shp(tmp_path / "ov" / "宗地.shp", 10, encoding="GBK", cpg=False, crs=4490)
    report = load(p, opts("tload_encopt", encoding="GB18030", dry_run=True), dsn=dsn,
                  progress=False)
    assert report["encoding"]["source"] == "option"
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_encopt", encoding="UTF-8"), dsn=dsn, progress=False)
    assert exc.value.code == "wrong_encoding" and "GBK" in str(exc.value)


# -- CRS ------------------------------------------------------------------------------------
def test_gcj02_declared_lands_within_a_metre(dsn, tmp_path):
    from spatial import webcrs

    lon, lat = points(40, 7)
    glon, glat = webcrs.wgs84_to_gcj02(lon, lat)
    feats = [feature({"type": "Point", "coordinates": [float(a), float(b)]}, n=i)
             for i, (a, b) in enumerate(zip(glon, glat, strict=True))]
    p = geojson(tmp_path / "gcj" / "站点.geojson", feats)
    report = load(p, opts("tload_gcj", src_crs="gcj02"), dsn=dsn, progress=False)
    assert report["crs"]["kind"] == "gcj02"
    got = np.array(rows(dsn, "tload_gcj", "ST_X(ST_GeometryN(geom, 1)), "
                                          "ST_Y(ST_GeometryN(geom, 1))"))
    dx = (got[:, 0] - lon) * 111_320 * np.cos(np.radians(lat))
    dy = (got[:, 1] - lat) * 110_574
    assert np.max(np.hypot(dx, dy)) < 1.0
    # the same file taken as plain lon/lat would be hundreds of metres off
    assert np.max(np.hypot((glon - lon) * 111_320 * np.cos(np.radians(lat)),
                           (glat - lat) * 110_574)) > 300


def test_projected_sources_reproject_to_4490(dsn, tmp_path):
    lon, lat = points(20, 9)
    for code in (4547, 4546, 4526, 3857):
        p = parcels_shp(tmp_path / f"c{code}" / "宗地.shp", 20, crs=code, seed=9,
                        encoding="UTF-8", cpg=True)
        layer = f"tload_crs_{code}"
        report = load(p, opts(layer), dsn=dsn, progress=False)
        assert report["crs"]["epsg"] == code
        got = np.array(rows(dsn, layer, "ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom))"))
        assert np.allclose(got[:, 0], lon, atol=1e-6) and np.allclose(got[:, 1], lat, atol=1e-6)


def test_prefixed_gk_without_prj_names_the_candidates(dsn, tmp_path):
    p = parcels_shp(tmp_path / "pre" / "宗地.shp", 20, crs=4526)
    p.with_suffix(".prj").unlink()
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_prefixed"), dsn=dsn, progress=False)
    msg = str(exc.value)
    assert exc.value.code == "ambiguous_crs"
    assert "EPSG:4526" in msg and "EPSG:2362" in msg and "--src-crs" in msg
    report = load(p, opts("tload_prefixed", src_crs="EPSG:4526"), dsn=dsn, progress=False)
    assert report["counts"]["outside"] == 0


def test_wrong_crs_is_refused_when_most_features_fall_outside(dsn, tmp_path):
    p = parcels_shp(tmp_path / "wrong" / "宗地.shp", 20, crs=4547)
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_wrongcrs", src_crs="EPSG:4546"), dsn=dsn, progress=False)
    assert exc.value.code == "outside_jiangmen"
    assert "EPSG:4547" in str(exc.value)  # names the CRS that would fit


def test_csv_lonlat_gbk_with_dates_and_leading_zeros(dsn, tmp_path):
    lon, lat = points(12, 11)
    lines = ["名称,经度,纬度,联系电话,建成日期,容量"]
    lines += [f"人防工程{i},{a:.6f},{b:.6f},0750{i:07d},2001-0{1 + i % 9}-15,{100 + i}"
              for i, (a, b) in enumerate(zip(lon, lat, strict=True))]
    p = tmp_path / "shelters.csv"
    p.write_bytes("\r\n".join(lines).encode("gbk"))
    report = load(p, opts("tload_csv", dept="rf", theme="civil_defence",
                          sharing="not_shared", legal_basis="《中华人民共和国人民防空法》",
                          key="名称", sensitive={"联系电话": "phone"}),
                  dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    types = {f["column"]: f["type"] for f in report["fields"]}
    assert types == {"name": "text", "phone": "text", "built_date": "date",
                     "capacity": "bigint"}
    name, phone, built = rows(dsn, "tload_csv", "name, phone, built_date")[0]
    assert name == "人防工程0" and phone == "07500000000" and str(built) == "2001-01-15"
    with psycopg.connect(dsn) as conn:
        sens = conn.execute("SELECT sensitive_fields FROM layer WHERE name = 'tload_csv'"
                            ).fetchone()[0]
    assert sens == {"phone": "phone"}


def test_geopackage_layers_must_be_chosen(dsn, tmp_path):
    p = tmp_path / "two.gpkg"
    lon, lat = points(5, 12)
    write(p, shapely.points(lon, lat), {"name": np.array(list("abcde"))}, layer="wells")
    write(p, squares(lon, lat), {"name": np.array(list("abcde"))}, layer="plots",
          append=False)
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_gpkg"), dsn=dsn, progress=False)
    assert exc.value.code == "several_layers" and "wells" in str(exc.value)
    report = load(p, opts("tload_gpkg", source_layer="plots"), dsn=dsn, progress=False)
    assert report["target"]["geometry_type"] == "MultiPolygon"


# -- versions, rollback, dry run ---------------------------------------------------------------
def test_dry_run_reports_fully_and_changes_nothing(dsn, tmp_path, capsys):
    p = parcels_shp(tmp_path / "dry" / "宗地.shp", 25, crs=4547)
    before = counts(dsn)
    rc, out, err = cli(["load", str(p), "--dept", "gtzy", "--layer", "tload_dry", "--theme",
                        "land", "--sharing", "open", "--dry-run", "--no-progress"], capsys)
    assert rc == 0, err
    assert "DRY RUN" in out and "GBK" in out and "EPSG:4547" in out and "read 25" in out
    assert counts(dsn) == before


def test_rollback_restores_the_previous_version_exactly(dsn, tmp_path, capsys):
    a = parcels_shp(tmp_path / "v1" / "宗地.shp", 40, crs=4547, seed=21)
    b = parcels_shp(tmp_path / "v2" / "宗地.shp", 30, crs=4547, seed=22)
    r1 = load(a, opts("tload_versions", key="ZDDM"), dsn=dsn, progress=False)
    v1 = rows(dsn, "tload_versions", "fid, ST_AsEWKB(geom), zddm, qlr, dlmc, zdmj")
    r2 = load(b, opts("tload_versions", key="ZDDM"), dsn=dsn, progress=False)
    assert (r1["target"]["version"], r2["target"]["version"]) == (1, 2)
    diff = r2["key"]["diff"]
    assert diff["against_version"] == 1 and diff["removed"] == 10
    assert len(rows(dsn, "tload_versions", "fid")) == 30
    rc, out, err = cli(["layer", "history", "tload_versions"], capsys)
    assert rc == 0 and re.search(r"\*\s+2", out) and "+0 -10 ~" in out
    epoch = counts(dsn)["epoch"]
    rc, out, err = cli(["layer", "rollback", "tload_versions", "--to", "1"], capsys)
    assert rc == 0, err
    assert rows(dsn, "tload_versions", "fid, ST_AsEWKB(geom), zddm, qlr, dlmc, zdmj") == v1
    assert counts(dsn)["epoch"] > epoch
    rc, _, err = cli(["layer", "rollback", "tload_versions", "--to", "9"], capsys)
    assert rc == 2 and "[1, 2]" in err
    rc, out, _ = cli(["layer", "show", "tload_versions"], capsys)
    assert "权利人" in out and "current 1" in out


def test_key_must_be_unique(dsn, tmp_path):
    lon, lat = points(6, 30)
    p = write(tmp_path / "dup" / "d.shp", squares(lon, lat),
              {"CODE": np.array(["a", "b", "a", "c", "d", "d"])}, encoding="UTF-8")
    before = counts(dsn)
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_dupkey", key="CODE"), dsn=dsn, progress=False)
    assert exc.value.code == "key_not_unique" and "'a'" in str(exc.value)
    assert counts(dsn) == before


def test_layer_of_another_department_is_refused(dsn, tmp_path):
    p = parcels_shp(tmp_path / "own" / "宗地.shp", 5, crs=4490)
    load(p, opts("tload_owned"), dsn=dsn, progress=False)
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_owned", dept="sw"), dsn=dsn, progress=False)
    assert "gtzy" in str(exc.value)


# -- real-world files -------------------------------------------------------------------------
def realworld(folder: str) -> Path:
    root = get_settings().realworld_data
    path = root / folder
    if not path.is_dir():
        pytest.skip(f"real-world test data {path} is absent (setting JMGEO_REALWORLD_DATA)")
    return path


def test_realworld_gbk_without_cpg_no_prj(dsn):
    d = realworld("nfgis4m-provinces-bou2_4p")
    report = load(d / "bou2_4p.shp", opts("tload_rw_provinces", allow_outside=True),
                  dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert report["crs"]["source"] == "inferred" and report["crs"]["epsg"] == 4490
    assert report["counts"]["loaded"] == 925
    names = {r[0] for r in rows(dsn, "tload_rw_provinces", "name")}
    assert "广东省" in names


def test_realworld_utf8_without_cpg(dsn):
    d = realworld("utf8-without-cpg-china")
    report = load(d / "china.shp", opts("tload_rw_utf8", allow_outside=True), dsn=dsn,
                  progress=False)
    assert report["encoding"]["encoding"] == "UTF-8"
    assert report["encoding"]["source"] == "detected"
    text = " ".join(str(v) for r in rows(dsn, "tload_rw_utf8") for v in r[2:])
    assert "广东" in text


def test_realworld_missing_shp_is_refused_naming_it(dsn, capsys):
    d = realworld("missing-shp-county2004")
    before = counts(dsn)
    for target in (d, d / "county_2004.shp", d / "county_2004.dbf"):
        rc, _, err = cli(["load", str(target), "--dept", "gtzy", "--layer", "tload_rw_miss",
                          "--theme", "land", "--sharing", "open", "--no-progress"], capsys)
        assert rc == 2 and "county_2004.shp" in err and "缺少" in err
    assert counts(dsn) == before


def test_realworld_beijing54_lambert_warns_approximate(dsn):
    d = realworld("china400w-lambert-prefectures")
    report = load(d / "中国地州界.shp", opts("tload_rw_bj54", allow_outside=True), dsn=dsn,
                  progress=False)
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert report["crs"]["approximate"] is True
    assert any("APPROXIMATE" in w for w in report["warnings"])
    bbox = report["bbox"]
    assert 70 < bbox[0] < 80 and 130 < bbox[2] < 140  # China, in lon/lat


def test_realworld_chinese_file_name_survives_zip_and_cli(dsn, tmp_path, capsys):
    d = realworld("prefecture-points-2023")
    z = zip_dir(d, tmp_path / "地级市.zip")
    rc, out, err = cli(["load", str(z), "--dept", "gtzy", "--layer", "tload_rw_points",
                        "--theme", "framework", "--sharing", "open", "--allow-outside",
                        "--no-progress"], capsys)
    assert rc == 0, err
    assert "地级市点位数据.shp" in out and "GBK" in out


def test_realworld_gcj02_claiming_wgs84_loads_as_declared(dsn):
    d = realworld("claims-wgs84-is-gcj02-country")
    report = load(d / "country.shp", opts("tload_rw_gcj", allow_outside=True, dry_run=True),
                  dsn=dsn, progress=False)
    assert report["crs"]["source"] == "file" and report["crs"]["kind"] == "crs"
    assert any("gcj02" in w for w in report["warnings"])  # the hint, not a guess
    report = load(d / "country.shp", opts("tload_rw_gcj", allow_outside=True, dry_run=True,
                                          src_crs="gcj02"), dsn=dsn, progress=False)
    assert report["crs"]["kind"] == "gcj02"


# -- publishing through the OGC API and the upload endpoint ------------------------------------
def test_loaded_open_layer_is_served_by_ogc_api(dsn, tmp_path, app_client):
    p = parcels_shp(tmp_path / "ogc" / "宗地.shp", 15, crs=4547, encoding="GBK")
    load(p, opts("tload_ogc"), dsn=dsn, progress=False)
    secret = parcels_shp(tmp_path / "ogc2" / "宗地.shp", 5, crs=4547, encoding="GBK")
    load(secret, opts("tload_ogc_secret", dept="rf", sharing="not_shared",
                      legal_basis="《中华人民共和国人民防空法》"), dsn=dsn, progress=False)
    r = app_client.get("/ogc/collections/tload_ogc/items", params={"f": "json", "limit": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["features"]) == 15
    props = body["features"][0]["properties"]
    assert CJK.search(str(props.get("qlr")))
    ids = {c["id"] for c in app_client.get("/ogc/collections", params={"f": "json"}
                                           ).json()["collections"]}
    assert "tload_ogc" in ids and "tload_ogc_secret" not in ids
    assert app_client.get("/ogc/collections/tload_ogc_secret/items",
                          params={"f": "json"}).status_code == 404


@pytest.fixture(scope="module")
def upload_client(app_client):
    """The app as mounted for users (POST /layers/upload included)."""
    return app_client


@pytest.fixture(scope="module")
def gtzy_token(dsn) -> str:
    from layers.identity import create_key

    with psycopg.connect(dsn, autocommit=True) as conn:
        return create_key(conn, "tload-gtzy-gis", dept="gtzy")["token"]


def _zip_bytes(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in folder.iterdir():
            zf.write(p, p.name)
    return buf.getvalue()


def test_upload_api_requires_the_owner_department(upload_client, gtzy_token, dsn, tmp_path):
    p = parcels_shp(tmp_path / "up" / "宗地.shp", 12, crs=4547, encoding="GBK")
    files = {"file": ("宗地.zip", _zip_bytes(p.parent), "application/zip")}
    form = {"dept": "gtzy", "layer": "tload_upload", "theme": "land", "sharing": "open"}
    before = counts(dsn)
    r = upload_client.post("/layers/upload", files=files, data=form)
    assert r.status_code == 401 and CJK.search(r.json()["description"])
    auth = {"Authorization": f"Bearer {gtzy_token}"}
    r = upload_client.post("/layers/upload", files=files, data={**form, "dept": "sw"},
                           headers=auth)
    assert r.status_code == 403 and "gtzy" in r.json()["description"]
    assert counts(dsn) == before
    r = upload_client.post("/layers/upload", files=files, data={**form, "dry_run": "true"},
                           headers=auth)
    assert r.status_code == 200 and r.json()["dry_run"] is True
    assert counts(dsn) == before
    r = upload_client.post("/layers/upload", files=files, data=form, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["encoding"]["encoding"] == "GBK/GB18030"
    assert r.json()["options"]["loaded_by"] == "api:tload-gtzy-gis"
    bad = {"file": ("宗地.zip", _zip_bytes(p.parent)[:100], "application/zip")}
    r = upload_client.post("/layers/upload", files=bad, data=form, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "bad_zip"


# -- demo ------------------------------------------------------------------------------------------
def test_demo_layers_load_idempotently(dsn, tmp_path):
    from loaders.demo import load_demo_layers

    first = load_demo_layers(dsn, log=lambda *_: None, out=tmp_path / "demo")
    assert {r["target"]["layer"] for r in first if not r.get("unchanged")} >= {
        "land_parcels", "rivers", "reservoirs", "roads", "bus_stops", "civil_shelters"}
    before = counts(dsn)
    second = load_demo_layers(dsn, log=lambda *_: None, out=tmp_path / "demo")
    assert all(r.get("unchanged") for r in second)
    assert counts(dsn) == before
    parcels = next(r for r in first if r.get("target", {}).get("layer") == "land_parcels")
    assert parcels["encoding"]["encoding"] == "GBK/GB18030"
    assert parcels["crs"]["epsg"] == 4547
    with psycopg.connect(dsn) as conn:
        classes = dict(conn.execute(
            "SELECT name, sharing_class FROM layer WHERE name IN ('land_parcels', 'rivers', "
            "'roads', 'bus_stops', 'civil_shelters')").fetchall())
        sens = conn.execute("SELECT sensitive_fields FROM layer WHERE name = 'land_parcels'"
                            ).fetchone()[0]
    assert set(classes.values()) == {"open", "unconditional", "conditional", "not_shared"}
    assert sens == {"owner_name": "person_name", "phone": "phone"}


def test_geotiff_becomes_a_cog_raster_layer(dsn, tmp_path, capsys):
    import rasterio
    from rasterio.transform import from_origin

    x0, y0 = 390_000.0, 2_500_000.0  # EPSG:4547, near 江门 city centre
    dem = (np.arange(200 * 150, dtype="float32").reshape(150, 200) % 97) + 10
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=150, count=1,
                       dtype="float32", crs="EPSG:4547", nodata=-9999,
                       transform=from_origin(x0, y0, 30, 30)) as dst:
        dst.write(dem, 1)
    rc, out, err = cli(["load", str(path), "--dept", "gtzy", "--layer", "tload_dem",
                        "--theme", "land", "--sharing", "open", "--no-progress"], capsys)
    assert rc == 0, err
    assert "raster COG" in out
    with psycopg.connect(dsn) as conn:
        kind, table = conn.execute(
            "SELECT l.kind, v.table_name FROM layer l JOIN layer_version v ON "
            "v.layer_id = l.id AND v.version = l.current_version WHERE l.name = 'tload_dem'"
        ).fetchone()
    assert kind == "raster"
    try:
        with rasterio.open(table) as cog:
            assert cog.crs.to_epsg() == 4490
            assert cog.profile.get("tiled") or cog.block_shapes[0][0] == 512
            assert 112.9 < (cog.bounds.left + cog.bounds.right) / 2 < 113.2
    finally:  # keep the shared session database free of a raster other tests don't expect
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM layer WHERE name = 'tload_dem'")
        Path(table).unlink(missing_ok=True)


# -- more formats ---------------------------------------------------------------------------
@pytest.mark.parametrize("driver,name", [("KML", "站点.kml"), ("OpenFileGDB", "水务.gdb"),
                                         ("FlatGeobuf", "站点.fgb"), ("GPKG", "站点.gpkg")])
def test_other_gdal_formats_load(driver, name, dsn, tmp_path):
    lon, lat = points(8, 41)
    path = tmp_path / "fmt" / name
    crs = "EPSG:4326" if driver == "KML" else "EPSG:4490"
    kw = {"layer": "stations"} if driver != "KML" else {}
    write(path, shapely.points(lon, lat), {"name": np.array([f"站{i}" for i in range(8)])},
          driver=driver, crs=crs, gtype="Point", **kw)
    layer = "tload_fmt_" + driver.lower()
    target = zip_dir(path, tmp_path / "fmt.zip", arcprefix=name + "/") if path.is_dir() \
        else path
    report = load(target, opts(layer), dsn=dsn, progress=False)
    assert report["counts"]["loaded"] == 8
    got = sorted(r[0] for r in rows(dsn, layer, "name"))
    assert got == sorted(f"站{i}" for i in range(8))


def test_csv_with_wkt_column(dsn, tmp_path):
    lon, lat = points(5, 42)
    p = tmp_path / "wkt.csv"
    lines = ["id,wkt,名称"] + [f'{i},"POLYGON(({a} {b},{a + 0.001} {b},{a + 0.001} {b + 0.001},'
                               f'{a} {b}))",地块{i}' for i, (a, b) in enumerate(zip(lon, lat,
                                                                                 strict=True))]
    p.write_text("\n".join(lines), encoding="utf-8")
    report = load(p, opts("tload_wkt"), dsn=dsn, progress=False)
    assert report["target"]["geometry_type"] == "MultiPolygon"
    assert report["counts"]["loaded"] == 5


def test_cpg_claiming_gbk_for_utf8_text_is_refused(dsn, tmp_path):
    p = parcels_shp(tmp_path / "lie" / "宗地.shp", 10, encoding="UTF-8", cpg=False, crs=4490)
    p.with_suffix(".cpg").write_text("GBK")
    with pytest.raises(LoaderError) as exc:
        load(p, opts("tload_cpglie"), dsn=dsn, progress=False)
    assert exc.value.code == "wrong_encoding" and "UTF-8" in exc.value.en


def test_progress_bar_on_stderr():
    from loaders.progress import Progress

    out = io.StringIO()
    bar = Progress("装载 / loading x.shp", total=1000, stream=out, min_seconds=0)
    bar.last = -10
    bar.update(500)
    bar.close()
    text = out.getvalue()
    assert "500/1,000" in text and "50%" in text and "features in" in text


# -- the demo through the OGC API, per caller ----------------------------------------------------
def test_demo_layers_are_listed_only_for_callers_allowed(dsn, app_client, tmp_path):
    from layers.identity import create_key
    from loaders.demo import load_demo_layers

    load_demo_layers(dsn, log=lambda *_: None, out=tmp_path / "demo")
    with psycopg.connect(dsn, autocommit=True) as conn:
        tokens = {d: create_key(conn, f"tload-demo-{d}", dept=d)["token"]
                  for d in ("jt", "rf", "hb")}

    def listed(token: str | None) -> set[str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = app_client.get("/ogc/collections", params={"f": "json"}, headers=headers)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["collections"]}

    demo = {"land_parcels", "rivers", "reservoirs", "roads", "bus_stops", "civil_shelters"}
    assert listed(None) & demo == {"rivers", "reservoirs", "bus_stops"}
    assert listed(tokens["hb"]) & demo == {"rivers", "reservoirs", "bus_stops", "roads"}
    assert listed(tokens["jt"]) & demo == {"rivers", "reservoirs", "bus_stops", "roads"}
    assert listed(tokens["rf"]) & demo == {"rivers", "reservoirs", "bus_stops", "roads",
                                           "civil_shelters"}
    r = app_client.get("/ogc/collections/bus_stops/items", params={"f": "json", "limit": 5})
    assert r.status_code == 200 and len(r.json()["features"]) == 5


def test_zip_with_gbk_member_names_from_windows(dsn, tmp_path):
    """Windows zip tools write GBK names without the UTF-8 flag: they must still read."""
    src = parcels_shp(tmp_path / "win" / "宗地.shp", 6, crs=4490, encoding="UTF-8", cpg=True)
    z = tmp_path / "windows.zip"
    with zipfile.ZipFile(z, "w") as zf:  # ASCII placeholders of the same byte length
        for part in src.parent.iterdir():
            zf.write(part, "ABCD" + part.suffix)
    raw = z.read_bytes().replace(b"ABCD.", "宗地".encode("gbk") + b".")
    z.write_bytes(raw)
    report = load(z, opts("tload_gbkzip"), dsn=dsn, progress=False)
    assert report["source"]["file"] == "windows.zip!宗地.shp"
    assert report["counts"]["loaded"] == 6


def test_xian80_with_configured_parameters_is_not_approximate(dsn, tmp_path, monkeypatch,
                                                              fresh_settings):
    p = parcels_shp(tmp_path / "x80" / "宗地.shp", 10, crs=2383)
    report = load(p, opts("tload_xian80", dry_run=True), dsn=dsn, progress=False)
    assert report["crs"]["approximate"] is True
    assert any("JMGEO_XIAN80_TOWGS84" in w for w in report["warnings"])
    monkeypatch.setenv("JMGEO_XIAN80_TOWGS84", "-10.2,95.3,54.1,0,0,0,0")
    fresh_settings()
    report = load(p, opts("tload_xian80", dry_run=True), dsn=dsn, progress=False)
    assert report["crs"]["approximate"] is False
    assert "towgs84" in report["crs"]["crs"]


def test_nul_bytes_in_text_are_dropped_not_fatal(dsn, tmp_path):
    p = tmp_path / "nul.csv"
    p.write_bytes("name,lon,lat\n甲\x00乙,113.0,22.5\n".encode())
    load(p, opts("tload_nul"), dsn=dsn, progress=False)
    assert rows(dsn, "tload_nul", "name") == [("甲乙",)]


def test_list_layers_and_json_report(dsn, tmp_path, capsys):
    import json

    p = tmp_path / "multi.gpkg"
    lon, lat = points(4, 50)
    write(p, shapely.points(lon, lat), {"name": np.array(list("abcd"))}, layer="wells")
    write(p, squares(lon, lat), {"name": np.array(list("abcd"))}, layer="plots")
    rc, out, _ = cli(["load", str(p), "--list-layers"], capsys)
    assert rc == 0 and "wells\tPoint" in out and "plots\tPolygon" in out
    rc, out, err = cli(["load", str(p), "--source-layer", "wells", "--dept", "gtzy",
                        "--layer", "tload_json", "--theme", "land", "--sharing", "open",
                        "--json", "--no-progress", "--dry-run"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["source"]["layer"] == "wells" and report["counts"]["loaded"] == 4


def test_character_cut_by_dbf_field_width_is_reported_not_fatal(dsn, tmp_path):
    lon, lat = points(3, 60)
    p = write(tmp_path / "cut" / "cut.shp", shapely.points(lon, lat),
              {"NAME": np.array(["广东省江门市", "江门", "蓬江"])}, encoding="UTF-8")
    dbf = bytearray(p.with_suffix(".dbf").read_bytes())
    seg = "广东省江门市".encode()
    i = dbf.find(seg)
    dbf[i:i + len(seg)] = seg[:-2] + b"  "  # the last character cut after its first byte
    p.with_suffix(".dbf").write_bytes(bytes(dbf))
    report = load(p, opts("tload_cutchar"), dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "UTF-8"
    assert any("cut by the field width" in w for w in report["warnings"])
    assert rows(dsn, "tload_cutchar", "name")[0][0].startswith("广东省江门")


def test_longest_layer_name_keeps_versions_apart(dsn, tmp_path):
    name = "tload_" + "x" * 57  # 63 characters, the maximum
    p = parcels_shp(tmp_path / "long" / "宗地.shp", 5, crs=4490)
    for version in (1, 2):
        report = load(p, opts(name), dsn=dsn, progress=False)
        assert report["target"]["version"] == version
        assert len(report["target"]["table"].split(".")[1]) <= 63
