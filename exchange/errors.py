"""Errors of the exchange: each a bilingual line and the HTTP status the API answers with."""

from __future__ import annotations

from jmgeo.errors import UserError, bilingual


class ExchangeError(UserError):
    """A share-request action that cannot be done as asked; nothing was changed."""

    code = "exchange_error"
    status: int = 400


class Invalid(ExchangeError):
    """The content is wrong (no purpose, an unknown field or region, a bad period)."""

    code = "invalid_request"
    status = 422


class NotFound(ExchangeError):
    """Unknown OR hidden resource / request (the same message for both)."""

    code = "not_found"
    status = 404


class Forbidden(ExchangeError):
    """The caller sees the request but may not do this to it."""

    code = "forbidden"
    status = 403


class Conflict(ExchangeError):
    """The request is not in a state that allows this (e.g. approving a withdrawn one)."""

    code = "conflict"
    status = 409


class NoRequestNeeded(ExchangeError):
    """Open and unconditional resources (and one's own) need no request: ``links`` says
    where the data is."""

    code = "no_request_needed"
    status = 409

    def __init__(self, message: str, links: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.links = links or {}


def resource_not_found(name: str) -> NotFound:
    """One message for a resource that does not exist and one the caller may not see."""
    return NotFound(bilingual(f"资源 {name!r} 不存在", f"no resource named {name!r}: see "
                              "GET /catalog or `jmgeo layer list`"))


def request_not_found(request_id: int) -> NotFound:
    return NotFound(bilingual(f"共享申请 {request_id} 不存在", f"no share request {request_id} "
                              "(or not one of yours): see `jmgeo request list`"))
