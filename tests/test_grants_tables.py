"""Grants on table resources: fields yes, regions no (a table has no geometry)."""

from __future__ import annotations

import pytest

from layers.grants import GrantError, add_grant
from layers.registry import Column, create_data_table, index_key, publish

NAME = "tgr_enterprises"


@pytest.fixture(scope="module")
def table(database_url):
    import psycopg

    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        if conn.execute("SELECT 1 FROM layer WHERE name = %s", (NAME,)).fetchone() is None:
            with conn.transaction():
                t = create_data_table(conn, NAME, 1, None,
                                      [Column("uscc", label="统一社会信用代码"),
                                       Column("name", label="企业名称")])
                conn.execute(f"INSERT INTO {t} (fid, uscc, name) VALUES "
                             "(1, '91440700MA4UJ0AX3W', '江门甲公司')")
                index_key(conn, t, "uscc")
                publish(conn, layer=NAME, version=1, table_name=t, feature_count=1,
                        report={}, title="企业名录", dept="gtzy", theme="enterprise",
                        sharing_class="conditional", kind="table", key_field="uscc")
    return NAME


def test_a_table_takes_a_field_grant(db, table):
    gid = add_grant(db, layer=table, dept="hb", purpose="环境执法", approved_by="x",
                    fields=["uscc", "name"])
    assert gid > 0


def test_a_region_grant_on_a_table_is_refused_naming_the_fix(db, table):
    with pytest.raises(GrantError) as err:
        add_grant(db, layer=table, dept="hb", purpose="环境执法", approved_by="x",
                  regions=["440703"])
    msg = str(err.value)
    assert "不能按区域授权" in msg and "--regions" in msg and "without geometry" in msg


def test_the_registry_refuses_a_table_without_key_and_a_change_of_kind(db, table):
    from layers.registry import RegistryError, register_layer

    with pytest.raises(RegistryError, match="--key"):
        register_layer(db, name="tgr_nokey", title="x", dept="gtzy", theme="x",
                       sharing_class="open", kind="table")
    with pytest.raises(RegistryError, match="is a table resource, not a vector"):
        register_layer(db, name=table, title="x", dept="gtzy", theme="x",
                       sharing_class="open", kind="vector", geometry_type="MultiPoint")
