"""The portal's pages (see :mod:`jmgeo.portal`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import HTMLResponse

from jmgeo.portal.pages import not_found, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal")
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal/")
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html", {"section": "home"})


@router.get("/portal/{rest:path}")
def missing(request: Request, rest: str) -> HTMLResponse:
    """Any other portal path: the portal's own 404 page (HTML, not the API envelope)."""
    return not_found(request)
