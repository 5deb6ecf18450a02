"""Keyset paging links of the feature providers: ``next``, ``prev`` and ``first``.

A page is read after (``next``) or before (``prev``) a row's sort key, never by offset,
so page 1000 costs what page 1 costs and a reload between pages does not shift rows: the
cursor names the layer version it was read from and keeps reading that one. The provider
reads one row more than the page (``limit + 1``) to know whether another page follows,
so the last page — full or not — has no ``next`` link.

* ``next``: when more rows follow the page;
* ``prev``: on any page but the first (reached by a cursor or an ``offset``) that has
  rows, and, on a page read backwards, when more rows lie before it;
* ``first``: on any page but the first — the request without ``cursor`` and ``offset``.

pygeoapi adds offset-based ``next``/``prev`` links of its own to whatever a provider
returns (one after the last full page, an ``offset`` jump from a cursor page): the
router keeps only the paging links the provider wrote (:data:`PAGE_LINKS`, see
:func:`own_paging_links`). A mixed-direction ``sortby`` (no row comparison) pages by
``offset``, links written here too.
"""

from __future__ import annotations

import base64
import json
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jmgeo.ogc.values import decode_cursor

# the URL of the request being answered; jmgeo.ogc.router sets it (and copies the context
# into pygeoapi's worker thread) so the provider can write its paging links
REQUEST_URL: ContextVar[str | None] = ContextVar("jmgeo_request_url", default=None)
# the hrefs of the paging links the provider wrote for this request (a list the router
# puts in the context before the call; None: no provider of ours answered)
PAGE_LINKS: ContextVar[list[str] | None] = ContextVar("jmgeo_page_links", default=None)
PAGING_RELS = ("next", "prev", "first")
TITLES = {"next": "下一页 / next page", "prev": "上一页 / previous page",
          "first": "第一页 / first page"}


def encode(version: int | None, key: list, backwards: bool = False) -> str:
    data: dict[str, Any] = {"v": version or 0, "k": key}
    if backwards:
        data["d"] = "prev"
    return base64.urlsafe_b64encode(json.dumps(
        data, default=str, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str) -> tuple[int, list, bool]:
    """(version, sort key, read backwards?) of a cursor, or a 400 naming the fix (its
    shape is checked in ``jmgeo.ogc.values.decode_cursor``, before any SQL)."""
    version, key = decode_cursor(token)
    data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
    return version, key, data.get("d") == "prev"


def link(rel: str, *, cursor: str | None = None, offset: int | None = None) -> dict | None:
    """A paging link: the request being answered with its ``cursor``/``offset``
    replaced (``first``: both removed). None outside a request (no URL to page)."""
    url = REQUEST_URL.get()
    if url is None:
        return None
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("cursor", "offset")]
    if cursor is not None:
        query.append(("cursor", cursor))
    if offset:
        query.append(("offset", str(offset)))
    href = parts._replace(query=urlencode(query)).geturl()
    written = PAGE_LINKS.get()
    if written is not None:
        written.append(href)
    return {"rel": rel, "type": "application/geo+json", "title": TITLES[rel], "href": href}


def keyset_links(version: int | None, first_key: list | None, last_key: list | None, *,
                 more_after: bool, more_before: bool, not_first: bool) -> list[dict]:
    """The links of a keyset page (keys of its first and last row; None: no rows)."""
    out = []
    if more_after and last_key is not None:
        out.append(link("next", cursor=encode(version, last_key)))
    if more_before and first_key is not None:
        out.append(link("prev", cursor=encode(version, first_key, backwards=True)))
    if not_first:
        out.append(link("first"))
    return [x for x in out if x is not None]


def offset_links(offset: int, limit: int, more_after: bool) -> list[dict]:
    """The links of an offset page (mixed-direction ``sortby``)."""
    out = []
    if more_after:
        out.append(link("next", offset=offset + limit))
    if offset > 0:
        out.append(link("prev", offset=max(0, offset - limit)))
        out.append(link("first"))
    return [x for x in out if x is not None]


def own_paging_links(links: list[dict], written: list[str]) -> list[dict]:
    """``links`` without the paging links pygeoapi added (those the provider did not
    write: its offset guesses)."""
    return [x for x in links if x.get("rel") not in PAGING_RELS or x.get("href") in written]
