"""Migration 0025: the base libraries' value history moves from one row per value
(``baselib_value``) to one row per source record (``baselib_record``) without losing a
value or either time, and :func:`baselib.integrate.value_history` reads it back per value
(an attribute that did not change shows once however often its neighbours did)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from alembic import command
from baselib_fixtures import ric
from psycopg.rows import dict_row

from baselib.integrate import value_history
from conftest import create_test_database, drop_test_database, migrate

T1 = datetime(2026, 1, 5, 9, tzinfo=UTC)
T2 = datetime(2026, 3, 2, 9, tzinfo=UTC)
KEY = ric(41)


def _cfg(dsn: str):
    from jmgeo.cli import alembic_config
    from jmgeo.settings import sqlalchemy_url

    cfg = alembic_config()
    cfg.attributes["url"] = sqlalchemy_url(dsn)
    return cfg


def _value(conn, attribute, value, version, recorded, superseded=None, valid_to=None):
    conn.execute(
        "INSERT INTO baselib_value (library, key, attribute, value, dept_code, resource, "
        "resource_version, loaded_at, valid_from, valid_to, recorded_at, superseded_at) "
        "VALUES ('persons', %s, %s, %s, 'gaj', 'gaj_hj', %s, %s, %s, %s, %s, %s)",
        (KEY, attribute, value, version, recorded, recorded, valid_to, recorded, superseded))


def test_values_become_records_and_read_back_per_value():
    dsn = create_test_database("jmgeo_test_blmig")
    try:
        migrate(dsn, "0024")
        with psycopg.connect(dsn, autocommit=True) as conn:
            # v1 (T1): name 陈大明, gender 男; v2 (T2): name corrected to 陈大民
            _value(conn, "name", "陈大明", 1, T1, superseded=T2, valid_to=T2)
            _value(conn, "gender", "男", 1, T1)
            _value(conn, "name", "陈大民", 2, T2)
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            recs = conn.execute("SELECT record, resource_version, recorded_at, "
                                "superseded_at, valid_to FROM baselib_record WHERE key = %s "
                                "ORDER BY recorded_at", (KEY,)).fetchall()
            assert [r["record"] for r in recs] == [{"name": "陈大明", "gender": "男"},
                                                   {"name": "陈大民", "gender": "男"}]
            assert recs[0]["superseded_at"] == T2 and recs[1]["superseded_at"] is None
            assert recs[0]["valid_to"] == T2 and recs[1]["valid_to"] is None
            assert not conn.execute("SELECT to_regclass('baselib_value') IS NOT NULL"
                                    ).fetchone()["?column?"]
            hist = value_history(conn, "persons", KEY)
        got = {(h["attribute"], h["value"]): h for h in hist}
        assert set(got) == {("name", "陈大明"), ("name", "陈大民"), ("gender", "男")}
        # the gender never changed: one value, current, first given in version 1 at T1
        g = got[("gender", "男")]
        assert (g["resource_version"], g["recorded_at"], g["superseded_at"],
                g["valid_to"]) == (1, T1, None, None)
        old = got[("name", "陈大明")]
        assert old["superseded_at"] == T2 and old["valid_to"] == T2
        assert got[("name", "陈大民")]["resource_version"] == 2
        # and back down: the value rows again, then up again
        command.downgrade(_cfg(dsn), "0024")
        with psycopg.connect(dsn) as conn:
            back = {r[0] for r in conn.execute(
                "SELECT DISTINCT attribute || '=' || value FROM baselib_value")}
            assert back == {"name=陈大明", "name=陈大民", "gender=男"}
        migrate(dsn)
    finally:
        drop_test_database(dsn)
