"""批量下载作业 — export jobs over a real `jmgeo worker` subprocess, and the delivery count.

The threshold is set low (``JMGEO_EXPORT_SYNC_MAX_ROWS``) for the in-process app, and the
export directory (``JMGEO_EXPORT_DIR``) is shared with the worker: a 4-feature download is
then a job (202), its progress visible, its file the synchronous download's content; only
its asker sees it; it expires (410); a grant revoked before it runs fails it; a worker
killed mid-export leaves no file to download and the job completes on another worker.
Deliveries (downloads, job files, online queries) are counted and shown to the bureau
and the auditor only.

A worker started with ``JMGEO_TEST_SLOW_EXPORT=1`` imports this module, which slows its
exports (one row per batch, a pause per batch) so that a test can watch progress and kill
it halfway — nothing else of the export is changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from exchange_fixtures import APPLICANT, make_callers
from policy_fixtures import create_layer, create_table

from conftest import REPO, start_worker, stop_process
from jmgeo.http import flush_deliveries

TESTS = str(Path(__file__).resolve().parent)
_N = iter(range(1, 10_000))

if os.environ.get("JMGEO_TEST_SLOW_EXPORT"):  # in a worker started by the kill test
    from jmgeo.downloads import export as _export
    from jmgeo.downloads import jobs as _jobs

    _export.BATCH = 1
    _jobs.PROGRESS_EVERY = 0.0
    _record = _jobs._Progress.__call__

    def _slow(self, rows: int) -> None:
        _record(self, rows)
        time.sleep(1.5)

    _jobs._Progress.__call__ = _slow


def _poll(what: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)
    return got


@pytest.fixture(scope="module")
def who(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture
def exports(tmp_path, monkeypatch, fresh_settings) -> Path:
    """The export directory, and the threshold at 2 rows, for this process's app."""
    directory = tmp_path / "exports"
    monkeypatch.setenv("JMGEO_EXPORT_DIR", str(directory))
    monkeypatch.setenv("JMGEO_EXPORT_SYNC_MAX_ROWS", "2")
    fresh_settings()
    return directory


@pytest.fixture
def worker(database_url, exports) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(slow: bool = False) -> subprocess.Popen:
        extra = {"JMGEO_TEST_SLOW_EXPORT": "1"} if slow else {}
        proc = start_worker(database_url, "--import", "test_export_jobs",
                            PYTHONPATH=os.pathsep.join([str(REPO), TESTS]),
                            JMGEO_WORKER_STALLED_AFTER="2", JMGEO_EXPORT_DIR=str(exports),
                            **extra)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def _layer(db, cls: str = "conditional") -> str:
    name = f"tej_{cls[:4]}_{next(_N)}_{os.getpid() % 1000}"
    create_layer(db, name, cls)
    return name


def _get(client, path: str, who=None, **params):
    return client.get(path, params=params, headers=who.headers if who else {})


def _sync(client, monkeypatch, fresh_settings, path: str, who, **params):
    """The synchronous download (threshold back to its default), then the low one again."""
    monkeypatch.delenv("JMGEO_EXPORT_SYNC_MAX_ROWS")
    fresh_settings()
    r = _get(client, path, who, **params)
    monkeypatch.setenv("JMGEO_EXPORT_SYNC_MAX_ROWS", "2")
    fresh_settings()
    assert r.status_code == 200, r.text
    return r


def _done(client, job_path: str, who) -> dict:
    def check():
        doc = _get(client, job_path, who).json()
        assert doc["status"] not in ("failed", "expired"), doc
        return doc if doc["status"] == "done" else None

    return _poll(check)


def _deliveries(db, layer: str, mode: str) -> list[dict]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT d.code AS dept, e.rows, e.bytes, e.detail, e.request_id FROM exchange_delivery e "
        "JOIN layer l ON l.id = e.layer_id LEFT JOIN department d ON d.id = e.dept_id "
        "WHERE l.name = %s AND e.mode = %s ORDER BY e.id", (layer, mode)).fetchall()


def test_a_big_download_is_a_job_whose_file_is_the_sync_download(
        app_client, db, who, exports, worker, monkeypatch, fresh_settings):
    import pyogrio

    layer = _layer(db)
    owner = who["owner"]
    sync = _sync(app_client, monkeypatch, fresh_settings, f"/downloads/{layer}", owner,
                 format="csv")
    r = _get(app_client, f"/downloads/{layer}", owner, format="csv")
    assert r.status_code == 202, r.text
    doc = r.json()
    assert r.headers["location"] == f"/downloads/jobs/{doc['id']}"
    assert doc["status"] == "queued" and doc["resource"] == layer and doc["format"] == "csv"
    assert [link["rel"] for link in doc["links"]] == ["self"]
    gpkg = _get(app_client, f"/downloads/{layer}", owner).json()  # the default format
    worker()
    done = _done(app_client, r.headers["location"], owner)
    assert done["progress"] == {"rows_done": 4, "rows_total": 4, "percent": 100.0}
    assert done["bytes"] == len(sync.content) and done["expires_at"]
    enclosure = [link["href"] for link in done["links"] if link["rel"] == "enclosure"]
    assert enclosure == [f"http://testserver/downloads/jobs/{doc['id']}/file"]
    f = _get(app_client, f"/downloads/jobs/{doc['id']}/file", owner)
    assert f.status_code == 200 and f.content == sync.content
    assert f.headers["content-disposition"] == sync.headers["content-disposition"]
    assert f.headers["cache-control"] == "private, no-store"
    rows = list(csv.DictReader(io.StringIO(f.content.decode("utf-8-sig"))))
    assert sorted(int(r["fid"]) for r in rows) == [1, 2, 3, 4]
    # a GIS format: the same features as the synchronous GeoPackage
    sync_gpkg = _sync(app_client, monkeypatch, fresh_settings, f"/downloads/{layer}", owner)
    _done(app_client, f"/downloads/jobs/{gpkg['id']}", owner)
    job_gpkg = _get(app_client, f"/downloads/jobs/{gpkg['id']}/file", owner)
    assert job_gpkg.status_code == 200
    a = pyogrio.read_dataframe(io.BytesIO(sync_gpkg.content))
    b = pyogrio.read_dataframe(io.BytesIO(job_gpkg.content))
    assert a.to_wkt().equals(b.to_wkt())
    # nothing else in the export directory: the two files, no temporary leftovers
    assert sorted(p.name for p in exports.iterdir()) == sorted(
        [f"{doc['id']}.csv", f"{gpkg['id']}.gpkg"])
    # ?async=true: a job even for a small download (a region's part)
    small = _get(app_client, f"/downloads/{layer}", owner, format="geojson",
                 region="440703", **{"async": "true"})
    assert small.status_code == 202
    assert _done(app_client, small.headers["location"], owner)["progress"]["rows_total"] == 2
    # the job file's fetch is audited and counted as a delivery, as the sync download is
    audited = db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                         "'download' AND request->>'path' LIKE '/downloads/jobs/%%'",
                         (layer,)).fetchone()[0]
    assert audited == 2
    counted = _deliveries(db, layer, "download")
    assert [(d["dept"], d["rows"], d["bytes"]) for d in counted if "job" in d["detail"]] \
        == [("gtzy", 4, len(sync.content)), ("gtzy", 4, len(job_gpkg.content))]
    assert [(d["rows"], d["bytes"]) for d in counted if "job" not in d["detail"]] \
        == [(4, len(sync.content)), (4, len(sync_gpkg.content))]


def test_only_the_asker_sees_the_job(app_client, db, who, exports, worker):
    from layers.identity import create_key

    layer = _layer(db, "unconditional")
    r = _get(app_client, f"/downloads/{layer}", who["applicant"], format="csv")
    assert r.status_code == 202
    job = r.headers["location"]
    worker()
    _done(app_client, job, who["applicant"])
    other_key = create_key(db, f"tej-gh-second-{time.time()}", dept=APPLICANT)["token"]
    for headers in ({}, who["unrelated"].headers, who["owner"].headers, who["admin"].headers,
                    who["auditor"].headers, {"X-API-Key": other_key}):
        for path in (job, f"{job}/file"):
            got = app_client.get(path, headers=headers)
            assert got.status_code == 404, (headers, path, got.text)
            assert got.json()["code"] == "NotFound"
    assert app_client.get("/downloads/jobs/not-a-job", headers=who["applicant"].headers
                          ).status_code == 404
    assert app_client.get(f"{job}/file", headers=who["applicant"].headers).status_code == 200


def test_an_expired_job_answers_410_and_the_cleanup_deletes_its_file(
        app_client, db, who, exports, worker):
    from jmgeo.downloads.jobs import expire

    layer = _layer(db, "open")
    r = _get(app_client, f"/downloads/{layer}", None, format="csv")  # anonymous, open data
    assert r.status_code == 202
    worker()
    done = _done(app_client, r.headers["location"], None)
    job_id = done["id"]
    path = exports / f"{job_id}.csv"
    assert path.exists()
    db.execute("UPDATE export_job SET expires_at = now() - interval '1 minute' WHERE id = %s",
               (job_id,))
    assert _get(app_client, r.headers["location"]).json()["status"] == "expired"
    gone = _get(app_client, f"{r.headers['location']}/file")
    assert gone.status_code == 410
    body = gone.json()
    assert body["code"] == "Gone" and " / " in body["description"]
    assert "expired" in body["description"] and "过期" in body["description"]
    assert expire(db) >= 1
    assert not path.exists()
    assert db.execute("SELECT status, file_path FROM export_job WHERE id = %s",
                      (job_id,)).fetchone() == ("expired", None)
    assert _get(app_client, f"{r.headers['location']}/file").status_code == 410


def test_a_grant_revoked_before_the_job_runs_fails_it(app_client, db, who, exports, worker):
    from layers.grants import add_grant, revoke_grant

    layer = _layer(db)
    grant = add_grant(db, layer=layer, dept=APPLICANT, purpose="测试导出",
                      approved_by="测试审批人")
    r = _get(app_client, f"/downloads/{layer}", who["applicant"], format="csv")
    assert r.status_code == 202
    revoke_grant(db, grant)  # before any worker runs the job
    worker()

    def failed():
        doc = _get(app_client, r.headers["location"], who["applicant"]).json()
        return doc if doc["status"] == "failed" else None

    doc = _poll(failed)
    assert "withdrawn" in doc["error"] and "授权已撤销" in doc["error"]
    assert doc["progress"]["rows_done"] == 0 and not list(exports.glob("*.csv"))
    f = _get(app_client, f"{r.headers['location']}/file", who["applicant"])
    assert f.status_code == 409 and "withdrawn" in f.json()["description"]


def test_a_worker_killed_mid_export_leaves_no_file_and_the_job_completes(
        app_client, db, who, exports, worker, monkeypatch, fresh_settings, database_url):
    layer = _layer(db, "unconditional")
    owner = who["owner"]
    sync = _sync(app_client, monkeypatch, fresh_settings, f"/downloads/{layer}", owner,
                 format="geojson")
    r = _get(app_client, f"/downloads/{layer}", owner, format="geojson")
    assert r.status_code == 202
    job, job_id = r.headers["location"], r.json()["id"]
    first = worker(slow=True)
    running = _poll(lambda: (d := _get(app_client, job, owner).json())["status"] == "running"
                    and d["progress"]["rows_done"] >= 1 and d)
    assert running["progress"]["rows_total"] == 4 and running["progress"]["rows_done"] < 4
    first.kill()  # SIGKILL halfway: the half-written file stays in .<id>.part
    first.wait()
    assert [p.name for p in exports.iterdir()] == [f".{job_id}.part"]
    assert _get(app_client, f"{job}/file", owner).status_code == 409
    with psycopg.connect(database_url, autocommit=True) as conn:  # the heartbeat goes stale
        _poll(lambda: conn.execute(
            "SELECT w.last_heartbeat < now() - interval '2 seconds' FROM procrastinate_jobs j "
            "JOIN procrastinate_workers w ON w.id = j.worker_id WHERE j.task_name = "
            "'downloads.export' AND j.args->>'job_id' = %s", (job_id,)).fetchone()[0],
            timeout=15)
    worker()
    _done(app_client, job, owner)
    f = _get(app_client, f"{job}/file", owner)
    assert f.status_code == 200 and f.content == sync.content
    assert json.loads(f.content)["features"]
    assert [p.name for p in exports.iterdir()] == [f"{job_id}.geojson"]


def test_online_queries_are_counted(app_client, db, who):
    name = f"tej_tab_{next(_N)}_{os.getpid() % 1000}"
    create_table(db, name, "unconditional")
    r = _get(app_client, f"/exchange/query/{name}/北街地块", who["applicant"])
    assert r.status_code == 200, r.text
    missing = _get(app_client, f"/exchange/query/{name}/没有这个", who["applicant"])
    assert missing.status_code == 404
    again = _get(app_client, f"/exchange/query/{name}/白沙地块", who["applicant"])
    layer = _layer(db, "open")
    p = _get(app_client, f"/exchange/query/{layer}", None, lon=113.08, lat=22.58)
    assert p.status_code == 200 and p.json()["numberReturned"] == 1
    # counted in batches (one row per resource, department and share request), written
    # within JMGEO_QUERY_COUNT_EVERY seconds or at shutdown — here, flushed as at shutdown
    flush_deliveries()
    # (one batch row, or two if a second passed between the queries: the sums are what count)
    counted = db.execute(
        "SELECT d.code, sum(e.deliveries)::int, sum(e.rows)::int, sum(e.bytes)::int "
        "FROM exchange_delivery e JOIN layer l ON "
        "l.id = e.layer_id LEFT JOIN department d ON d.id = e.dept_id WHERE l.name = %s "
        "AND e.mode = 'query' GROUP BY 1", (name,)).fetchall()
    assert counted == [(APPLICANT, 2, 2, len(r.content) + len(again.content))]  # not the 404
    assert [(d["dept"], d["rows"]) for d in _deliveries(db, layer, "query")] == [(None, 1)]


def test_queries_are_summed_per_resource_department_and_request_until_due():
    from exchange.deliveries import QueryCounter

    c = QueryCounter(max_age=3600, max_keys=2)
    assert c.add(layer="a", dept="gh", rows=1, nbytes=10, request_id=None) is None
    assert c.add(layer="a", dept="gh", rows=1, nbytes=12, request_id=None) is None
    due = c.add(layer="b", dept="gh", rows=3, nbytes=30, request_id=7)  # a second key: due
    assert due == {("a", "gh", None): [2, 2, 22], ("b", "gh", 7): [1, 3, 30]}
    assert c.take() == {}


def test_the_delivery_count_is_for_the_bureau_and_the_auditor(app_client, db, who,
                                                              database_url):
    layer = _layer(db, "unconditional")
    r = _get(app_client, f"/downloads/{layer}", who["unrelated"], format="csv")
    assert r.status_code == 200
    assert _get(app_client, "/exchange/deliveries").status_code == 401
    for label in ("owner", "applicant", "unrelated"):
        got = _get(app_client, "/exchange/deliveries", who[label])
        assert got.status_code == 403 and got.json()["code"] == "Forbidden"
    for label in ("admin", "auditor"):
        got = _get(app_client, "/exchange/deliveries", who[label], since="2020-01-01")
        assert got.status_code == 200, got.text
        mine = [d for d in got.json()["deliveries"] if d["resource"] == layer]
        assert mine == [{"resource": layer, "dept": "hb", "mode": "download",
                         "deliveries": 1, "rows": 4, "bytes": len(r.content)}]
    future = _get(app_client, "/exchange/deliveries", who["admin"], since="2999-01-01")
    assert future.json()["deliveries"] == [] and future.json()["totals"]["rows"] == 0
    bad = _get(app_client, "/exchange/deliveries", who["admin"], since="2026-02-01",
               until="2026-01-01")
    assert bad.status_code == 400 and " / " in bad.json()["description"]
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "jmgeo.cli", "deliveries", "--since",
                          "2020-01-01", "--json"], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert {"resource": layer, "dept": "hb", "mode": "download", "deliveries": 1, "rows": 4,
            "bytes": len(r.content)} in json.loads(out)
    wrong = subprocess.run([sys.executable, "-m", "jmgeo.cli", "deliveries", "--since",
                            "yesterday"], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=60)
    assert wrong.returncode == 2 and "--since" in wrong.stderr
