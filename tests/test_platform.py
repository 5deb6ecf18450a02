"""Set-up and operations: migrations up and down, provisioning, deployment files, clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from conftest import REPO, USER_DATABASE_URL, create_test_database, drop_test_database, migrate


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_migrations_up_down_up():
    from alembic import command

    from jmgeo.cli import alembic_config
    from jmgeo.settings import sqlalchemy_url

    dsn = create_test_database("jmgeo_mig")
    try:
        migrate(dsn)
        assert {"region", "region_part", "department", "layer", "layer_version",
                "audit_log", "registry_state"} <= _tables(dsn)
        cfg = alembic_config()
        cfg.attributes["url"] = sqlalchemy_url(dsn)
        command.downgrade(cfg, "base")
        assert _tables(dsn) <= {"alembic_version", "spatial_ref_sys"}
        migrate(dsn)
        assert "layer" in _tables(dsn)
    finally:
        drop_test_database(dsn)


def test_not_shared_layer_needs_legal_basis(db):
    db.execute("INSERT INTO department (code, name) VALUES ('t_legal', '测试局') "
               "ON CONFLICT DO NOTHING")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO layer (name, title, owner_dept_id, theme, sharing_class) "
                   "SELECT 't_secret', '秘密', id, 'land', 'not_shared' FROM department "
                   "WHERE code = 't_legal'")


def test_framework_reload_is_idempotent(database_url, db):
    from spatial.regions import load_framework

    before = db.execute("SELECT count(*), sum(ST_NPoints(geom)) FROM region").fetchone()
    load_framework(database_url)
    after = db.execute("SELECT count(*), sum(ST_NPoints(geom)) FROM region").fetchone()
    assert before == after


def test_ensure_with_database_url_leaves_system_alone(database_url, tmp_path):
    """With DATABASE_URL the provisioner only checks the database: no cluster, no files."""
    from jmgeo.provision import ensure
    from jmgeo.settings import Settings

    settings = Settings(DATABASE_URL=database_url, var_dir=tmp_path / "var")
    assert ensure(settings, log=lambda *a: None) == database_url
    assert not (tmp_path / "var").exists()


def test_ensure_with_unreachable_database_url_says_so(tmp_path):
    from jmgeo.provision import ProvisionError, ensure
    from jmgeo.settings import Settings

    settings = Settings(DATABASE_URL="postgresql://x:y@127.0.0.1:1/nope", var_dir=tmp_path)
    with pytest.raises(ProvisionError, match="cannot connect to DATABASE_URL"):
        ensure(settings, log=lambda *a: None)


def test_second_ensure_keeps_data():
    """A second `make run` (db ensure + upgrade) is quick and loses nothing."""
    from jmgeo.settings import Settings

    if USER_DATABASE_URL:
        pytest.skip("DATABASE_URL is set: the local cluster is not used")
    dsn = Settings().local_url_file.read_text().strip()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.keepme (v int)")
        conn.execute("INSERT INTO public.keepme VALUES (42)")
    try:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        for cmd in (["db", "ensure"], ["db", "upgrade"]):
            res = subprocess.run([sys.executable, "-m", "jmgeo.cli", *cmd], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT v FROM public.keepme").fetchall() == [(42,)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS public.keepme")


def test_cli_help_explains_itself():
    res = subprocess.run([sys.executable, "-m", "jmgeo.cli", "--help"], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 0
    for word in ("db", "serve", "regions", "demo"):
        assert word in res.stdout


def test_server_and_cli_settings_are_fields(monkeypatch):
    """JMGEO_WORKERS, JMGEO_DEBUG and JMGEO_UPLOAD_MAX_BYTES are read in jmgeo.settings."""
    from jmgeo import settings
    from jmgeo.cli import build_parser

    monkeypatch.setenv("JMGEO_WORKERS", "3")
    monkeypatch.setenv("JMGEO_DEBUG", "")
    monkeypatch.setenv("JMGEO_UPLOAD_MAX_BYTES", "1000")
    settings.reset_settings()
    try:
        s = settings.get_settings()
        assert (s.workers, s.debug, s.upload_max_bytes) == (3, False, 1000)
        assert build_parser().parse_args(["serve"]).workers == 3
        monkeypatch.setenv("JMGEO_DEBUG", "1")
        settings.reset_settings()
        assert settings.get_settings().debug is True
        monkeypatch.setenv("JMGEO_HOST", "127.0.0.1")  # restored (unset) afterwards
        monkeypatch.setenv("JMGEO_PORT", "5000")
        monkeypatch.delenv("JMGEO_PUBLIC_URL", raising=False)
        settings.export_for_workers(host="0.0.0.0", port=8123)
        assert (os.environ["JMGEO_HOST"], os.environ["JMGEO_PORT"]) == ("0.0.0.0", "8123")
        assert settings.get_settings().base_url == "http://0.0.0.0:8123"
        with pytest.raises(KeyError):
            settings.export_for_workers(hots="x")
    finally:
        settings.reset_settings()


def test_docker_compose_matches_settings():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    app = compose["services"]["app"]
    db = compose["services"]["db"]
    assert "postgis" in db["image"]
    url = app["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql://") and "@db:5432/" in url
    from jmgeo.settings import Settings

    known = {f.validation_alias or f"JMGEO_{name.upper()}"
             for name, f in Settings.model_fields.items()}
    assert set(app["environment"]) <= known, "compose sets variables the app does not read"
    assert "5000:5000" in app["ports"]
    assert Path(REPO / "Dockerfile").exists()


def test_generated_pygeoapi_config_is_reproducible(database_url):
    res = [subprocess.run([sys.executable, "-m", "jmgeo.cli", "ogc", "config"], cwd=REPO,
                          capture_output=True, text=True) for _ in range(2)]
    assert res[0].returncode == 0, res[0].stderr
    assert res[0].stdout == res[1].stdout
    cfg = yaml.safe_load(res[0].stdout)
    assert "regions" in cfg["resources"]


def test_owslib_lists_and_reads_regions(live_server):
    from owslib.ogcapi.features import Features

    api = Features(f"{live_server}/ogc")
    ids = [c["id"] for c in api.collections()["collections"]]
    assert "regions" in ids
    items = api.collection_items("regions", bbox=[113.05, 22.56, 113.10, 22.60], limit=20)
    assert "440703" in {f["id"] for f in items["features"]}


def test_gdal_oapif_reads_regions(live_server):
    pyogrio = pytest.importorskip("pyogrio")
    if "OAPIF" not in pyogrio.list_drivers():
        pytest.skip("this GDAL build has no OAPIF driver")
    df = pyogrio.read_dataframe(f"OAPIF:{live_server}/ogc", layer="regions")
    assert len(df) == 8
    assert "蓬江区" in set(df["name"])


def test_database_down_answers_503(database_url):
    """API calls answer 503 with a message (never a traceback) when the database is gone."""
    from fastapi.testclient import TestClient

    from jmgeo import settings as settings_mod
    from jmgeo.app import create_app
    from jmgeo.db import close_pools

    old = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = "postgresql://jmgeo:x@127.0.0.1:1/jmgeo"
    os.environ["JMGEO_DB_POOL_TIMEOUT"] = "1"
    settings_mod.reset_settings()
    close_pools()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            for path in ("/health", "/regions", "/regions/440703", "/ogc/collections",
                         "/ogc/collections/regions/items"):
                r = client.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text)
                body = json.loads(r.text)
                assert "Traceback" not in r.text
                assert "unavailable" in json.dumps(body)
                assert body["code"] == "ServiceUnavailable" and " / " in body["description"]
    finally:
        os.environ["DATABASE_URL"] = old
        os.environ.pop("JMGEO_DB_POOL_TIMEOUT", None)
        settings_mod.reset_settings()
        close_pools()
