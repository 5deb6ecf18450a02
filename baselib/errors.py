"""The base libraries' one user error: what is wrong, where (rows), and the fix."""

from __future__ import annotations

from jmgeo.errors import UserError


class BaselibError(UserError, ValueError):
    """A mapping, a source or an answer that cannot be used as it is. The message is
    Chinese first, English beside, and ends with the fix; ``code`` is a stable tag."""

    code = "baselib"

    def __init__(self, zh: str, en: str, fix: str | None = None, *, code: str | None = None,
                 status: int = 400) -> None:
        self.zh, self.en, self.fix = zh, en, fix
        self.status = status
        if code:
            self.code = code
        super().__init__(f"{zh} / {en}" + (f" — fix: {fix}" if fix else ""))


class NotAllowed(BaselibError):
    """The caller may not do this (HTTP 403)."""

    code = "forbidden"

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(zh, en, status=403)
