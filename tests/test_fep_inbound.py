"""前置机 inbound over real processes: a `jmgeo worker` harvests a drop-folder file and
publishes it; `jmgeo fep harvest` answers malformed files, wrong folders, Shapefile parts
and an interrupted harvest; ``GET /exchange/fep/receipts`` follows the access rules.

Every test has its own drop-folder root (``tmp_path``) and its own resources (first
version loaded by the loader, as `jmgeo load` does); settle time 0.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from exchange_fixtures import make_callers
from test_loaders_files import parcels_shp

from conftest import REPO, stop_process
from layers import registry
from loaders.pipeline import LoadOptions, load

_SEQ = itertools.count(1)


def _name(tag: str) -> str:
    return f"tfep_{tag}_{next(_SEQ)}_{os.getpid() % 10000}"


def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["编码", "名称", "电话"])
        w.writerows(rows)
    return path


ROWS = [("A001", "甲企业", "13800000001"), ("A002", "乙企业", "13800000002"),
        ("A003", "丙企业", "13800000003")]


def table_resource(tmp_path: Path, dept: str, dsn: str) -> str:
    """A table resource of ``dept`` (key 编码, 电话 masked), version 1 by the loader."""
    name = _name("t")
    load(_csv(tmp_path / "v1" / f"{name}.csv", ROWS),
         LoadOptions(dept=dept, layer=name, theme="economy", sharing="unconditional",
                     kind="table", key="编码", sensitive={"电话": "phone"},
                     title=f"前置机测试 {name}", loaded_by="test"), dsn=dsn, progress=False)
    return name


def _env(dsn: str, root: Path) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=dsn, PYTHONPATH=str(REPO), JMGEO_FEP_INBOX=str(root),
                JMGEO_FEP_SETTLE_SECONDS="0", JMGEO_WORKER_HEARTBEAT="0.5",
                JMGEO_WORKER_STALLED_AFTER="2")


def fep(dsn: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jmgeo.cli", "fep", *args],
                          env=_env(dsn, root), cwd=REPO, capture_output=True, text=True,
                          timeout=180)


def _poll(what: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.3)
    return got


def receipts(dsn: str, resource: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, dept_id, dept_code, status, version, message, report, archived_as, "
            "finished_at FROM fep_receipt WHERE resource = %s ORDER BY id", (resource,))
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def state(dsn: str, name: str) -> tuple[int | None, int]:
    """(current version, number of versions) of a resource."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT l.current_version, (SELECT count(*) FROM layer_version v "
                           "WHERE v.layer_id = l.id) FROM layer l WHERE l.name = %s",
                           (name,)).fetchone()
    return (row[0], row[1]) if row else (None, 0)


def beside(folder: Path, file: str) -> dict:
    return json.loads((folder / f"{file}.receipt.json").read_text(encoding="utf-8"))


def archived(folder: Path, status: str) -> list[str]:
    d = folder / status
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


@pytest.fixture
def dsn(database_url: str, db) -> str:
    make_callers(db)  # the departments (gtzy, gh, hb, wxtc …)
    return database_url


@pytest.fixture
def worker(dsn: str, tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(root: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker"],
                                env=_env(dsn, root), cwd=REPO)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def test_a_worker_harvests_a_dropped_file_and_publishes_it(dsn, tmp_path, worker):
    from exchange.fep_tasks import harvest_inbox_job

    name = table_resource(tmp_path, "hb", dsn)
    root = tmp_path / "inbox"
    folder = root / "hb" / name
    _csv(folder / "2026-11.csv", [*ROWS[:2], ("A003", "丙企业（更名）", "13800000003"),
                                  ("A004", "丁企业", "13800000004")])
    job = harvest_inbox_job.configure(queueing_lock=None).defer()
    proc = worker(root)
    got = _poll(lambda: [r for r in receipts(dsn, name) if r["finished_at"]])
    assert len(got) == 1 and got[0]["status"] == "accepted", got
    assert got[0]["version"] == 2 and state(dsn, name) == (2, 2)
    with psycopg.connect(dsn) as conn:
        _poll(lambda: conn.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                                   (job,)).fetchone()[0] == "succeeded")
        layer = registry.get_layer(conn, name)
        table, loaded_by, report = conn.execute(
            "SELECT table_name, loaded_by, report FROM layer_version WHERE layer_id = %s AND "
            "version = 2", (layer["id"],)).fetchone()
        col = {f["source"]: f["column"] for f in report["fields"]}
        rows = dict(conn.execute(f"SELECT {col['编码']}, {col['名称']} FROM {table}").fetchall())
    # loaded as the resource was: a table, same key, the phone still masked
    assert layer["kind"] == "table" and layer["key_field"] == col["编码"]
    assert layer["sensitive_fields"] == {col["电话"]: "phone"}
    assert rows == {"A001": "甲企业", "A002": "乙企业", "A003": "丙企业（更名）", "A004": "丁企业"}
    assert loaded_by.startswith(f"fep:hb/{name}/2026-11.csv@")
    assert report["key"]["diff"]["added"] == 1 and report["key"]["diff"]["changed"] == 1
    # the receipt beside the file, the file in accepted/ under a stamped name
    r = beside(folder, "2026-11.csv")
    assert r["status"] == "accepted" and r["version"] == 2 and r["receipt"] == got[0]["id"]
    assert r["counts"]["loaded"] == 4 and r["quality"]["score"] > 0
    assert "accepted" in r["message"] and "已接收" in r["message"]
    assert not (folder / "2026-11.csv").exists()
    kept = archived(folder, "accepted")
    assert kept == [Path(r["archived_as"]).name, Path(r["archived_as"]).name + ".receipt.json"]
    assert kept[0].endswith("_2026-11.csv")
    proc.send_signal(signal.SIGTERM)  # its next periodic harvest would race the CLI's
    proc.wait(timeout=30)
    # the same content again: accepted, no new version (the loader's content hash)
    _csv(folder / "again.csv", [*ROWS[:2], ("A003", "丙企业（更名）", "13800000003"),
                                ("A004", "丁企业", "13800000004")])
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0, out.stderr
    assert "no new version" in out.stdout and state(dsn, name) == (2, 2)


def test_only_settled_files_are_taken_and_uploads_in_progress_wait(dsn, tmp_path):
    name = table_resource(tmp_path, "hb", dsn)
    root = tmp_path / "inbox"
    folder = root / "hb" / name
    _csv(folder / "new.csv", ROWS)
    _csv(folder / "big.csv.part", ROWS)
    out = fep(dsn, root, "harvest", "--settle", "3600")
    assert out.returncode == 0 and "0 receipt(s)" in out.stdout
    assert (folder / "new.csv").exists() and receipts(dsn, name) == []
    out = fep(dsn, root, "harvest", "--settle", "0")
    assert "1 receipt(s)" in out.stdout, out.stdout
    assert (folder / "big.csv.part").exists()  # still being written: untouched


def test_a_malformed_file_is_refused_nothing_published_and_moved_aside(dsn, tmp_path):
    name = table_resource(tmp_path, "hb", dsn)
    root = tmp_path / "inbox"
    folder = root / "hb" / name
    _csv(folder / "dup.csv", [*ROWS, ("A002", "重复", "13800000009")])  # key A002 twice
    (folder / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    before = registry.counts(psycopg.connect(dsn))
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0, out.stderr
    after = registry.counts(psycopg.connect(dsn))
    assert (after["versions"], after["tables"]) == (before["versions"], before["tables"])
    assert state(dsn, name) == (1, 1)
    got = {r["report"]["file"]: r for r in receipts(dsn, name)}
    assert {r["status"] for r in got.values()} == {"refused"} and set(got) == {
        "dup.csv", "broken.xlsx"}
    dup = beside(folder, "dup.csv")
    assert dup["status"] == "refused" and dup["version"] is None
    assert "A002" in dup["message"] and " / " in dup["message"] and "fix" in dup["message"]
    assert dup["refusal"]["code"] and dup["refusal"]["fix_zh"]
    assert beside(folder, "broken.xlsx")["refusal"]["message"]
    assert not (folder / "dup.csv").exists() and not (folder / "broken.xlsx").exists()
    assert len(archived(folder, "refused")) == 4  # two files, two receipts
    # the same bad file again: refused again, the first copy not overwritten
    _csv(folder / "dup.csv", [*ROWS, ("A002", "重复", "13800000009")])
    fep(dsn, root, "harvest")
    assert len(archived(folder, "refused")) == 6 and state(dsn, name) == (1, 1)


def test_wrong_folders_are_refused_saying_so(dsn, tmp_path):
    name = table_resource(tmp_path, "hb", dsn)
    root = tmp_path / "inbox"
    _csv(root / "gh" / name / "x.csv", ROWS)          # hb's resource in gh's folder
    _csv(root / "hb" / "tfep_no_such_thing" / "y.csv", ROWS)
    _csv(root / "nosuchdept" / name / "z.csv", ROWS)
    _csv(root / "hb" / "loose.csv", ROWS)              # no resource folder
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0 and "4 receipt(s)" in out.stdout, out.stdout
    assert state(dsn, name) == (1, 1)
    other = beside(root / "gh" / name, "x.csv")
    assert other["status"] == "refused" and other["refusal"]["code"] == "fep_not_owner"
    assert "belongs to department 'hb'" in other["message"] and "属于部门 hb" in other["message"]
    unknown = beside(root / "hb" / "tfep_no_such_thing", "y.csv")
    assert unknown["refusal"]["code"] == "fep_unknown_resource"
    assert "jmgeo load" in unknown["message"]
    nodept = beside(root / "nosuchdept" / name, "z.csv")
    assert nodept["refusal"]["code"] == "fep_no_department"
    assert beside(root / "hb", "loose.csv")["refusal"]["code"] == "fep_no_resource_folder"
    rows = {r["dept_code"]: r for r in receipts(dsn, name)}
    assert rows["nosuchdept"]["dept_id"] is None and rows["gh"]["dept_id"] is not None
    for folder in (root / "gh" / name, root / "nosuchdept" / name, root / "hb"):
        assert archived(folder, "refused") and not list(folder.glob("*.csv"))


def test_a_shapefile_is_taken_with_its_parts_and_a_missing_shp_refused(dsn, tmp_path):
    name = _name("v")
    first = parcels_shp(tmp_path / "v1" / "parcels.shp", 20, encoding="UTF-8", cpg=True,
                        crs=4490)
    load(first, LoadOptions(dept="gtzy", layer=name, theme="land", sharing="open", key="ZDDM",
                            sensitive={"QLR": "person_name"}, loaded_by="test"),
         dsn=dsn, progress=False)
    root = tmp_path / "inbox"
    folder = root / "gtzy" / name
    parcels_shp(folder / "宗地2026.shp", 30, encoding="UTF-8", cpg=True, crs=4490, seed=2)
    parts = sorted(p.name for p in folder.iterdir())
    assert len(parts) >= 4  # .shp .shx .dbf .prj .cpg
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0 and "1 receipt(s)" in out.stdout, out.stdout + out.stderr
    r = beside(folder, "宗地2026.shp")
    assert r["status"] == "accepted" and r["version"] == 2 and r["files"] == parts
    assert state(dsn, name) == (2, 2)
    stamp = Path(r["archived_as"]).name[: -len("宗地2026.shp")]
    assert sorted(archived(folder, "accepted")) == sorted(
        [stamp + p for p in parts] + [stamp + "宗地2026.shp.receipt.json"])
    # a hand-over without its .shp: refused naming the missing part, both parts moved aside
    parcels_shp(tmp_path / "half" / "半套.shp", 5, encoding="UTF-8", cpg=True, crs=4490)
    for ext in (".dbf", ".shx"):
        (tmp_path / "half" / f"半套{ext}").rename(folder / f"半套{ext}")
    fep(dsn, root, "harvest")
    half = beside(folder, "半套.dbf")
    assert half["status"] == "refused" and half["refusal"]["code"] == "missing_shp"
    assert "半套.shp" in half["message"] and state(dsn, name) == (2, 2)
    assert [p.name for p in folder.glob("半套.*")] == ["半套.dbf.receipt.json"]
    assert len(archived(folder, "refused")) == 3


def test_an_interrupted_harvest_neither_publishes_twice_nor_loses_the_file(dsn, tmp_path):
    """After the load committed: (a) the move fails (a file stands where accepted/ must
    be) — the next run only finishes the move; (b) killed before the receipt (the state:
    the drop's version published, no receipt) — the next run only writes the receipt."""
    from exchange.fep_inbound import drops_in, file_hash, load_options

    name = table_resource(tmp_path, "hb", dsn)
    root = tmp_path / "inbox"
    folder = root / "hb" / name
    _csv(folder / "m.csv", [*ROWS, ("A009", "新企业", "13800000009")])
    (folder / "accepted").write_text("in the way")
    out = fep(dsn, root, "harvest")
    assert out.returncode == 1 and "left for the next run" in out.stdout, out.stdout
    assert state(dsn, name) == (2, 2) and (folder / "m.csv").exists()
    first = receipts(dsn, name)
    assert len(first) == 1 and first[0]["finished_at"] is None
    (folder / "accepted").unlink()
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0, out.stdout + out.stderr
    again = receipts(dsn, name)
    assert len(again) == 1 and again[0]["id"] == first[0]["id"] and again[0]["finished_at"]
    assert state(dsn, name) == (2, 2) and not (folder / "m.csv").exists()
    assert beside(folder, "m.csv")["version"] == 2

    # (b): what a harvest killed right after the load's commit leaves behind
    _csv(folder / "k.csv", [*ROWS, ("A010", "另一企业", "13800000010")])
    drop = drops_in(folder, "hb", name)[0]
    token = f"fep:{drop.display}@{file_hash(drop.parts)[:16]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        opts = load_options(conn, registry.get_layer(conn, name), token)
    load(drop.primary, opts, dsn=dsn, progress=False)
    assert state(dsn, name) == (3, 3)
    out = fep(dsn, root, "harvest")
    assert out.returncode == 0, out.stdout + out.stderr
    assert state(dsn, name) == (3, 3)
    k = beside(folder, "k.csv")
    assert k["status"] == "accepted" and k["version"] == 3 and not k["unchanged"]
    assert k["counts"]["loaded"] == 4


def test_receipts_api_a_department_its_own_the_bureau_and_auditor_all(dsn, tmp_path, db,
                                                                     app_client):
    who = make_callers(db)  # owner gtzy, applicant gh, unrelated hb, admin, auditor
    mine = table_resource(tmp_path, "gtzy", dsn)
    theirs = table_resource(tmp_path, "gh", dsn)
    root = tmp_path / "inbox"
    _csv(root / "gtzy" / mine / "a.csv", ROWS)
    _csv(root / "gh" / theirs / "b.csv", [("X", "", "1")] * 2)  # refused: duplicate key
    assert fep(dsn, root, "harvest").returncode == 0

    def listed(label: str, **params) -> set[str]:
        r = app_client.get("/exchange/fep/receipts", params=params, headers=who[label].headers)
        assert r.status_code == 200, r.text
        assert "public" not in r.headers.get("cache-control", "")
        return {x["resource"] for x in r.json()["receipts"]} & {mine, theirs}

    assert listed("owner") == {mine}
    assert listed("applicant") == {theirs}
    assert listed("unrelated") == set()
    for label in ("admin", "auditor"):
        assert listed(label) == {mine, theirs}
        assert listed(label, dept="gh") == {theirs}
        assert listed(label, status="refused") == {theirs}
    one = app_client.get("/exchange/fep/receipts", params={"resource": mine},
                         headers=who["owner"].headers).json()["receipts"][0]
    assert one["status"] == "accepted" and one["version"] == 2
    assert one["report"]["quality"]["score"] > 0
    r = app_client.get("/exchange/fep/receipts", params={"dept": "gh"},
                       headers=who["owner"].headers)
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    assert " / " in r.json()["description"]
    r = app_client.get("/exchange/fep/receipts")
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
    r = app_client.get("/exchange/fep/receipts", params={"status": "bogus"},
                       headers=who["admin"].headers)
    assert r.status_code == 422
    out = fep(dsn, root, "receipts", "--dept", "gh")
    assert theirs in out.stdout and mine not in out.stdout
    # every published resource gets its drop folder under its owner
    out = fep(dsn, tmp_path / "fresh", "folders")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "fresh" / "gtzy" / mine).is_dir()
    assert (tmp_path / "fresh" / "gh" / theirs).is_dir()
