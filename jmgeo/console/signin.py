"""Sign in with an API key (a POST body, never a URL), sign out, and the overview page."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from jmgeo import sessions
from jmgeo.auth import AuthError
from jmgeo.console import SessionDep, local_path, page, redirect

router = APIRouter()


@router.get("/signin")
def signin_page(request: Request, next: str = "/console", expired: bool = False,
                signed_out: bool = False) -> Response:
    """The sign-in form; already signed in → on to ``next``."""
    target = local_path(next)
    if getattr(request.state, "session", None) is not None:
        return redirect(target)
    return page(request, "console/signin.html", next_url=target, expired=expired,
                signed_out=signed_out, error=None)


@router.post("/signin")
async def signin(request: Request, key: str = Form("", max_length=200),
                 next: str = Form("/console", max_length=2000)) -> Response:
    """Check the key as every API does; a session and its cookie, audited. A sign-in
    posted from another origin is refused (login CSRF)."""
    target = local_path(next)
    if not sessions.same_origin(request.scope, Headers(scope=request.scope)):
        return page(request, "console/signin.html", 403, next_url=target, expired=False,
                    signed_out=False, error=sessions.CSRF_REFUSED)
    try:
        sid, _session = await run_in_threadpool(
            sessions.start, key, user_agent=request.headers.get("user-agent"))
    except AuthError as exc:
        return page(request, "console/signin.html", 401, next_url=target, expired=False,
                    signed_out=False, error=sessions.sign_in_error(exc))
    response = redirect(target)
    response.headers["Set-Cookie"] = sessions.set_cookie_header(sid)
    return response


@router.post("/signout")
def signout(session: SessionDep) -> Response:
    """End the session (the CSRF check already passed in the middleware), audited."""
    sessions.end(session)
    response = redirect("/console/signin?signed_out=1")
    response.headers["Set-Cookie"] = sessions.clear_cookie_header()
    return response


@router.get("")
def overview(request: Request, session: SessionDep) -> HTMLResponse:
    """Who is signed in, until when, and what the role may do here."""
    return page(request, "console/overview.html")
