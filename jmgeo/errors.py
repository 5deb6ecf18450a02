"""The one base class of errors a person can fix — importable from every package.

``spatial``, ``layers``, ``loaders`` and ``catalog`` sit below the server and the CLI and
never import them; they raise subclasses of :class:`UserError` (``RegistryError``,
``LoaderError``, ``CatalogError`` …). The CLI prints any ``UserError`` as one line and
exits 2; the HTTP layer answers it with the error envelope. This module imports nothing
of the project, so depending on it costs a lower package nothing.

Messages are Chinese first, English beside, joined by `` / ``.
"""

from __future__ import annotations


class UserError(Exception):
    """Input the user can correct (a file, an option, a name): one bilingual line, no
    traceback. ``code`` is a stable machine-readable tag for APIs and tests."""

    code: str = "user_error"


def bilingual(zh: str, en: str) -> str:
    """The platform's one spelling of a two-language message."""
    return f"{zh} / {en}"
