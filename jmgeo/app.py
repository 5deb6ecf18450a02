"""The ASGI app: platform APIs (health, regions, …) and pygeoapi mounted at /ogc.

Every request is authenticated first (``jmgeo.http.AuthMiddleware``, pure ASGI, the key
lookup off the event loop), inside CORS and gzip (``jmgeo.web``); routes take the caller
from ``jmgeo.http.CallerDep`` and a resource they name from a ``jmgeo.http.visible_resource`` dependency, and everything that
publishes data asks ``layers.policy``. Every error is the one envelope
``{"code", "description"}`` (``jmgeo.http.install_error_envelope``); clients never see a
traceback: database outages answer 503, anything else 500.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jmgeo import __version__, downloads
from jmgeo.apidocs import install_docs
from jmgeo.audit_api import audit_router
from jmgeo.baselib_api import router as baselib_router
from jmgeo.catalog_api import router as catalog_router
from jmgeo.console import install_console
from jmgeo.db import DatabaseUnavailable, connection
from jmgeo.deliveries_api import router as deliveries_router
from jmgeo.exchange_api import router as exchange_router
from jmgeo.feed_api import router as feed_router
from jmgeo.fep_api import router as fep_router
from jmgeo.guard import RequestGuard
from jmgeo.http import (
    UNAVAILABLE,
    AuthMiddleware,
    CallerDep,
    LayerInQuery,
    audit_or_503,
    envelope,
    flush_deliveries,
    install_error_envelope,
)
from jmgeo.jobs_api import router as jobs_router
from jmgeo.ogc import router as ogc_router
from jmgeo.ogc.provider import table_columns
from jmgeo.portal import router as portal_router
from jmgeo.query_api import QueryLimiter
from jmgeo.query_api import router as query_router
from jmgeo.replicas import ReadScope, close_replicas, read_connection, replica_set
from jmgeo.settings import get_settings
from jmgeo.subscriptions_api import receiver_router
from jmgeo.subscriptions_api import router as subscriptions_router
from jmgeo.supervision_api import router as supervision_router
from jmgeo.upload_api import router as upload_router
from jmgeo.web import install_web
from spatial import regions

LOGGER = logging.getLogger("jmgeo")
STATIC_DIR = Path(__file__).parent / "static"


def create_app() -> FastAPI:
    from jmgeo.ogc import patches

    patches.apply()
    app = FastAPI(
        title="江门市政务大数据平台 · 地理空间框架 / Jiangmen spatial data platform",
        version=__version__,
        description="Regions, layer registry and sharing; share requests under /exchange; "
                    "OGC APIs under /ogc.",
        docs_url=None, redoc_url=None,  # /docs: local Swagger UI (jmgeo.apidocs)
    )
    app.add_middleware(ReadScope)  # GET/HEAD reads may use a replica (jmgeo.replicas)
    app.add_middleware(AuthMiddleware)
    app.add_middleware(RequestGuard)  # hostile values refused before authentication
    install_web(app, get_settings())  # CORS and compression, around authentication
    install_error_envelope(app)
    install_docs(app)
    # online query's rate limit: one token bucket per client, in this process
    app.state.query_limiter = QueryLimiter.from_settings()
    # the online queries counted but not yet written go to the database at shutdown
    app.router.on_shutdown.append(flush_deliveries)
    app.router.on_shutdown.append(close_replicas)

    @app.get("/health", tags=["platform"])
    def health() -> JSONResponse:
        """Database and PostGIS versions; 503 when the database (the primary) is down.
        With read replicas, how many are in use (a worker whose replicas are all out
        still serves: it reads the primary)."""
        try:
            with connection() as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version') AS postgres, "
                    "postgis_lib_version() AS postgis, "
                    "(SELECT version_num FROM alembic_version) AS migration").fetchone()
        except (DatabaseUnavailable, psycopg.Error) as exc:
            return envelope(503, UNAVAILABLE, status="unavailable", database="down",
                            error=type(exc).__name__)
        body = {"status": "ok", "version": __version__, "database": "up",
                "postgres": row["postgres"], "postgis": row["postgis"],
                "migration": row["migration"]}
        replicas = replica_set()
        if replicas is not None:
            body["replicas"] = replicas.status()
        return JSONResponse(body)

    @app.get("/regions", tags=["regions"])
    def region_list() -> dict:
        """The current administrative regions as a tree (city → counties → towns)."""
        with read_connection() as conn:
            return {"regions": regions.region_tree(conn)}

    @app.get("/regions/locate", tags=["regions"])
    def region_locate(lon: float = Query(..., ge=-180, le=180, description="CGCS2000 lon"),
                      lat: float = Query(..., ge=-90, le=90, description="CGCS2000 lat")) -> dict:
        """Which county (and town, where town polygons exist) contains the point."""
        with read_connection() as conn:
            return regions.locate(conn, lon, lat)

    @app.get("/regions/{code}/stats", tags=["regions"])
    def region_statistics(request: Request, code: str, caller: CallerDep,
                          resource: LayerInQuery,
                          group_by: str | None = Query(None, description="a property")
                          ) -> JSONResponse:
        """Count, area (m²) and length (m) of a layer per child region of ``code``,
        optionally per value of a property — within the caller's rights, audited. A
        layer the caller may not see answers the standard 404 (``LayerInQuery``)."""
        from layers.access_sql import AccessSQL

        row, access, layer = resource.row, resource.access, resource.name
        with connection() as conn:
            if row["kind"] != "vector":
                what = "栅格图层" if row["kind"] == "raster" else "表格资源（无几何）"
                raise HTTPException(400, f"参数 layer：{what}没有要素统计 / parameter layer: "
                                         f"{layer} is a {row['kind']} resource; statistics "
                                         "count features of vector layers")
            rules = AccessSQL(access, table_columns(row["table_name"]))
            group_sql = None
            if group_by is not None:
                # hidden, masked and absent fields answer alike
                if (group_by == "geom" or not rules.visible(group_by)
                        or rules.masked(group_by)):
                    raise HTTPException(400, f"参数 group_by：未知字段 / parameter group_by: "
                                             f"unknown property {group_by}")
                group_sql = rules.column(group_by)
            # a scan of the whole index: the regions' bbox first, as for downloads
            scope, scope_params = rules.row_scope(prefilter=True)
            try:
                result = regions.region_stats(
                    conn, code, row["table_name"], group_by=group_sql,
                    scope=None if scope is None else (scope, scope_params))
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
        if result is None:
            raise HTTPException(404, f"区划代码不存在 / unknown region code: {code}")
        result["layer"] = layer
        refused = audit_or_503(caller, access, "regions.stats", request, len(result["rows"]))
        if refused is not None:
            return refused
        headers = {"Cache-Control": "private, no-store"} if access.audited else {}
        return JSONResponse(result, headers=headers)

    @app.get("/regions/{code}", tags=["regions"])
    def region_get(code: str) -> JSONResponse:
        """One region as GeoJSON (EPSG:4490 lon/lat = CRS84 order)."""
        with read_connection() as conn:
            feat = regions.region_feature(conn, code)
        if feat is None:
            raise HTTPException(404, f"区划代码不存在 / unknown region code: {code}")
        return JSONResponse(feat, media_type="application/geo+json")

    app.include_router(audit_router)
    app.include_router(upload_router)
    app.include_router(catalog_router)
    app.include_router(jobs_router)
    app.include_router(deliveries_router)
    app.include_router(exchange_router)
    app.include_router(fep_router)
    app.include_router(query_router)
    app.include_router(baselib_router)
    app.include_router(feed_router)
    app.include_router(subscriptions_router)
    app.include_router(receiver_router)
    app.include_router(supervision_router)
    app.include_router(downloads.router)
    app.include_router(portal_router)  # HTML pages: /portal/… (and / → /portal/)
    install_console(app)  # the department console's pages (/console)
    # the platform's own scripts, styles and fonts, and the npm packages `make assets` copied
    # to jmgeo/static/vendor/: pages load nothing from elsewhere (offline government network)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    # the landing page at /ogc itself too (its own links say /ogc?f=json): no 307 to /ogc/.
    # First in the table: the OGC APIs take most of the traffic, and matching a request
    # against the ~100 platform routes before them cost ~0.2 ms of every one. No platform
    # route lies under /ogc (tests/test_app_routes.py), so the order changes no answer.
    app.router.routes[0:0] = [Route("/ogc", ogc_router.landing),
                              Mount("/ogc", routes=ogc_router.routes())]
    return app
