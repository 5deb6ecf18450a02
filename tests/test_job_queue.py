"""The job queue over real processes: migration 0013, `jmgeo worker` subprocesses, a
worker killed mid-job, `jmgeo jobs list|retry`, ``GET /exchange/jobs``.

Workers here beat every 0.5 s and count as stalled after 2 s of silence
(``JMGEO_WORKER_HEARTBEAT`` / ``JMGEO_WORKER_STALLED_AFTER``) so the kill test is quick.
"""

from __future__ import annotations

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

from conftest import REPO, create_test_database, drop_test_database, stop_process
from jmgeo.queue import app

# the worker imports this module (--import test_job_queue) to know the task below
TESTS = str(Path(__file__).resolve().parent)


@app.task(name="test_job_queue.marker")
def marker(path: str, hold: float = 0.0) -> str:
    """Append a line to ``path``; the first run (empty file) then holds for ``hold``
    seconds — long enough to be killed in the middle."""
    p = Path(path)
    first = not p.exists()
    with p.open("a") as f:
        f.write(f"run {os.getpid()}\n")
    if first and hold:
        time.sleep(hold)
    return "done"


def _env(dsn: str) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=dsn, PYTHONPATH=os.pathsep.join([str(REPO), TESTS]),
                JMGEO_WORKER_HEARTBEAT="0.5", JMGEO_WORKER_STALLED_AFTER="2")


def _jmgeo(dsn: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jmgeo.cli", *args], env=_env(dsn),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=check)


def _poll(what: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)
    return got


def _status(dsn: str, job_id: int) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                           (job_id,)).fetchone()
    return row[0] if row else None


@pytest.fixture
def worker(database_url: str) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `jmgeo worker` subprocesses; all stopped (SIGTERM, then SIGKILL) at the end."""
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker", "--import",
                                 "test_job_queue"], env=_env(database_url), cwd=REPO)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def _objects(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procrastinate%%') "
            "+ (SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%%') "
            "+ (SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%%')").fetchone()[0]


def test_migration_upgrades_downgrades_and_upgrades_again():
    dsn = create_test_database("jmgeo_test_queue")
    try:
        _jmgeo(dsn, "db", "upgrade")
        created = _objects(dsn)
        assert created > 20  # 4 tables, their row types, enums, ~20 functions
        _jmgeo(dsn, "db", "downgrade", "0012")
        assert _objects(dsn) == 0
        assert "0012" in _jmgeo(dsn, "db", "current").stdout
        _jmgeo(dsn, "db", "upgrade")
        assert _objects(dsn) == created
    finally:
        drop_test_database(dsn)


def test_a_worker_runs_a_deferred_platform_job(database_url, worker):
    from exchange.tasks import check_deadlines_job

    job_id = check_deadlines_job.configure(queueing_lock=None).defer()
    assert _status(database_url, job_id) == "todo"
    worker()
    _poll(lambda: _status(database_url, job_id) == "succeeded")
    out = _jmgeo(database_url, "jobs", "list", "--task", "exchange.check_deadlines").stdout
    assert any(line.split()[:2] == [str(job_id), "succeeded"] for line in out.splitlines())


def test_a_job_survives_a_killed_worker(database_url, worker, tmp_path):
    path = tmp_path / "marker.txt"
    job_id = marker.defer(path=str(path), hold=120.0)
    first = worker()
    _poll(lambda: path.exists())  # the job is running in the first worker
    assert _status(database_url, job_id) == "doing"
    first.kill()  # SIGKILL: no clean-up, the job row stays 'doing'
    first.wait()
    assert _status(database_url, job_id) == "doing"
    # the dead worker's heartbeat goes stale; the next worker puts its job back and runs it
    with psycopg.connect(database_url, autocommit=True) as conn:  # now() per statement
        _poll(lambda: conn.execute(
            "SELECT w.last_heartbeat < now() - interval '2 seconds' FROM procrastinate_jobs j "
            "JOIN procrastinate_workers w ON w.id = j.worker_id WHERE j.id = %s",
            (job_id,)).fetchone()[0], timeout=15)
    second = worker()
    _poll(lambda: _status(database_url, job_id) == "succeeded")
    runs = path.read_text().splitlines()
    assert runs == [f"run {first.pid}", f"run {second.pid}"]
    listed = _jmgeo(database_url, "jobs", "list", "--status", "succeeded", "--task",
                    "test_job_queue.marker").stdout
    assert any(line.split()[:2] == [str(job_id), "succeeded"] and "attempts=2" in line  # two runs
               for line in listed.splitlines()), listed


def test_jobs_retry_runs_a_failed_job_again(database_url, worker, tmp_path):
    bad = marker.defer(path=str(tmp_path / "no" / "such" / "dir.txt"))  # fails: no dir
    worker()
    _poll(lambda: _status(database_url, bad) == "failed")
    (tmp_path / "no" / "such").mkdir(parents=True)
    out = _jmgeo(database_url, "jobs", "retry", str(bad))
    assert f"job {bad} queued again" in out.stdout
    _poll(lambda: _status(database_url, bad) == "succeeded")
    again = _jmgeo(database_url, "jobs", "retry", str(bad), check=False)
    assert again.returncode == 2 and "nothing to retry" in again.stderr


def test_exchange_jobs_is_for_the_bureau_and_the_auditor(database_url, db, app_client):
    job_id = marker.defer(path="/nonexistent/never-run")  # no worker: stays todo
    who = make_callers(db)
    for label in ("admin", "auditor"):
        r = app_client.get("/exchange/jobs", params={"status": "todo"},
                           headers=who[label].headers)
        assert r.status_code == 200, r.text
        mine = [j for j in r.json()["jobs"] if j["id"] == job_id]
        assert mine and mine[0]["task"] == "test_job_queue.marker"
        assert mine[0]["status"] == "todo"
    for label in ("owner", "applicant", "unrelated"):
        r = app_client.get("/exchange/jobs", headers=who[label].headers)
        assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    r = app_client.get("/exchange/jobs")
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
    r = app_client.get("/exchange/jobs", params={"status": "bogus"},
                       headers=who["admin"].headers)
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameterValue"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs WHERE id = %s", (job_id,))


def test_serve_with_worker_starts_and_stops_both(database_url):
    """`make run`'s `jmgeo serve --worker`: the server and a worker; Ctrl-C (SIGINT to the
    terminal's process group) stops both, the worker unregistering itself."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = {r[0] for r in conn.execute("SELECT id FROM procrastinate_workers")}
        proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "serve", "--worker",
                                 "--port", str(port)], env=_env(database_url), cwd=REPO,
                                start_new_session=True)
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/health",
                                     timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _poll(up, timeout=60)
            new = _poll(lambda: {r[0] for r in conn.execute(
                "SELECT id FROM procrastinate_workers")} - before)
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
            _poll(lambda: not {r[0] for r in conn.execute(
                "SELECT id FROM procrastinate_workers")} & new, timeout=15)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the group is left
