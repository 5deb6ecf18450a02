"""Rendering a portal page: one Jinja2 environment, one :func:`render`, one nav list.

Every page extends ``base.html`` (header with the navigation and the language toggle,
``<main id="main">``, footer) and follows the rules the platform's
``Content-Security-Policy: default-src 'self'`` imposes: no inline ``<script>``, no
``style=""``, no ``on…=`` handlers — behaviour comes from ES modules under
``/static/portal/`` and data reaches them through ``data-*`` attributes. The templates
are package data (``jmgeo/portal/templates``), found by the package loader, so an
installed package works as a checkout does.

Other page modules (the department console) use the same :func:`render`, add templates
under ``templates/`` and their nav entries with :func:`add_nav`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from jmgeo import __version__
from jmgeo.http import current_caller
from jmgeo.portal import i18n

ENV = Environment(loader=PackageLoader("jmgeo.portal", "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True,
                  lstrip_blocks=True)
ENV.globals["version"] = __version__


@dataclass(frozen=True)
class NavItem:
    href: str
    key: str  # an i18n message key
    section: str  # the page's ``section`` that marks this item current


NAV: list[NavItem] = [
    NavItem("/portal/", "nav.home", "home"),
    NavItem("/portal/datasets", "nav.datasets", "datasets"),
    NavItem("/portal/regions", "nav.regions", "regions"),
    NavItem("/portal/developers", "nav.developers", "developers"),
]


def add_nav(item: NavItem) -> None:
    """Add a header link (the console's sign-in, …), once."""
    if all(n.href != item.href for n in NAV):
        NAV.append(item)


def static_url(path: str) -> str:
    """A platform static file, versioned so a new release is fetched afresh."""
    return f"/static/{path.lstrip('/')}?v={__version__}"


ENV.globals["static"] = static_url


def switch_url(request: Request, lang: str) -> str:
    """This page in the other language (the query kept, ``lang`` replaced)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", lang))
    return f"{request.url.path}?{urlencode(params)}"


def query_url(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one) — for facet
    links and paging."""
    params = dict(request.query_params.multi_items())
    params.pop("lang", None)
    for k, v in changes.items():
        if v is None or v == "":
            params.pop(k, None)
        else:
            params[k] = str(v)
    return f"{request.url.path}?{urlencode(params)}" if params else request.url.path


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """The page ``template`` in the request's language. ``?lang=`` is remembered in a
    cookie. Pages answer ``Vary: Cookie`` (the language and, for the console, the
    session); a page for an authenticated caller is ``private, no-store``."""
    lang = i18n.language(request)
    caller = current_caller(request)
    other = "en" if lang == "zh" else "zh"
    ctx = {"request": request, "lang": lang, "t": i18n.translator(lang),
           "pick": lambda zh, en=None: i18n.pick(lang, zh, en),
           "nav": list(NAV), "caller": caller, "switch_url": switch_url(request, other),
           "other_lang": other, "query_url": lambda **kw: query_url(request, **kw),
           "section": None}
    ctx.update(context or {})
    body = ENV.get_template(template).render(ctx)
    out = {"Cache-Control": ("no-cache" if caller.kind == "anonymous"
                             else "private, no-store"),
           "Vary": "Cookie", "Content-Language": "zh-CN" if lang == "zh" else "en"}
    out.update(headers or {})
    response = HTMLResponse(body, status_code=status_code, headers=out)
    asked = request.query_params.get("lang")
    if asked in i18n.LANGS and request.cookies.get(i18n.COOKIE) != asked:
        response.set_cookie(i18n.COOKIE, asked, max_age=365 * 86400, samesite="lax",
                            httponly=True, path="/")
    return response


def not_found(request: Request) -> HTMLResponse:
    """THE portal 404: a missing page, a missing dataset and a hidden one look alike."""
    return render(request, "not_found.html", {"section": None}, status_code=404)
