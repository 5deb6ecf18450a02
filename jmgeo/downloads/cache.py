"""The download file cache: each download of an unchanged version is built once.

A version table never changes, so a download is fixed by its *key*: the layer, its
version (table name and load time — a reload is a new key), the format, the region,
the registry metadata the files carry (title, description, field labels) and the
caller's access (``Access.fingerprint()``: fields, masks, region scope, grant). The key's
digest is the download's strong ``ETag`` and the name of its cache entry, so:

* a repeated download is the same file, byte for byte, and ``Range`` requests resume it
  (``FileResponse`` answers 206 and honours ``If-Range`` against that ETag);
* callers with different access have different keys: a non-open file is never handed to
  a caller whose access differs (same access — e.g. two departments reading an
  unconditional layer with the same masks — is the same data, and shares the file);
* an entry is written into a temporary directory beside the cache and renamed into
  place, so a half-written file is never found; two workers building the same key at
  once both succeed and one copy stays.

The files are also *deterministic* (their dates are the version's load time: see
:mod:`~jmgeo.downloads.ogr` and :mod:`~jmgeo.downloads.flat`), so an evicted entry is
rebuilt with the same bytes and an ETag never names two different files.

Bounded: ``JMGEO_DOWNLOAD_CACHE_MAX_MB`` (default 2048) across the directory
``JMGEO_DOWNLOAD_CACHE_DIR`` (default ``var/download-cache``); least recently used entries
are deleted first, except those used in the last :data:`GRACE` seconds (a response may
still be about to open them). A file bigger than the whole bound is not kept: it is
sent from a temporary directory and deleted. ``JMGEO_DOWNLOAD_CACHE_MAX_MB=0`` disables
the cache (every download is built, sent and deleted).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmgeo import etags
from jmgeo.settings import get_settings
from layers.policy import Access

LOGGER = logging.getLogger(__name__)
GRACE = 60.0  # seconds an entry just used is safe from eviction
META = "meta.json"


@dataclass(frozen=True)
class Entry:
    """One built download: the file to send, its rows and Warning notes; ``temporary``:
    not kept (delete its directory once sent)."""

    path: Path
    rows: int
    notes: list[str]
    etag: str
    temporary: bool = False


def etag(row: dict[str, Any], access: Access, fmt: str, region: str | None,
         loaded_at: Any) -> str:
    """The strong ETag (and cache key) of one download."""
    return etags.strong("download", row["name"], row["table_name"], loaded_at, fmt, region,
                        access, row.get("title"), row.get("description"),
                        row.get("field_labels"))


def _root() -> Path:
    return get_settings().download_cache_path


def _entry_dir(tag: str) -> Path:
    return _root() / tag.strip('"')


def get(tag: str) -> Entry | None:
    """The cached download named by ``tag``, marked as just used; None when absent."""
    directory = _entry_dir(tag)
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        os.utime(directory / META)
    except (OSError, ValueError):
        return None
    path = directory / meta["file"]
    if not path.exists():
        return None
    return Entry(path, int(meta["rows"]), list(meta["notes"]), tag)


def workdir() -> Path:
    """A fresh directory to build a download in, on the cache's file system."""
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=root))


def put(tag: str, built: Path, rows: int, notes: list[str]) -> Entry:
    """Keep the file ``built`` (in a :func:`workdir`) under ``tag`` and evict to the bound.
    Returns the entry to send (a temporary one when the cache is off or the file alone
    exceeds the bound)."""
    limit = get_settings().download_cache_max_mb * 1024 * 1024
    work = built.parent
    if limit <= 0 or built.stat().st_size > limit:
        return Entry(built, rows, notes, tag, temporary=True)
    (work / META).write_text(json.dumps({"file": built.name, "rows": rows, "notes": notes},
                                        ensure_ascii=False), encoding="utf-8")
    target = _entry_dir(tag)
    try:
        os.rename(work, target)
    except OSError:  # another request built the same key meanwhile: keep theirs
        shutil.rmtree(work, ignore_errors=True)
        hit = get(tag)
        if hit is None:
            raise
        return hit
    evict(limit, keep=target)
    return Entry(target / built.name, rows, notes, tag)


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())


def evict(limit: int, keep: Path | None = None) -> int:
    """Delete least recently used entries until the cache holds at most ``limit`` bytes
    (entries used within :data:`GRACE` seconds, and ``keep``, stay). Returns how many
    entries were deleted."""
    entries = []
    for directory in _root().iterdir():
        meta = directory / META
        if directory.name.startswith(".") or not meta.exists():
            continue
        try:
            entries.append((meta.stat().st_mtime, _size(directory), directory))
        except OSError:
            continue  # deleted meanwhile
    total = sum(size for _, size, _ in entries)
    deleted = 0
    now = time.time()
    for used, size, directory in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if directory == keep or now - used < GRACE:
            continue
        shutil.rmtree(directory, ignore_errors=True)
        total -= size
        deleted += 1
    if total > limit:
        LOGGER.info("download cache holds %d bytes (bound %d): entries in use", total, limit)
    return deleted
