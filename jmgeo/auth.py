"""Authentication seam: who is calling? Every request passes through ``authenticate``.

The sharing-policy work adds API keys / bearer tokens here; until then every caller is
anonymous, which the policy answers with open data only.
"""

from __future__ import annotations

from starlette.requests import Request

from layers.policy import ANONYMOUS, Caller


class AuthError(Exception):
    """Missing, malformed, expired or revoked credentials: answered with 401."""


def authenticate(request: Request) -> Caller:
    """Return the caller for this request (anonymous when no credentials are sent)."""
    return ANONYMOUS
