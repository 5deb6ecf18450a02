"""A department's audience kept between requests, and what ends it (``jmgeo.ogc.audiences``).

The API keeps what each (role, department) may read — the layers, the grant behind each
one, a region grant's box — while the registry epoch and the access epoch stand still
(migrations 0017 and 0028) and no grant of the department starts or ends. That is only
safe if every grant change and every region-boundary change moves the access epoch,
whoever makes it, and the very next request sees it; and if a grant's period running out
(no row changes) ends it all the same. Each test here failed against an audience cache
keyed on the registry epoch alone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from policy_fixtures import create_layers, layer_name

COND = layer_name("conditional")
DEPT = "tae"  # a department of its own: its grants concern no other test
OTHER = "taf"  # one more, never granted anything


@pytest.fixture(scope="module")
def token(database_url) -> str:
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identifiers import make_uscc
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + [
            {"code": DEPT, "name": "缓存测试局", "uscc": make_uscc("11", "440700", "00799901")},
            {"code": OTHER, "name": "缓存对照局", "uscc": make_uscc("11", "440700", "00799902")}])
        create_layers(conn)
        return create_key(conn, f"tae-{time.time()}", dept=DEPT)["token"]


@pytest.fixture(scope="module")
def other_token(token, database_url) -> str:
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        return create_key(conn, f"taf-{time.time()}", dept=OTHER)["token"]


def epochs(conn) -> tuple[int, int]:
    return conn.execute("SELECT epoch, access_epoch FROM registry_state WHERE id = 1"
                        ).fetchone()


def grant(conn, **kw) -> int:
    from layers.grants import add_grant

    return add_grant(conn, layer=COND, dept=DEPT, purpose="缓存测试 cache test",
                     approved_by="测试审批人", **kw)


def items_status(client, token: str | None) -> int:
    return client.get(f"/ogc/collections/{COND}/items", params={"f": "json"},
                      headers={"X-API-Key": token} if token else {}).status_code


def test_grant_and_boundary_changes_move_the_access_epoch_once(token, db):
    from layers.grants import revoke_grant

    registry, access = epochs(db)
    with db.transaction():
        gid = grant(db)
        db.execute("UPDATE layer_grant SET notes = 'x' WHERE id = %s", (gid,))
        assert epochs(db) == (registry, access)  # deferred: nothing moves before commit
    assert epochs(db) == (registry, access + 1)  # the catalog's epoch did not move
    revoke_grant(db, gid, by="test")
    assert epochs(db) == (registry, access + 2)
    with db.transaction():
        db.execute("UPDATE region_part SET geom = geom WHERE code = '440703'")
    assert epochs(db) == (registry, access + 3)


def test_a_grant_issued_or_revoked_is_seen_by_the_very_next_request(token, db, app_client):
    from layers.grants import revoke_grant

    for _ in range(3):
        assert items_status(app_client, token) == 404
        assert items_status(app_client, token) == 404  # now from the kept audience
        gid = grant(db)
        assert items_status(app_client, token) == 200
        assert items_status(app_client, token) == 200
        revoke_grant(db, gid, by="test")
        assert items_status(app_client, token) == 404


def test_a_kept_audience_is_its_own_departments_alone(token, other_token, db, app_client):
    """The key is role and department: a department granted the layer and one that is not
    ask in turn, each from its kept audience — and neither ever gets the other's."""
    from layers.grants import revoke_grant

    gid = grant(db)
    try:
        for _ in range(3):
            assert items_status(app_client, token) == 200
            assert items_status(app_client, other_token) == 404
            assert items_status(app_client, None) == 404  # anonymous
    finally:
        revoke_grant(db, gid, by="test")
    assert items_status(app_client, token) == 404


def test_a_region_grant_is_scoped_by_the_boundaries_of_now(token, db, app_client):
    """The kept audience holds the box of the grant's regions: a boundary change moves
    the access epoch, so the next request's collection extent is the new box."""
    from layers.grants import revoke_grant

    def box() -> list[float]:
        r = app_client.get(f"/ogc/collections/{COND}", params={"f": "json"},
                           headers={"X-API-Key": token})
        assert r.status_code == 200
        return r.json()["extent"]["spatial"]["bbox"][0]

    gid = grant(db, regions=["440703"])
    moved = False
    try:
        before = box()
        assert box() == before
        with db.transaction():  # move 蓬江区's boundary 0.5° east (and back afterwards)
            db.execute("UPDATE region_part SET geom = ST_Translate(geom, 0.5, 0) "
                       "WHERE code = '440703'")
            moved = True
        assert box()[0] == pytest.approx(before[0] + 0.5)
    finally:
        if moved:
            db.execute("UPDATE region_part SET geom = ST_Translate(geom, -0.5, 0) "
                       "WHERE code = '440703'")
        revoke_grant(db, gid, by="test")
    assert items_status(app_client, token) == 404


def test_a_grant_period_ending_or_starting_ends_the_kept_audience(token, db, app_client):
    """No row changes when a grant's period runs out or begins: the kept audience lasts
    only until the next such instant of the department's grants."""
    from layers.grants import revoke_grant

    soon = datetime.now(UTC) + timedelta(seconds=2)
    ending = grant(db, valid_to=soon)
    starting = None
    try:
        assert items_status(app_client, token) == 200
        assert items_status(app_client, token) == 200
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.3)
        assert items_status(app_client, token) == 404  # ended: no epoch moved
        later = datetime.now(UTC) + timedelta(seconds=2)
        starting = grant(db, valid_from=later)
        assert items_status(app_client, token) == 404
        time.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.3)
        assert items_status(app_client, token) == 200  # begun: no epoch moved
    finally:
        for gid in (ending, starting):
            if gid is not None:
                revoke_grant(db, gid, by="test")
