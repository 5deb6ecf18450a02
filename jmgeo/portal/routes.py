"""The portal's pages (see :mod:`jmgeo.portal`). Every page reads through
:mod:`jmgeo.portal.datasets` / :mod:`jmgeo.portal.regionpages`, which ask the catalog and
the policy as the APIs do; a page for something the caller may not see is the portal's
one 404 page."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.responses import HTMLResponse, Response

from jmgeo.db import connection
from jmgeo.http import CallerDep, audit_or_503
from jmgeo.portal import basemap, datasets, regionpages
from jmgeo.portal.pages import not_found, render

router = APIRouter(include_in_schema=False)
FILTER_KEYS = datasets.FACET_KEYS


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal")
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal/")
def home(request: Request, caller: CallerDep) -> HTMLResponse:
    with connection() as conn:
        figures = datasets.summary(conn, caller)
        latest = datasets.latest(conn, caller)
        counties = [c for city in regionpages.region_index(conn) for c in city["children"]]
    return render(request, "home.html", {"section": "home", "figures": figures,
                                         "latest": latest, "counties": counties})


@router.get("/portal/datasets")
def dataset_search(request: Request, caller: CallerDep,
                   q: str | None = Query(None, max_length=200),
                   page: int = Query(1, ge=1, le=10_000)) -> HTMLResponse:
    """Search the catalog (中文), narrowed by facets given as query parameters."""
    filters = {k: request.query_params.get(k) or None for k in FILTER_KEYS}
    with connection() as conn:
        result = datasets.search(conn, caller, q, filters, page)
    return render(request, "datasets.html", {"section": "datasets", "q": q or "",
                                             "filters": filters, "result": result})


@router.get("/portal/datasets/{entry_id}")
def dataset_page(request: Request, caller: CallerDep, entry_id: str) -> Response:
    """One dataset: metadata, fields, versions, quality, map or table preview,
    downloads, developer links. Hidden or missing: the same 404 page."""
    if not entry_id.isdigit() or not 0 < int(entry_id) < 2**31:
        return not_found(request)
    with connection() as conn:
        page = datasets.dataset(conn, caller, int(entry_id))
        if page is None:
            return not_found(request)
        res = page["resource"]
        if res is not None and res["kind"] == "table":
            row = conn.execute("SELECT l.name, l.field_labels, v.table_name FROM layer l "
                               "JOIN layer_version v ON v.layer_id = l.id AND v.version = "
                               "l.current_version WHERE l.name = %s",
                               (res["name"],)).fetchone()
            page["preview"] = datasets.preview(conn, row, res["access"])
            refused = audit_or_503(caller, res["access"], "portal.preview", request,
                                   len(page["preview"]["rows"]))
            if refused is not None:
                return refused
    return render(request, "dataset.html", {"section": "datasets", **page,
                                            "map": basemap.map_settings()})


@router.get("/portal/regions")
def region_list(request: Request) -> HTMLResponse:
    with connection() as conn:
        tree = regionpages.region_index(conn)
    return render(request, "regions.html", {"section": "regions", "tree": tree})


@router.get("/portal/regions/{code}")
def region_page(request: Request, caller: CallerDep, code: str) -> Response:
    if not code.isdigit() or len(code) > 12:
        return not_found(request)
    with connection() as conn:
        page = regionpages.region_page(conn, caller, code)
    if page is None:
        return not_found(request)
    for access, rows in page.pop("audited"):
        refused = audit_or_503(caller, access, "portal.region_stats", request, rows)
        if refused is not None:
            return refused
    return render(request, "region.html", {"section": "regions", **page,
                                           "map": basemap.map_settings()})


@router.get("/portal/developers")
def developers(request: Request) -> HTMLResponse:
    return render(request, "developers.html", {"section": "developers"})


@router.get("/portal/basemap.json")
def basemap_style(request: Request) -> JSONResponse:
    """The default basemap: the framework's regions as vector tiles (a MapLibre style)."""
    base = f"{request.url.scheme}://{request.url.netloc}"
    return JSONResponse(basemap.framework_style(base),
                        media_type="application/vnd.mapbox.style+json",
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/portal/{rest:path}")
def missing(request: Request, rest: str) -> HTMLResponse:
    """Any other portal path: the portal's own 404 page (HTML, not the API envelope)."""
    return not_found(request)
