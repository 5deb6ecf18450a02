"""The department console (部门控制台): server-rendered pages under ``/console``.

A person signs in with the department's API key (``jmgeo.console.signin``; the session
itself is ``jmgeo.sessions``) and the pages act for the caller the session stands for —
the same :class:`~layers.policy.Caller` the key would be in a header — and only through
the functions the APIs call (``exchange.requests``, ``exchange.subscriptions``,
``layers.registry``, ``layers.policy``, ``layers.audit``) or the APIs themselves from the
page scripts (``POST /layers/upload``, ``/supervision/…``): a page shows no
datum, and does nothing, that the API would refuse the same caller.

* not signed in (no cookie, or a session that ended) → ``/console/signin?next=<here>``
  (:class:`SignInRequired`); the page scripts keep a form's values in sessionStorage
  across the sign-in (``/static/console/forms.js``);
* a resource, request or subscription the caller may not see → the portal's 404 page,
  the same as for one that does not exist;
* pages are the portal's (``jmgeo.portal.render`` on ``base.html``: its header, its
  中文/English toggle); the templates are ``jmgeo/portal/templates/console/``;
* every page has a strict Content-Security-Policy (``default-src 'self'``): no inline
  scripts or styles, only the platform's own ES modules under ``/static/console/``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from jmgeo.portal import NavItem, add_nav, render
from jmgeo.portal import not_found as portal_not_found
from jmgeo.portal.i18n import add_messages
from jmgeo.sessions import CSRF_FIELD, Session
from layers import policy
from layers.policy import Caller

# the Content-Security-Policy, nosniff and Referrer-Policy come from jmgeo.web.PageSecurity,
# like every HTML page's; a console page is never stored anywhere
PAGE_HEADERS = {"Cache-Control": "private, no-store"}

add_messages({"nav.console": ("部门控制台", "Department console")})
add_nav(NavItem("/console", "nav.console", "console"))


class SignInRequired(Exception):
    """The page needs a signed-in caller: answered by a redirect to the sign-in page."""

    def __init__(self, next_url: str, ended: bool) -> None:
        super().__init__(next_url)
        self.next_url, self.ended = next_url, ended


def local_path(url: str | None, default: str = "/console") -> str:
    """``url`` if it is a path on this platform (``/…``, not ``//host`` nor a scheme),
    else ``default``: the sign-in page's ``next`` never leads elsewhere."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return default
    return url


def _here(request: Request) -> str:
    """Where the person was: this page (GET), or the page whose form was posted."""
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == request.headers.get("host"):
            return local_path(parts.path + (f"?{parts.query}" if parts.query else ""))
    return "/console"


def signed_in(request: Request) -> Session:
    """The console session of the request, or :class:`SignInRequired`. A key sent in a
    header is not a console sign-in: the pages need the session's CSRF token."""
    session = getattr(request.state, "session", None)
    if session is None:
        raise SignInRequired(_here(request), bool(getattr(request.state, "session_ended",
                                                          False)))
    return session


SessionDep = Annotated[Session, Depends(signed_in)]

CONSOLE_NAV = (  # (path, 中文, English, who sees it)
    ("/console", "概览", "Overview", "any"),
    ("/console/resources", "我的资源", "My resources", "department"),
    ("/console/usable", "可用资源", "Resources I may use", "department"),
    ("/console/requests?box=outbox", "我的申请", "Outbox", "department"),
    ("/console/requests?box=inbox", "待我答复", "Inbox", "department"),
    ("/console/subscriptions", "订阅", "Subscriptions", "department"),
    ("/console/feedback", "评议与纠错", "Ratings & corrections", "department"),
    ("/console/supervision", "督办看板", "Supervision", "supervision"),
    ("/console/audit", "审计日志", "Audit log", "auditor"),
)


def nav_for(caller: Caller) -> list[tuple[str, str, str]]:
    """The menu this caller's role has (the pages themselves check again)."""
    out = []
    for path, zh, en, who in CONSOLE_NAV:
        if (who == "any" or (who == "department" and caller.data_dept is not None)
                or (who == "supervision" and policy.supervision_scope(caller)[0])
                or (who == "auditor" and caller.can_read_audit)):
            out.append((path, zh, en))
    return out


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a console page on the portal's ``base.html`` (``jmgeo.portal.render``: the
    language, the header) with the console's context: the session, its CSRF token, the
    role's menu."""
    session: Session | None = getattr(request.state, "session", None)
    query = request.url.query
    ctx = {"session": session, "csrf": session.csrf_token if session else "",
           "csrf_field": CSRF_FIELD, "section": "console",
           "console_nav": nav_for(session.caller) if session else [],
           "current": request.url.path + (f"?{query}" if query else ""),
           "done": request.query_params.get("done", ""), **context}
    return render(request, template, ctx, status_code=status, headers=PAGE_HEADERS)


def not_found(request: Request) -> HTMLResponse:
    """THE 404 page (the portal's): the same for what does not exist and what is hidden."""
    return portal_not_found(request)


def forbidden(request: Request, message: str) -> HTMLResponse:
    return page(request, "console/403.html", 403, message=message)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def _sign_in_required(request: Request, exc: SignInRequired) -> RedirectResponse:
    url = f"/console/signin?next={quote(exc.next_url, safe='')}"
    response = redirect(url + ("&expired=1" if exc.ended else ""))
    if exc.ended:
        from jmgeo.sessions import clear_cookie_header

        response.headers["Set-Cookie"] = clear_cookie_header()
    return response


def install_console(app: FastAPI) -> None:
    """Mount the console's routes and its sign-in redirect."""
    from jmgeo.console import oversight, requests_pages, resources, signin, supervision_pages

    for module in (signin, resources, requests_pages, oversight, supervision_pages):
        app.include_router(module.router, prefix="/console", include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in_required)
