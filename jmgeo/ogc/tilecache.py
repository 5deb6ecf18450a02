"""A tile cache for open layers: on disk, version-keyed, bounded, filled on demand or
seeded (``jmgeo tiles seed LAYER --zoom 8-14 [--region 440703] [--tms …]``).

What is cached: the MVT bytes (or "empty", answered 204) of a tile of an **open** layer,
under ``<dir>/<database>/<layer>/v<version>/<tms>/<access>/<z>/<x>/<y>.mvt``:

* ``<database>`` — the database's identity (DSN and ``pg_database`` oid), so two
  databases (test sessions, a re-created cluster) never share tiles;
* ``v<version>`` — the layer's current version when the tile was made: a new version
  is a new key, so it is never answered with old tiles (nothing to invalidate; old
  versions' tiles are the least recently used and go first);
* ``<access>`` — a hash of the caller's ``Access`` decision (``Access.fingerprint``). An
  open layer has two: everyone's (sensitive fields masked) and the owner's (unmasked),
  so the owner's tile never reaches anyone else.

Non-open layers (unconditional, conditional, not_shared) are never cached: their tiles
are made for each request from the caller's own access (grant fields, region scope), so
nothing is shared between callers with different access — and a revoked grant takes
effect at once. The platform's own ``regions`` collection has no version: not cached.

Bounded: at most ``JMGEO_TILE_CACHE_MB`` (settings) in the whole directory. Each
process counts what it writes; past the bound it scans the directory and removes the
least recently used tiles (a hit refreshes a tile's mtime, at most once a minute) down
to 80 %. Writes are atomic (temporary file + rename): several server workers and a seed
command share one directory safely.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jmgeo.settings import get_settings
from layers.policy import Access

TOUCH_EVERY = 60.0  # seconds: a hit refreshes the tile's mtime (LRU) at most this often
LOW_WATER = 0.8  # eviction removes tiles down to this share of the bound

_namespaces: dict[str, str] = {}
_ns_lock = threading.Lock()


@dataclass(frozen=True)
class TileKey:
    layer: str
    version: int
    tms: str
    z: int
    y: int
    x: int
    access: str  # hash of Access.fingerprint()

    def relpath(self) -> Path:
        return Path(self.layer, f"v{self.version}", self.tms, self.access, str(self.z),
                    str(self.x), f"{self.y}.mvt")


def access_hash(access: Access | None) -> str:
    fp = access.fingerprint() if access is not None else ("platform",)
    return hashlib.sha256(repr(fp).encode()).hexdigest()[:16]


def cacheable(access: Access | None, version: int | None) -> bool:
    """Only open layers with a version (see the module docstring)."""
    return access is not None and access.sharing_class == "open" and version is not None


def database_namespace() -> str:
    """This database's directory name: the DSN and the database's oid, hashed."""
    from jmgeo.db import connection
    from jmgeo.settings import database_url

    dsn = database_url()
    ns = _namespaces.get(dsn)
    if ns is None:
        with connection() as conn:
            row = conn.execute("SELECT oid::text AS oid FROM pg_database "
                               "WHERE datname = current_database()").fetchone()
        ns = hashlib.sha256(f"{dsn}|{row['oid']}".encode()).hexdigest()[:12]
        with _ns_lock:
            _namespaces[dsn] = ns
    return ns


class TileCache:
    """The on-disk store (one per directory and bound in a process: :func:`tile_cache`)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._estimate: int | None = None  # bytes in the directory, as this process knows

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def path(self, key: TileKey) -> Path:
        return self.root / database_namespace() / key.relpath()

    def get(self, key: TileKey) -> bytes | None:
        """The cached tile (``b""``: cached as empty), or None on a miss."""
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            data = path.read_bytes()
            st = path.stat()
        except OSError:
            return None
        if time.time() - st.st_mtime > TOUCH_EVERY:
            try:
                os.utime(path)
            except OSError:
                pass
        return data

    def put(self, key: TileKey, data: bytes) -> None:
        if not self.enabled:
            return
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk costs speed, never an answer
            return
        with self._lock:
            if self._estimate is None:
                self._estimate = self.usage()[1]
            else:
                self._estimate += len(data)
            over = self._estimate > self.max_bytes
        if over:
            self.evict()

    def _files(self) -> list[tuple[float, int, Path]]:
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath, name)
                try:
                    st = p.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, p))
        return out

    def usage(self) -> tuple[int, int]:
        """(tiles, bytes) in the whole directory."""
        files = self._files()
        return len(files), sum(size for _, size, _p in files)

    def evict(self) -> int:
        """Remove the least recently used tiles down to LOW_WATER of the bound; returns
        how many were removed."""
        files = sorted(self._files())
        total = sum(size for _, size, _p in files)
        target = self.max_bytes * LOW_WATER
        removed = 0
        for _mtime, size, p in files:
            if total <= target:
                break
            try:
                p.unlink()
            except OSError:
                continue
            total -= size
            removed += 1
        with self._lock:
            self._estimate = total
        return removed


_caches: dict[tuple[Path, int], TileCache] = {}


def tile_cache() -> TileCache:
    """The cache for the current settings (directory, bound)."""
    s = get_settings()
    key = (s.tile_cache_path, int(s.tile_cache_mb * 1024 * 1024))
    cache = _caches.get(key)
    if cache is None:
        cache = _caches.setdefault(key, TileCache(*key))
    return cache
