"""A server stopped (SIGTERM) during a long ``POST /layers/upload`` stops the load, answers
503, releases the layer's lock, leaves no temporary files and exits promptly (issue 16:
the upload kept a core busy and the server alive for minutes after SIGTERM)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psycopg

from conftest import REPO


def test_sigterm_stops_a_running_upload(database_url, tmp_path):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)
        token = create_key(conn, "tlim-shutdown", dept="gtzy")["token"]
    rows = 40_000  # one feature per batch: a load of a minute or more
    data = ("name,lon,lat\n" + "".join(f"p{i},113.{i % 9000:04d},22.6\n"
                                       for i in range(rows))).encode()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=database_url, JMGEO_LOAD_BATCH="1",
               TMPDIR=str(tmpdir), JMGEO_PUBLIC_URL=f"http://127.0.0.1:{port}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "jmgeo.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    answer: dict = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)

        def upload():
            try:
                answer["r"] = httpx.post(
                    f"{url}/layers/upload", headers={"Authorization": f"Bearer {token}"},
                    data={"dept": "gtzy", "layer": "tlim_shutdown", "theme": "land",
                          "sharing": "open"},
                    files={"file": ("slow.csv", data, "text/csv")}, timeout=300)
            except httpx.HTTPError as exc:
                answer["error"] = exc
        t = threading.Thread(target=upload)
        t.start()
        # wait until the load holds the layer's lock (its transaction is open)
        deadline = time.monotonic() + 60
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                   "'advisory'").fetchone()[0]:
                assert time.monotonic() < deadline and t.is_alive(), answer
                time.sleep(0.2)
        time.sleep(1.0)
        assert t.is_alive(), answer  # still loading
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - stopped_at < 20
        t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "r" in answer, answer
    assert answer["r"].status_code == 503, answer["r"].text[:300]
    assert answer["r"].json()["code"] == "load_stopped"
    assert list(tmpdir.iterdir()) == []  # the upload's temporary files are gone
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM layer WHERE name = 'tlim_shutdown'"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            ).fetchone()[0] == 0
