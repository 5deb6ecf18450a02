"""Data for the portal tests (a pytest plugin: ``pytest_plugins = ["portal_fixtures"]``):
the bundled Jiangmen demo layers (open rivers, reservoirs and bus stops; unconditional
roads; conditional parcels and enterprises; not-shared shelters) and the policy world
(``tpol_*``: one vector layer and one table per sharing class), loaded once per session
into the session database, before any server the test asks for."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture(scope="session")
def portal_world(database_url, tmp_path_factory) -> dict[str, int]:
    """Load the data; returns the catalog entry id of each resource by layer name."""
    from policy_fixtures import build_world

    from catalog import sync
    from loaders.demo import load_demo_layers

    load_demo_layers(database_url, log=lambda *_: None,
                     out=tmp_path_factory.mktemp("portal-demo"))
    build_world(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        sync.ensure_synced(conn)
        rows = conn.execute("SELECT layer_name, id FROM catalog_entry WHERE layer_name IS "
                            "NOT NULL AND status = 'published'").fetchall()
    return {name: eid for name, eid in rows}


@pytest.fixture(scope="session")
def site(portal_world, live_server) -> str:
    """The live server, with the portal's data loaded."""
    return live_server
