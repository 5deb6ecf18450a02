"""The app's route table: the OGC APIs are matched first (most of the traffic), which is
only right while no platform route lies under /ogc — a route added there would be
shadowed by the mount without a word. These tests say so the day someone adds one."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Mount, Route

OGC_PATHS = ["/ogc", "/ogc/", "/ogc/collections", "/ogc/collections/x/items",
             "/ogc/collections/x/items/1", "/ogc/collections/x/tiles/WebMercatorQuad/1/2/3",
             "/ogc/conformance", "/ogc/openapi", "/ogc/jobs", "/ogc/processes/x"]


@pytest.fixture(scope="module")
def app(database_url):
    import os

    from jmgeo import settings

    old = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url
    settings.reset_settings()
    try:
        from jmgeo.app import create_app

        yield create_app()
    finally:
        if old is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = old
        settings.reset_settings()


def _platform_routes(routes) -> list:
    """Every platform route, through FastAPI's included routers."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            out.extend(_platform_routes(inner.routes))
        elif isinstance(r, Mount) and r.path == "/ogc":
            continue
        else:
            out.append(r)
    return out


def test_the_ogc_apis_come_first(app):
    first, second = app.router.routes[:2]
    assert isinstance(first, Route) and first.path == "/ogc"
    assert isinstance(second, Mount) and second.path == "/ogc"


def test_no_platform_route_lies_under_ogc(app):
    routes = [r for r in _platform_routes(app.router.routes[2:])
              if hasattr(r, "path_regex")]
    assert len(routes) > 50                 # the walk reached the included routers
    for r in routes:
        for path in OGC_PATHS:
            assert not re.match(r.path_regex, path), (
                f"{r.path} would answer {path}, but the /ogc mount is matched first: "
                f"move the route out of /ogc")
