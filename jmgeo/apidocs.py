"""The interactive API documentation at ``/docs``: Swagger UI served by the platform.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN and starts it with an inline
script; on the offline government network the first fails and the strict
Content-Security-Policy (``jmgeo.web``) refuses the second. This page loads the
swagger-ui-dist copy ``make assets`` puts under /static/vendor/ and a static initializer
(/static/docs/swagger-init.js) that reads the document's URL from the page. pygeoapi's
``/ogc/openapi?f=html`` uses the same two files (``jmgeo/ogc/templates``). ReDoc is not
offered: its bundle injects inline styles, which the policy refuses.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

SWAGGER_UI = "/static/vendor/swagger-ui-dist"
SWAGGER_INIT = "/static/docs/swagger-init.js"


def swagger_page(title: str, spec_url: str) -> str:
    """A Swagger UI page for the OpenAPI document at ``spec_url`` (same origin)."""
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
<link rel="icon" type="image/png" href="{SWAGGER_UI}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-spec-url="{escape(spec_url)}"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="{SWAGGER_INIT}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from the local Swagger UI (create the app with ``docs_url=None,
    redoc_url=None``)."""

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(swagger_page(f"{app.title} · API", app.openapi_url or ""))

    app.add_route("/docs", docs, include_in_schema=False)
