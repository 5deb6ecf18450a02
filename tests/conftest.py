"""Test fixtures: a fresh, migrated PostGIS database per test session — never mocked.

The database lives on the server ``make test`` provisioned (or the one DATABASE_URL names);
each session gets its own database name so parallel runs cannot collide, and drops it
at the end. ``app_client`` runs the real ASGI app in-process over HTTP semantics.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from jmgeo import settings as settings_mod

REPO = Path(__file__).resolve().parent.parent
# what the person running the tests set, before fixtures point DATABASE_URL at test databases
USER_DATABASE_URL = os.environ.get("DATABASE_URL")
# the app-role DSN of a session's database -> the owner's DSN of the same database
OWNER_OF: dict[str, str] = {}


def start_worker(database_url: str, *args: str, **env: str):
    """A real ``jmgeo worker`` process of the test's own on ``database_url`` (``args``:
    e.g. ``--import MODULE``; ``env``: settings for it). Stop it with :func:`stop_process`."""
    import subprocess
    import sys

    full = dict(os.environ, DATABASE_URL=database_url, JMGEO_WORKER_HEARTBEAT="0.5", **env)
    return subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker", *args], env=full,
                            cwd=REPO)


def stop_process(proc, timeout: float = 15) -> None:
    """Stop a worker or server subprocess a test started: SIGTERM (running jobs finish),
    SIGKILL if it lingers past ``timeout``."""
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# the test server as its owner, resolved once, at import: the session then points
# DATABASE_URL at the app's role, and an owner DSN derived from it later could not create
# or migrate databases (make test sets no TEST_DATABASE_URL)
def _resolve_server_dsn() -> str:
    return (os.environ.get("TEST_DATABASE_URL")
            or settings_mod.Settings().resolved_owner_database_url())


try:
    _SERVER_DSN: str | None = _resolve_server_dsn()
except Exception:  # noqa: BLE001 - no database yet: the first fixture says why
    _SERVER_DSN = None


def _server_dsn() -> str:
    return _SERVER_DSN or _resolve_server_dsn()


def _with_db(dsn: str, dbname: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{dbname}").geturl()


def create_test_database(prefix: str = "jmgeo_test") -> str:
    """Create an empty database with PostGIS on the test server; return its DSN."""
    base = _server_dsn()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(_with_db(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_db(base, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return dsn


def drop_test_database(dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    from jmgeo.db import close_pools

    close_pools()
    with psycopg.connect(_with_db(dsn, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(dsn: str, revision: str = "head") -> None:
    from alembic import command

    from jmgeo.cli import alembic_config
    from jmgeo.settings import sqlalchemy_url

    cfg = alembic_config()
    cfg.attributes["url"] = sqlalchemy_url(dsn)
    command.upgrade(cfg, revision)


APP_ROLE = "jmgeo_app"  # migration 0024 grants the app's rights to it


def create_app_login(owner_dsn: str) -> str | None:
    """A login role of this session, member of the app role, and its DSN for the same
    database: the tests' app connects as the platform does in production, owning nothing
    and unable to modify audit rows. None when the server has no app role (the owner
    could not create it): the app then connects as the owner."""
    import secrets
    from urllib.parse import quote

    name = f"jmgeo_app_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
    password = secrets.token_urlsafe(18)
    with psycopg.connect(_with_db(owner_dsn, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                            (APP_ROLE,)).fetchone():
            return None
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN IN ROLE {} PASSWORD {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(APP_ROLE),
            psycopg.sql.Literal(password)))
    parts = urlsplit(owner_dsn)
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def drop_app_login(app_dsn: str, owner_dsn: str) -> None:
    """Drop the session's login role (its database, with what it owned, is gone)."""
    name = urlsplit(app_dsn).username
    with psycopg.connect(_with_db(owner_dsn, "postgres"), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(
            psycopg.sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database with the Jiangmen framework (regions) loaded, as the app's
    role sees it (``owner_database_url`` is the same database as its owner)."""
    owner = create_test_database()
    old = {k: os.environ.get(k) for k in ("DATABASE_URL", "JMGEO_TILE_CACHE_DIR",
                                          "JMGEO_AUDIT_KEY_FILE",
                                          "JMGEO_AUDIT_CHECKPOINT_FILE")}
    app_dsn = None
    # the session's tile cache: its own directory (jmgeo.ogc.tilecache), removed at the end
    tile_dir = tempfile.mkdtemp(prefix="jmgeo-tiles-")
    os.environ["JMGEO_TILE_CACHE_DIR"] = tile_dir
    # the session's download file cache, beside nothing else's (workers inherit it)
    cache_dir = tempfile.mkdtemp(prefix="jmgeo-test-dlcache-")
    os.environ.setdefault("JMGEO_DOWNLOAD_CACHE_DIR", cache_dir)
    # links come from configuration, never from Host: the in-process client's base URL
    os.environ.setdefault("JMGEO_PUBLIC_URL", "http://testserver")
    # the session's audit key and checkpoint files (outside the database, layers.audit_keys)
    audit_dir = tempfile.mkdtemp(prefix="jmgeo-test-audit-")
    os.environ["JMGEO_AUDIT_KEY_FILE"] = os.path.join(audit_dir, "keys.json")
    os.environ["JMGEO_AUDIT_CHECKPOINT_FILE"] = os.path.join(audit_dir, "checkpoints.jsonl")
    try:
        os.environ["DATABASE_URL"] = owner
        settings_mod.reset_settings()
        migrate(owner)
        app_dsn = create_app_login(owner) or owner
        OWNER_OF[app_dsn] = owner
        # JMGEO_OWNER_DATABASE_URL stays unset: a test that points DATABASE_URL at a
        # database of its own (and its subprocesses) must migrate that one
        os.environ["DATABASE_URL"] = app_dsn
        settings_mod.reset_settings()
        from spatial.regions import load_framework

        load_framework(app_dsn)
        yield app_dsn
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tile_dir, ignore_errors=True)
        shutil.rmtree(audit_dir, ignore_errors=True)
        settings_mod.reset_settings()
        shutil.rmtree(cache_dir, ignore_errors=True)
        drop_test_database(owner)
        if app_dsn and app_dsn != owner:
            drop_app_login(app_dsn, owner)


@pytest.fixture(scope="session")
def owner_database_url(database_url: str) -> str:
    """The session's database as its owner (on the local cluster a superuser): for tests
    that do what the app's role may not (tamper with the audit log, add triggers)."""
    return OWNER_OF.get(database_url, database_url)


@pytest.fixture
def server_clock_on_another_day(monkeypatch):
    """The server's own time zone on another calendar day than Jiangmen's (UTC-12 while
    it is before 20:00 in China, else UTC+14): "today" must be China's wherever the
    server's clock is set (a UTC server judged a day behind from 00:00 to 08:00)."""
    import datetime as dt
    import time

    from exchange import clock

    china = dt.datetime.now(clock.CHINA)
    monkeypatch.setenv("TZ", "Etc/GMT+12" if china.hour < 20 else "Pacific/Kiritimati")
    time.tzset()
    assert dt.date.today() != china.date()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def fresh_settings():
    """Call it after changing ``JMGEO_*`` variables: settings are read once per process
    (``jmgeo.settings.get_settings``); they are read afresh again after the test, when
    monkeypatch has put the environment back."""
    yield settings_mod.reset_settings
    settings_mod.reset_settings()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def app_client(database_url: str):
    """The real ASGI app (pygeoapi mounted at /ogc) driven through Starlette's TestClient."""
    from fastapi.testclient import TestClient

    from jmgeo.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as client:
        yield client


@contextmanager
def serve(database_url: str, **env: str) -> Iterator[str]:
    """The platform served by uvicorn on a free loopback port (its URL), with ``env``
    (``JMGEO_*`` settings) added to the environment of the server process."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=database_url,
               JMGEO_PUBLIC_URL=f"http://127.0.0.1:{port}", **env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "jmgeo.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the platform did not start for the live-server tests")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def serve_with(database_url: str):
    """``serve_with(JMGEO_X=...)``: a context manager serving the platform with those
    settings (a server of the test's own; ``live_server`` is the shared default one)."""
    return lambda **env: serve(database_url, **env)


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The platform served by uvicorn on a free loopback port, for real HTTP clients."""
    with serve(database_url) as url:
        yield url
