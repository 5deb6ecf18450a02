"""Migration 0010 (catalog) upgrades, downgrades and upgrades again; one head."""

from __future__ import annotations

import psycopg
from alembic.script import ScriptDirectory

from conftest import create_test_database, drop_test_database, migrate


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename LIKE 'catalog%%'")}


def test_single_head_and_downgrade():
    from alembic import command

    from jmgeo.cli import alembic_config
    from jmgeo.settings import sqlalchemy_url

    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    assert len(script.get_heads()) == 1
    down = script.get_revision("0010").down_revision
    dsn = create_test_database("jmgeo_test_mig")
    try:
        migrate(dsn)
        assert _tables(dsn) == {"catalog_entry", "catalog_item", "catalog_history",
                                "catalog_state"}
        cfg.attributes["url"] = sqlalchemy_url(dsn)
        command.downgrade(cfg, down)
        assert _tables(dsn) == set()
        migrate(dsn)
        assert "catalog_entry" in _tables(dsn)
    finally:
        drop_test_database(dsn)
