"""Demo department layers, generated deterministically and loaded through the real loader.

Each generator writes the kind of file the department really hands over into
``var/demo/`` — so the demo exercises the loader's encoding and CRS handling:

| layer            | dept | file                                            | sharing        |
| ---------------- | ---- | ----------------------------------------------- | -------------- |
| land_parcels     | gtzy | Shapefile, GBK, **no .cpg**, CGCS2000 GK CM 114E | conditional    |
| rivers           | sw   | GeoPackage, CGCS2000 GK zone 38 with prefix      | open           |
| reservoirs       | sw   | Shapefile, UTF-8 with .cpg, EPSG:4490           | open           |
| roads            | jt   | Shapefile, UTF-8, CGCS2000 GK CM 111E            | unconditional  |
| bus_stops        | jt   | GeoJSON in **GCJ-02** (``--src-crs gcj02``)      | open           |
| civil_shelters   | rf   | CSV (UTF-8 BOM, Excel) lon/lat                   | not_shared     |
| enterprises      | scjg | **table**: GBK database-export CSV, USCC key     | conditional    |

``enterprises`` (企业名录 of 市场监督管理局) is a *table* resource: records without
geometry keyed by 统一社会信用代码 (valid check characters), 法定代表人电话 sensitive.
Geometries are sampled inside the county polygons in the ``region`` table (falling back
to Jiangmen's land box when no polygons are loaded), so the extent check passes.
Loading is idempotent: a layer whose generated files (and options) did not change keeps
its current version (the content hash is stored in each version's report).
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyogrio.raw
import shapely

from jmgeo.settings import get_settings
from loaders.pipeline import LoadOptions, load
from spatial import webcrs
from spatial.crs import get_transformer

SEED = 440700
COUNTIES = ("440703", "440704", "440705", "440781", "440783", "440784", "440785")
COUNTY_NAMES = {"440703": "蓬江区", "440704": "江海区", "440705": "新会区", "440781": "台山市",
                "440783": "开平市", "440784": "鹤山市", "440785": "恩平市"}
SURNAMES = "陈李黄梁张林吴谭何刘关冯余甄伍邝"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
LAND_USES = ("耕地", "园地", "林地", "草地", "商服用地", "工矿仓储用地", "住宅用地",
             "公共管理与公共服务用地", "交通运输用地", "水域及水利设施用地", "其他土地")
CIVIL_DEFENCE_LAW = "《中华人民共和国人民防空法》第十四条、第二十条；《广东省实施〈中华人民共和国人民防空法〉办法》"


def demo_dir() -> Path:
    return get_settings().var_dir / "demo"


# -- sampling inside the city ---------------------------------------------------------
def sample_points(conn: psycopg.Connection | None, n: int, seed: int,
                  counties: tuple[str, ...] = COUNTIES) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """n points (lon, lat, county code) inside the county polygons, deterministic."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(counties, n)
    lon = np.empty(n)
    lat = np.empty(n)
    for code in counties:
        idx = np.flatnonzero(codes == code)
        if not len(idx):
            continue
        pts = None
        if conn is not None:
            row = conn.execute(
                "SELECT ST_AsBinary(ST_GeneratePoints(ST_Buffer(geom, -0.005), %s, %s)) "
                "FROM region WHERE code = %s AND valid_to IS NULL AND geom IS NOT NULL",
                (len(idx), seed % 100000 + int(code[-2:]), code)).fetchone()
            if row and row[0]:
                pts = shapely.get_coordinates(shapely.from_wkb(bytes(row[0])))
        if pts is None or len(pts) < len(idx):
            pts = np.column_stack([rng.uniform(112.3, 113.0, len(idx)),
                                   rng.uniform(22.1, 22.7, len(idx))])
        lon[idx], lat[idx] = pts[:len(idx), 0], pts[:len(idx), 1]
    return lon, lat, codes


def _names(rng: np.random.Generator, n: int) -> list[str]:
    s, g1, g2 = rng.integers(0, 1000, (3, n))
    return [SURNAMES[a % len(SURNAMES)] + GIVEN[b % len(GIVEN)] + GIVEN[c % len(GIVEN)]
            for a, b, c in zip(s, g1, g2, strict=True)]


def _phones(rng: np.random.Generator, n: int) -> list[str]:
    return [f"13{d:09d}" for d in rng.integers(0, 10 ** 9, n)]


def _write(path: Path, geoms: np.ndarray, fields: dict[str, Any], *, driver: str, crs: str | None,
           encoding: str | None = None, layer: str | None = None, gtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # formats such as GeoPackage stamp the write time into the file: only rewrite when the
    # generated data changed, so an unchanged demo keeps byte-identical files
    digest = hashlib.sha256(repr((driver, crs, encoding, layer, gtype)).encode())
    digest.update(b"".join(shapely.to_wkb(geoms)))
    for k, v in fields.items():
        digest.update(k.encode() + repr(np.asarray(v).tolist()).encode())
    stamp = path.parent / (path.name + ".datahash")
    if path.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    for old in path.parent.glob(path.stem + ".*"):
        old.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "crs was not provided": as web maps export it
        pyogrio.raw.write(str(path), shapely.to_wkb(geoms),
                          [np.asarray(v) for v in fields.values()], list(fields),
                          driver=driver, crs=crs, encoding=encoding, layer=layer,
                          geometry_type=gtype)
    if path.suffix == ".shp" and encoding == "GBK":
        # the way land systems hand it over: GBK, and nothing says so (no .cpg, no LDID)
        path.with_suffix(".cpg").unlink(missing_ok=True)
        with open(path.with_suffix(".dbf"), "r+b") as fh:
            fh.seek(29)
            fh.write(b"\x00")
    stamp.write_text(digest.hexdigest())


# -- generators -----------------------------------------------------------------------
def make_parcels(conn, out: Path, n: int = 5000) -> Path:
    """国土: land parcels, GBK Shapefile WITHOUT .cpg, CGCS2000 GK CM 114E (EPSG:4547)."""
    rng = np.random.default_rng(SEED + 1)
    lon, lat, codes = sample_points(conn, n, SEED + 1)
    x, y = get_transformer(4490, 4547).transform(lon, lat)
    w, h = rng.uniform(20, 150, n), rng.uniform(20, 150, n)
    skew = rng.uniform(-8, 8, n)
    ring = np.stack([np.stack([x - w / 2, y - h / 2], 1),
                     np.stack([x + w / 2, y - h / 2 + skew], 1),
                     np.stack([x + w / 2 + skew, y + h / 2], 1),
                     np.stack([x - w / 2, y + h / 2], 1),
                     np.stack([x - w / 2, y - h / 2], 1)], 1)
    geoms = shapely.polygons(ring)
    seq = np.arange(1, n + 1)
    fields = {
        "宗地代码": np.array([f"{c}{s:010d}" for c, s in zip(codes, seq, strict=True)]),
        "权利人": np.array(_names(rng, n)),
        "联系电话": np.array(_phones(rng, n)),
        "地类名称": rng.choice(LAND_USES, n),
        "行政区代码": codes,
        "宗地面积": np.round(shapely.area(geoms), 2),
        "登记日期": np.array([f"{yy}-{mm:02d}-{dd:02d}" for yy, mm, dd in zip(
            rng.integers(2000, 2026, n), rng.integers(1, 13, n), rng.integers(1, 29, n),
            strict=True)]),
    }
    path = out / "gtzy_land_parcels" / "宗地.shp"
    _write(path, geoms, fields, driver="ESRI Shapefile", crs="EPSG:4547", encoding="GBK",
           gtype="Polygon")
    return path


def _polyline(conn, rng, n_vertices: int, seed: int, counties) -> shapely.LineString:
    lon, lat, _ = sample_points(conn, n_vertices, seed, counties)
    order = np.argsort(lon)
    return shapely.linestrings(np.column_stack([lon[order], lat[order]]))


def make_rivers(conn, out: Path) -> Path:
    """水务: rivers, GeoPackage in CGCS2000 GK zone 38 WITH zone prefix (EPSG:4526)."""
    rng = np.random.default_rng(SEED + 2)
    rivers = [("潭江", "潭江流域", ("440785", "440783", "440781", "440705")),
              ("西江", "西江流域", ("440784", "440703", "440705")),
              ("江门河", "西江流域", ("440703", "440705")),
              ("镇海水", "潭江流域", ("440783",)),
              ("蚬冈水", "潭江流域", ("440783", "440785")),
              ("沙坪河", "西江流域", ("440784",)),
              ("台城河", "潭江流域", ("440781",)),
              ("礼乐河", "西江流域", ("440704", "440705"))]
    geoms = np.array([_polyline(conn, rng, 12, SEED + 20 + i, c)
                      for i, (_, _, c) in enumerate(rivers)], dtype=object)
    x, y = get_transformer(4490, 4526).transform(*shapely.get_coordinates(geoms).T)
    geoms = shapely.set_coordinates(geoms, np.column_stack([x, y]))
    fields = {"河流名称": np.array([r[0] for r in rivers]),
              "流域": np.array([r[1] for r in rivers]),
              "长度": np.round(shapely.length(geoms) / 1000, 2),
              "等级": rng.choice(["省管", "市管", "县管"], len(rivers))}
    path = out / "sw_rivers" / "河流.gpkg"
    _write(path, geoms, fields, driver="GPKG", crs="EPSG:4526", layer="rivers",
           gtype="LineString")
    return path


def make_reservoirs(conn, out: Path) -> Path:
    """水务: reservoirs, UTF-8 Shapefile with .cpg, EPSG:4490."""
    rng = np.random.default_rng(SEED + 3)
    res = [("大隆洞水库", "440781", 1.33e8), ("锦江水库", "440785", 4.05e8),
           ("大沙河水库", "440783", 2.58e8), ("镇海水库", "440783", 1.1e8),
           ("深井水库", "440781", 0.62e8), ("龙山水库", "440703", 0.15e8)]
    geoms = []
    for i, (_, code, cap) in enumerate(res):
        lon, lat, _ = sample_points(conn, 1, SEED + 30 + i, (code,))
        r = (cap / 1e8) ** 0.5 * 0.01
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        radius = r * rng.uniform(0.6, 1.0, 24)
        ring = np.column_stack([lon[0] + radius * np.cos(angles),
                                lat[0] + radius * np.sin(angles)])
        geoms.append(shapely.Polygon(ring))
    fields = {"名称": np.array([r[0] for r in res]),
              "区县": np.array([COUNTY_NAMES[r[1]] for r in res]),
              "库容": np.array([r[2] for r in res]),
              "类型": np.array(["大型" if r[2] >= 1e8 else "中型" for r in res])}
    path = out / "sw_reservoirs" / "水库.shp"
    _write(path, np.array(geoms, dtype=object), fields, driver="ESRI Shapefile",
           crs="EPSG:4490", encoding="UTF-8", gtype="Polygon")
    return path


def make_roads(conn, out: Path) -> Path:
    """交通: roads, UTF-8 Shapefile, CGCS2000 GK CM 111E (EPSG:4546)."""
    rng = np.random.default_rng(SEED + 4)
    named = ["江门大道", "五邑路", "迎宾大道", "港口路", "建设路", "胜利路", "发展大道",
             "西江路", "325国道", "沈海高速", "江鹤高速", "新台高速", "开阳高速", "中江高速"]
    n = 40
    names = named + [f"乡道Y{700 + i}" for i in range(n - len(named))]
    geoms = np.array([_polyline(conn, rng, 4, SEED + 40 + i,
                                (COUNTIES[i % len(COUNTIES)],)) for i in range(n)],
                     dtype=object)
    x, y = get_transformer(4490, 4546).transform(*shapely.get_coordinates(geoms).T)
    geoms = shapely.set_coordinates(geoms, np.column_stack([x, y]))
    grade = np.array(["高速公路" if "高速" in s else "国道" if "国道" in s else
                      "乡道" if s.startswith("乡道") else "城市主干道" for s in names])
    fields = {"名称": np.array(names), "等级": grade,
              "宽度": np.round(rng.uniform(6, 40, n), 1),
              "路面": rng.choice(["沥青", "水泥"], n),
              "长度": np.round(shapely.length(geoms) / 1000, 2)}
    path = out / "jt_roads" / "道路.shp"
    _write(path, geoms, fields, driver="ESRI Shapefile", crs="EPSG:4546", encoding="UTF-8",
           gtype="LineString")
    return path


def make_bus_stops(conn, out: Path, n: int = 300) -> tuple[Path, np.ndarray, np.ndarray]:
    """交通: bus stops as a web map exports them: GeoJSON in GCJ-02, no CRS said.

    Returns the path and the true CGCS2000 positions (tests check the round trip)."""
    rng = np.random.default_rng(SEED + 5)
    lon, lat, codes = sample_points(conn, n, SEED + 5)
    glon, glat = webcrs.wgs84_to_gcj02(lon, lat)
    geoms = shapely.points(glon, glat)
    fields = {"站点名称": np.array([f"{COUNTY_NAMES[c]}{i + 1}号站" for i, c in enumerate(codes)]),
              "线路": np.array([",".join(str(v) for v in sorted(set(rng.integers(1, 60, 3))))
                              for _ in range(n)]),
              "区县": np.array([COUNTY_NAMES[c] for c in codes])}
    path = out / "jt_bus_stops" / "公交站点_gcj02.geojson"
    _write(path, geoms, fields, driver="GeoJSON", crs=None, gtype="Point")
    return path, lon, lat


def make_shelters(conn, out: Path, n: int = 60) -> Path:
    """人防: civil-defence shelters, an Excel-style CSV (UTF-8 with BOM) with lon/lat."""
    rng = np.random.default_rng(SEED + 6)
    lon, lat, codes = sample_points(conn, n, SEED + 6)
    names = _names(rng, n)
    phones = _phones(rng, n)
    path = out / "rf_shelters" / "人防工程.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["名称", "地址", "经度", "纬度", "可容纳人数", "负责人", "联系电话", "建成日期"])
        for i in range(n):
            county = COUNTY_NAMES[codes[i]]
            w.writerow([f"{county}第{i + 1}号人防工程", f"江门市{county}{rng.integers(1, 300)}号",
                        f"{lon[i]:.6f}", f"{lat[i]:.6f}", int(rng.integers(200, 3000)),
                        names[i], phones[i],
                        f"{rng.integers(1995, 2024)}-{rng.integers(1, 13):02d}-"
                        f"{rng.integers(1, 29):02d}"])
    return path


INDUSTRIES = ("制造业", "批发和零售业", "建筑业", "住宿和餐饮业", "交通运输、仓储和邮政业",
              "信息传输、软件和信息技术服务业", "租赁和商务服务业", "农、林、牧、渔业")
FIRM_WORDS = ("五邑", "侨乡", "江海", "新会", "台山", "开平", "鹤山", "恩平", "银洲湖", "潭江")
FIRM_KINDS = ("五金制品", "电器", "食品", "建材", "物流", "科技", "贸易", "陈皮", "纺织", "摩托车配件")


def enterprise_records(n: int, seed: int = SEED + 7) -> list[list[str]]:
    """n enterprise records (企业名录) with valid 统一社会信用代码, deterministic."""
    from layers.departments import make_uscc

    rng = np.random.default_rng(seed)
    codes = rng.choice(COUNTIES, n)
    names = _names(rng, n)
    phones = _phones(rng, n)
    words, kinds = rng.integers(0, 1000, (2, n))
    capital = np.round(rng.lognormal(5, 1.2, n), 2)
    years, months, days = (rng.integers(1985, 2025, n), rng.integers(1, 13, n),
                           rng.integers(1, 29, n))
    industry = rng.choice(INDUSTRIES, n).tolist()
    status = rng.choice(["存续", "在业", "迁出", "注销"], n, p=[0.7, 0.2, 0.05, 0.05]).tolist()
    return [[make_uscc("91", str(codes[i]), f"{seed % 97:02d}{i:06d}"),
             f"江门市{FIRM_WORDS[words[i] % len(FIRM_WORDS)]}"
             f"{FIRM_KINDS[kinds[i] % len(FIRM_KINDS)]}有限公司（{i + 1}）",
             names[i], phones[i], f"{capital[i]:.2f}",
             f"{years[i]}-{months[i]:02d}-{days[i]:02d}", COUNTY_NAMES[codes[i]], industry[i],
             status[i], f"江门市{COUNTY_NAMES[codes[i]]}{rng.integers(1, 500)}号"]
            for i in range(n)]


ENTERPRISE_HEADER = ["统一社会信用代码", "企业名称", "法定代表人", "法定代表人电话", "注册资本（万元）",
                     "成立日期", "所属区县", "行业", "登记状态", "住所"]


def make_enterprises(out: Path, n: int = 200) -> Path:
    """市场监管: 企业名录 as a database export hands it over — GBK, every value quoted."""
    path = out / "scjg_enterprises" / "企业名录.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(ENTERPRISE_HEADER)
        w.writerows(enterprise_records(n))
    return path


# -- loading ----------------------------------------------------------------------------
def demo_layers(conn, out: Path) -> list[tuple[Path, LoadOptions]]:
    """Generate the files and say how each is loaded."""
    stops, _, _ = make_bus_stops(conn, out)
    return [
        (make_parcels(conn, out), LoadOptions(
            dept="gtzy", layer="land_parcels", theme="land", sharing="conditional",
            title="宗地（演示）", description="国土资源局宗地数据（演示数据，随机生成）",
            key="宗地代码", update_cycle="monthly",
            sensitive={"权利人": "person_name", "联系电话": "phone"})),
        (make_rivers(conn, out), LoadOptions(
            dept="sw", layer="rivers", theme="water", sharing="open", title="河流（演示）",
            description="水务局主要河流（演示数据）", update_cycle="yearly")),
        (make_reservoirs(conn, out), LoadOptions(
            dept="sw", layer="reservoirs", theme="water", sharing="open", title="水库（演示）",
            description="水务局大中型水库（演示数据）", key="名称", update_cycle="yearly")),
        (make_roads(conn, out), LoadOptions(
            dept="jt", layer="roads", theme="transport", sharing="unconditional",
            title="道路（演示）", description="交通运输局道路（演示数据）", update_cycle="quarterly")),
        (stops, LoadOptions(
            dept="jt", layer="bus_stops", theme="transport", sharing="open",
            title="公交站点（演示）", description="公交站点，源数据为高德GCJ-02坐标（演示数据）",
            src_crs="gcj02", update_cycle="monthly")),
        (make_shelters(conn, out), LoadOptions(
            dept="rf", layer="civil_shelters", theme="civil_defence", sharing="not_shared",
            legal_basis=CIVIL_DEFENCE_LAW, title="人防工程（演示）",
            description="人民防空工程（演示数据）", key="名称", update_cycle="yearly",
            sensitive={"负责人": "person_name", "联系电话": "phone"})),
        (make_enterprises(out), LoadOptions(
            dept="scjg", layer="enterprises", theme="enterprise", sharing="conditional",
            kind="table", key="统一社会信用代码", title="企业名录（演示）",
            description="市场监督管理局企业登记信息（演示数据，随机生成）", update_cycle="monthly",
            sensitive={"法定代表人电话": "phone"})),
    ]


def load_demo_layers(dsn: str | None = None, log: Callable[[str], None] = print,
                     out: Path | None = None) -> list[dict[str, Any]]:
    """Generate the demo files into ``var/demo`` and load them (idempotent)."""
    from jmgeo.settings import database_url
    from layers.departments import ensure_departments

    dsn = dsn or database_url()
    out = out or demo_dir()
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_departments(conn)
        plan = demo_layers(conn, out)
    reports = []
    for path, opts in plan:
        opts.skip_unchanged = True
        opts.loaded_by = "demo"
        report = load(path, opts, dsn=dsn, display=f"{path.parent.name}/{path.name}",
                      progress=False)
        reports.append(report)
        if report.get("unchanged"):
            log(f"demo layer {opts.layer}: unchanged (version {report['version']})")
        elif opts.kind == "table":
            log(f"demo table {opts.layer}: version {report['target']['version']}, "
                f"{report['counts']['loaded']} records ({report['encoding']['encoding']}, "
                f"key {opts.key})")
        else:
            c = report["counts"]
            log(f"demo layer {opts.layer}: version {report['target']['version']}, "
                f"{c['loaded']} features ({report['encoding']['encoding']}, "
                f"{report['crs']['crs']})")
    return reports
