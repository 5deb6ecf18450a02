"""The registry epoch and what the API keeps of the registry between requests.

Anonymous callers' pygeoapi audience is kept in memory while the registry epoch stands
still (``jmgeo.ogc.audiences``); that is only safe if every committed change of a
layer moves the epoch — whoever makes it — and a change is seen by the very next
request. Also: tiles answer MVT when the client names no format (a browser's fetch
sends ``Accept: */*``).
"""

from __future__ import annotations

import threading

import httpx
import mapbox_vector_tile
import psycopg
import pytest
from policy_fixtures import create_callers, create_layers, layer_name

OPEN = layer_name("open")


@pytest.fixture(scope="module")
def world(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        create_layers(conn)
        return create_callers(conn)


def epoch(conn) -> int:
    return conn.execute("SELECT epoch FROM registry_state WHERE id = 1").fetchone()[0]


def anonymous_ids(client) -> set[str]:
    r = client.get("/ogc/collections", params={"f": "json"})
    assert r.status_code == 200
    return {c["id"] for c in r.json()["collections"]}


def set_class(conn, name: str, cls: str) -> None:
    conn.execute("UPDATE layer SET sharing_class = %s, legal_basis = %s WHERE name = %s",
                 (cls, None if cls == "open" else "《测试》第一条", name))


def test_every_committed_change_moves_the_epoch_once(world, db):
    before = epoch(db)
    db.execute("UPDATE layer SET title = title WHERE name = %s", (OPEN,))
    assert epoch(db) == before + 1
    with db.transaction():  # many rows, two tables, one transaction: one step
        db.execute("UPDATE layer SET title = title")
        db.execute("UPDATE layer_version SET report = report")
        assert epoch(db) == before + 1  # deferred: nothing moves before the commit
    assert epoch(db) == before + 2
    with db.transaction():  # a publish bumps it itself to report it: still one step
        from layers.registry import bump_epoch

        reported = bump_epoch(db)
        db.execute("UPDATE layer SET title = title WHERE name = %s", (OPEN,))
        assert bump_epoch(db) == reported
    assert epoch(db) == reported == before + 3
    try:
        with db.transaction():
            db.execute("UPDATE layer SET title = title WHERE name = %s", (OPEN,))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert epoch(db) == before + 3  # a rolled-back change moves nothing


def test_a_change_is_seen_by_the_very_next_anonymous_request(world, db, app_client):
    """Reclassify and restore an open layer many times, each time asking at once."""
    assert OPEN in anonymous_ids(app_client)
    try:
        for _ in range(5):
            set_class(db, OPEN, "conditional")
            assert OPEN not in anonymous_ids(app_client)
            r = app_client.get(f"/ogc/collections/{OPEN}/items", params={"f": "json"})
            assert r.status_code == 404
            set_class(db, OPEN, "open")
            assert OPEN in anonymous_ids(app_client)
    finally:
        set_class(db, OPEN, "open")


def test_a_change_by_another_process_is_seen_by_the_server(world, database_url, live_server):
    """The server keeps its copy across requests; psql-style writes from elsewhere."""
    with psycopg.connect(database_url, autocommit=True) as conn, httpx.Client() as http:
        def ids() -> set[str]:
            r = http.get(f"{live_server}/ogc/collections", params={"f": "json"})
            return {c["id"] for c in r.json()["collections"]}

        assert OPEN in ids() and OPEN in ids()
        try:
            set_class(conn, OPEN, "not_shared")
            assert OPEN not in ids()
        finally:
            set_class(conn, OPEN, "open")
        assert OPEN in ids()


def test_concurrent_registry_changes_do_not_deadlock_on_the_epoch(world, database_url):
    """T1 changes layer A, T2 layer B, then T1 wants B: with the epoch moved at commit,
    T2 commits and T1 goes on (an epoch row locked at T1's first statement would make
    T2 wait for T1 while T1 waits for T2: a deadlock)."""
    a, b = layer_name("open"), layer_name("unconditional")
    t1 = psycopg.connect(database_url)
    t2 = psycopg.connect(database_url)
    errors: list[BaseException] = []
    try:
        t1.execute("SET lock_timeout = '10s'")
        t2.execute("SET lock_timeout = '10s'")
        t1.execute("UPDATE layer SET title = title WHERE name = %s", (a,))
        t2.execute("UPDATE layer SET title = title WHERE name = %s", (b,))

        def first() -> None:
            try:
                t1.execute("UPDATE layer SET title = title WHERE name = %s", (b,))
                t1.commit()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        worker = threading.Thread(target=first)
        worker.start()
        worker.join(0.5)  # T1 now waits for T2's row
        t2.commit()
        worker.join(20)
        assert not worker.is_alive()
        assert errors == []
    finally:
        t1.close()
        t2.close()


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "image/png"])
def test_a_tile_without_a_format_is_mvt(world, db, app_client, accept):
    from test_tiles import tile_of

    lon, lat = db.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) AS c FROM "
        "{} LIMIT 1) s".format(db.execute(
            "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id "
            "AND v.version = l.current_version WHERE l.name = %s", (OPEN,)).fetchone()[0])
    ).fetchone()
    row, col = tile_of("WebMercatorQuad", 12, lon, lat)
    headers = {"Accept": accept} if accept else {}
    r = app_client.get(f"/ogc/collections/{OPEN}/tiles/WebMercatorQuad/12/{row}/{col}",
                       headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert mapbox_vector_tile.decode(r.content)[OPEN]["features"]
