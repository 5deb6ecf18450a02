"""Keyset paging stays on the version it started on, across a concurrent reload."""

from __future__ import annotations

import psycopg
import pytest

from layers.departments import ensure_departments
from layers.registry import Column, create_data_table, publish


def _publish(dsn: str, version: int, tag: str, n: int) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        ensure_departments(conn)
        table = create_data_table(conn, "t_paging", version, "MultiPoint",
                                  [Column("tag", "text", "版本标记")])
        conn.execute(f"INSERT INTO {table} (fid, geom, tag) SELECT g, ST_Multi(ST_SetSRID("
                     "ST_Point(113.0 + g * 0.001, 22.5), 4490)), %s FROM generate_series(1, %s) g",
                     (tag, n))
        publish(conn, layer="t_paging", version=version, table_name=table, feature_count=n,
                report={}, title="分页测试", dept="sw", theme="water", sharing_class="open")


@pytest.fixture(scope="module")
def paging_layer(database_url):
    _publish(database_url, 1, "v1", 25)
    return "t_paging"


def _next(body: dict) -> str | None:
    links = [link["href"] for link in body["links"] if link["rel"] == "next"]
    return links[0].replace("http://testserver", "") if links else None


def test_next_link_survives_a_reload(app_client, database_url, paging_layer):
    first = app_client.get("/ogc/collections/t_paging/items",
                           params={"f": "json", "limit": 10}).json()
    assert [f["id"] for f in first["features"]] == list(range(1, 11))
    # a department reloads the layer between page 1 and page 2
    _publish(database_url, 2, "v2", 12)
    second = app_client.get(_next(first)).json()
    assert [f["id"] for f in second["features"]] == list(range(11, 21))
    assert {f["properties"]["tag"] for f in second["features"]} == {"v1"}
    third = app_client.get(_next(second)).json()
    assert [f["id"] for f in third["features"]] == list(range(21, 26))
    # a fresh request reads the new version
    fresh = app_client.get("/ogc/collections/t_paging/items",
                           params={"f": "json", "limit": 50}).json()
    assert len(fresh["features"]) == 12
    assert {f["properties"]["tag"] for f in fresh["features"]} == {"v2"}


def test_cursor_of_a_removed_version_is_a_clear_400(app_client, paging_layer):
    import base64
    import json

    token = base64.urlsafe_b64encode(json.dumps({"v": 99, "k": [1]}).encode()).decode()
    r = app_client.get("/ogc/collections/t_paging/items", params={"cursor": token})
    assert r.status_code == 400
    assert "no longer exists" in r.json()["description"]
