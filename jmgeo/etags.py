"""Strong entity tags for data that only changes with a new layer version.

A published version table never changes (a new load is a new version), so what a data
route answers is fixed by the layer's version, the caller's access
(``layers.policy.Access.fingerprint()``: fields, masks, region scope, grant) and the
request itself. The tag is a digest of exactly those, computed *before* any data is
read: a matching ``If-None-Match`` is answered ``304`` without running the query.

Used by the OGC data routes (items, item, tiles, coverage — ``jmgeo.ogc.router``) and
the downloads (``jmgeo.downloads.route``, whose files are built once per tag:
``jmgeo.downloads.cache``). A 304 hands out no data; on non-open data it is still
audited (status 304, 0 rows) — see ``jmgeo.ogc.router.execute`` and the download route.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# bump when a writer changes what it emits for the same data: every tag (and every
# cached download file) changes with it
REVISION = "1"


def _default(value: Any) -> Any:
    fingerprint = getattr(value, "fingerprint", None)
    if callable(fingerprint):  # an Access counts by its exact decision
        return ["Access", *fingerprint()]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def digest(*parts: Any) -> str:
    """A hex digest of ``parts`` (JSON, keys sorted; Access by its fingerprint)."""
    blob = json.dumps([REVISION, *parts], sort_keys=True, ensure_ascii=False,
                      default=_default)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def strong(*parts: Any) -> str:
    """The quoted strong ETag of ``parts``."""
    return f'"{digest(*parts)[:40]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Does an ``If-None-Match`` header name ``etag``? Weak comparison (RFC 9110
    §13.1.2): a ``W/`` prefix — what a compressing proxy makes of a strong tag — is
    ignored. ``*`` is not honoured (the tag is known before the request is checked, so
    ``*`` could turn a 400 into a 304): the request is answered in full."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False
