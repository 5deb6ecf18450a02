"""开放门户 — the public portal: HTML pages over the catalog, the registry and the
regions, for anyone, anonymously (DESIGN §1 "the public"; issue 13 part 1).

``router`` (mounted by the app) serves ``/portal/…``; ``/`` redirects there. What a
page shows is what the APIs would show the same caller: catalog entries through
``catalog.store.list_entries`` / ``entry_for`` (the policy's ``catalog_filter``), data
through ``layers.policy.access_for`` — no second access rule. A dataset the caller may
not see renders the same 404 page as one that never existed.

Modules: :mod:`~jmgeo.portal.i18n` (中文 / English), :mod:`~jmgeo.portal.pages` (the
Jinja2 environment, ``render``, the nav), :mod:`~jmgeo.portal.routes` (the pages).
Templates are under ``templates/``, scripts and styles under ``jmgeo/static/portal/``.
"""

from jmgeo.portal.pages import NavItem, add_nav, not_found, render
from jmgeo.portal.routes import router

__all__ = ["NavItem", "add_nav", "not_found", "render", "router"]
