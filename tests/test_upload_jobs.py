"""Uploads as load jobs (issue 16 §2): ``POST /layers/upload`` with ``async=true`` (or a
file over ``JMGEO_UPLOAD_SYNC_MAX_BYTES``) answers 202 at once and a real ``jmgeo worker``
loads the file; the job says how it went; only its department sees it; a running load is
cancelled at its next batch with nothing changed and its file removed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import start_worker, stop_process

CSV = ("name,lon,lat\n" + "".join(f"p{i},113.{i:04d},22.6\n" for i in range(20))).encode()


def _slow_csv(rows: int) -> bytes:
    return ("name,lon,lat\n" + "".join(f"p{i},113.{i % 9000:04d},22.6\n"
                                       for i in range(rows))).encode()


@pytest.fixture(scope="module")
def keys(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import create_key

    stamp = time.time()
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)
        return {d: create_key(conn, f"tuj-{d}-{stamp}", dept=d)["token"]
                for d in ("gtzy", "hb")}


@pytest.fixture
def uploads(tmp_path, monkeypatch, fresh_settings) -> Path:
    directory = tmp_path / "uploads"
    monkeypatch.setenv("JMGEO_UPLOAD_DIR", str(directory))
    fresh_settings()
    return directory


@pytest.fixture
def worker(database_url, uploads) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(**extra: str) -> subprocess.Popen:
        procs.append(start_worker(database_url, JMGEO_UPLOAD_DIR=str(uploads), **extra))
        return procs[-1]

    yield start
    for proc in procs:
        stop_process(proc)


def _post(client, token, layer, data=CSV, **form):
    return client.post("/layers/upload", headers={"Authorization": f"Bearer {token}"},
                       data={"dept": "gtzy", "layer": layer, "theme": "land",
                             "sharing": "open", "async": "true", **form},
                       files={"file": ("points.csv", data, "text/csv")})


def _wait(client, token, job_id, until=("done", "failed", "cancelled"), timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        doc = client.get(f"/layers/uploads/{job_id}",
                         headers={"Authorization": f"Bearer {token}"}).json()
        if doc["status"] in until:
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.3)


def test_an_async_upload_is_a_job_the_worker_loads(app_client, keys, uploads, worker,
                                                   database_url):
    r = _post(app_client, keys["gtzy"], "tuj_points")
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/layers/uploads/{job['id']}"
    assert job["status"] == "queued" and (uploads / job["id"] / "points.csv").exists()
    # another department, and nobody, learn nothing of it
    other = app_client.get(f"/layers/uploads/{job['id']}",
                           headers={"Authorization": f"Bearer {keys['hb']}"})
    assert other.status_code == 404
    assert app_client.get(f"/layers/uploads/{job['id']}").status_code == 401
    assert app_client.get("/layers/uploads/not-a-job",
                          headers={"Authorization": f"Bearer {keys['gtzy']}"}
                          ).status_code == 404
    worker()
    done = _wait(app_client, keys["gtzy"], job["id"])
    assert done["status"] == "done", done
    assert done["report"]["counts"]["loaded"] == 20
    assert not (uploads / job["id"]).exists()  # the file goes with the job
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT current_version FROM layer WHERE name = 'tuj_points'"
                            ).fetchone()[0] == 1
    # a finished job cannot be cancelled
    assert app_client.delete(f"/layers/uploads/{job['id']}", headers={
        "Authorization": f"Bearer {keys['gtzy']}"}).status_code == 409


def test_a_bad_file_fails_the_job_with_the_loaders_message(app_client, keys, uploads,
                                                           worker):
    r = _post(app_client, keys["gtzy"], "tuj_bad", data=b"name;x\n\xff\xfe\n")
    assert r.status_code == 202
    worker()
    failed = _wait(app_client, keys["gtzy"], r.json()["id"])
    assert failed["status"] == "failed" and failed["error"]["code"]
    assert " / " in failed["error"]["description"]  # the loader's bilingual message


def test_big_uploads_are_jobs_without_asking(app_client, keys, uploads, monkeypatch,
                                            fresh_settings):
    monkeypatch.setenv("JMGEO_UPLOAD_SYNC_MAX_BYTES", "100")
    fresh_settings()
    r = _post(app_client, keys["gtzy"], "tuj_big", **{"async": "false"})
    assert r.status_code == 202 and r.json()["status"] == "queued"


def test_cancelling_a_running_load_changes_nothing(app_client, keys, uploads, worker,
                                                  database_url):
    r = _post(app_client, keys["gtzy"], "tuj_cancel", data=_slow_csv(40_000))
    job_id = r.json()["id"]
    worker(JMGEO_LOAD_BATCH="1")  # one feature per batch: a load of a minute or more
    running = _wait(app_client, keys["gtzy"], job_id, until=("running",))
    assert running["status"] == "running"
    time.sleep(1.0)
    auth = {"Authorization": f"Bearer {keys['gtzy']}"}
    assert app_client.delete(f"/layers/uploads/{job_id}",
                             headers={"Authorization": f"Bearer {keys['hb']}"}
                             ).status_code == 404  # not hb's to cancel
    c = app_client.delete(f"/layers/uploads/{job_id}", headers=auth)
    assert c.status_code == 202 and c.json()["cancel_requested"]
    ended = _wait(app_client, keys["gtzy"], job_id, timeout=30)
    assert ended["status"] == "cancelled" and ended["error"]["code"] == "load_cancelled"
    assert not (uploads / job_id).exists()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1 FROM layer WHERE name = 'tuj_cancel'").fetchone() is None
        assert not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND granted").fetchone()[0] > 1


def test_a_key_revoked_before_the_job_runs_loads_nothing(app_client, keys, uploads, worker,
                                                        database_url):
    """The worker asks how the uploader's key stands when the job runs
    (``layers.identity.caller_for_key``, as export jobs do): revoked → failed, no layer."""
    from layers.identity import create_key, revoke_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        made = create_key(conn, f"tuj-revoked-{time.time()}", dept="gtzy")
    r = _post(app_client, made["token"], "tuj_revoked")
    assert r.status_code == 202
    with psycopg.connect(database_url, autocommit=True) as conn:
        revoke_key(conn, made["id"])
        worker()
        deadline = time.monotonic() + 60
        while (status := conn.execute("SELECT status, error->>'code' FROM load_job WHERE "
                                      "id = %s", (r.json()["id"],)).fetchone())[0] in (
                "queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.3)
        assert status == ("failed", "key_revoked")
        assert conn.execute("SELECT 1 FROM layer WHERE name = 'tuj_revoked'").fetchone() is None
