"""Read replicas: what serving reads may come from a streaming replica of the database;
every write goes to the primary (``DATABASE_URL``).

Why this shape (issue 16 §8, "scale-out"). Serving is reads — items, tiles, maps and the
registry rows that choose them — and scales with replicas. Writes are few, but some come
with every audited read (the audit row, written before data leaves), and a standby
refuses them. So:

- :func:`jmgeo.db.connection` is, and stays, the primary. Only :func:`read_connection`
  can hand out a replica's connection, and only inside a read scope — one GET or HEAD
  request, opened by :class:`ReadScope` — at the read-only call sites of serving (the OGC
  providers, the audience's registry reads, the regions). Outside a scope (the CLI, the
  job workers, every POST) and everywhere else it is the primary. Audit rows, loads,
  jobs, sessions and counters use ``connection()``: the primary, always.
- A request's reads stick to the source its first read chose: the registry row that
  names version N's table and the rows of that table come from the same database, so a
  replica that has not replayed a publish yet serves the previous version whole — never a
  registry row naming a table it does not have. If the replica fails during the request,
  the rest of it reads the primary, which is ahead (it has all the replica had).
- Replica sessions are read-only (``default_transaction_read_only``): a write sent there
  by mistake fails loudly even if the "replica" is a promoted primary.
- The lag is measured *against the primary*. Every ``JMGEO_REPLICA_CHECK_SECONDS`` a
  thread of each server process samples the primary's WAL position
  (``pg_current_wal_lsn()``) and the replica's replay position; a replica that has
  replayed past the sample taken at time *t* holds every transaction committed before
  *t*, so it is at most *now − t* behind. It is used only while that bound is at most
  ``JMGEO_REPLICA_MAX_LAG``. (The replica's own ``now() - pg_last_xact_replay_timestamp()``
  grows on an idle primary and knows nothing of WAL not yet received: not used.)
- A replica that stops answering, or whose pooled connection is found dead when a request
  borrows it, is out until a check finds it answering again; meanwhile every read goes
  to the primary. The request path never waits for a check, and only a request whose
  replica dies *while* it reads answers 503 (``DatabaseUnavailable``, as for the primary).

Read-your-writes: a department that has just published sees the new version at once in
its console, its uploads and jobs (all on the primary), and through the OGC API within
the replication lag — milliseconds on a LAN, never more than ``JMGEO_REPLICA_MAX_LAG``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from jmgeo.db import DatabaseUnavailable, connection
from jmgeo.jsonfast import use_for_json_columns
from jmgeo.settings import get_settings

LOGGER = logging.getLogger(__name__)

#: requests that may read from a replica: they change nothing (their audit rows go to the
#: primary). POST searches (CQL2 JSON) read too, but stay on the primary: kept simple
READ_METHODS = frozenset({"GET", "HEAD"})
# every replica session: no JIT (as the primary's pool, jmgeo.db) and read-only
_OPTIONS = "-c jit=off -c default_transaction_read_only=on"
# a replica whose pool has no free connection for this long is busy enough: the request
# reads the primary instead of queueing (a saturated replica is not marked out)
_BORROW_WAIT = 0.5
_PROBE = ("SELECT pg_is_in_recovery() AS standby, "
          "pg_last_wal_replay_lsn()::text AS replay")
_MAX_BACKOFF = 30.0  # seconds between checks of a replica that stays unreachable


def lsn_value(text: str) -> int:
    """A ``pg_lsn`` as text (``16/B374D848``) as one comparable integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def describe(dsn: str) -> str:
    """``host:port/db`` of a DSN — what logs say of a replica (never its password)."""
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


class Replica:
    """One replica as this process sees it: up or out, how fresh, and its pool."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = describe(dsn)
        self.up = False
        #: monotonic time before which every transaction committed on the primary is on
        #: this replica (None: not known yet)
        self.fresh_as_of: float | None = None
        self.failures = 0  # consecutive failed checks (backoff)
        self.next_check = 0.0
        self._samples: deque[tuple[float, int]] = deque(maxlen=512)  # (time, primary LSN)
        self._monitor: psycopg.Connection | None = None  # the checks' own connection
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def staleness(self, now: float | None = None) -> float | None:
        """Seconds this replica may be behind the primary, at most (None: unknown)."""
        if self.fresh_as_of is None:
            return None
        return (time.monotonic() if now is None else now) - self.fresh_as_of

    def usable(self, now: float, max_lag: float) -> bool:
        lag = self.staleness(now)
        return self.up and lag is not None and lag <= max_lag

    # -- checks (the monitor thread) -----------------------------------------------
    def check(self, now: float, check_every: float) -> None:
        """Sample the primary's WAL position, then read the replica's replay position."""
        try:
            with connection() as conn:
                row = conn.execute("SELECT pg_current_wal_lsn()::text AS lsn").fetchone()
            self._samples.append((now, lsn_value(row["lsn"])))
        except (DatabaseUnavailable, psycopg.Error):
            pass  # primary down: no new sample, so the bound grows from the last one
        try:
            row = self._probe()
        except psycopg.Error as exc:
            self._failed(now, check_every, f"{type(exc).__name__}: {exc}".strip())
            return
        if not row["standby"] or row["replay"] is None:
            # a promoted replica no longer follows DATABASE_URL: its data may diverge
            self._failed(now, check_every, "not a standby: it is not in recovery")
            return
        replay = lsn_value(row["replay"])
        caught = [t for t, lsn in self._samples if lsn <= replay]
        if caught:
            newest = max(caught)
            self.fresh_as_of = max(newest, self.fresh_as_of or newest)
            while self._samples and self._samples[0][0] < newest:
                self._samples.popleft()  # replay only moves forward: older ones are done
        self.failures, self.next_check = 0, now + check_every
        if not self.up:
            LOGGER.info("read replica %s answers; reads use it while it is at most %.1f s "
                        "behind", self.name, get_settings().replica_max_lag)
        self.up = True

    def _failed(self, now: float, check_every: float, reason: str) -> None:
        """A check found the replica unusable: out, and checked again later and later."""
        self.failures += 1
        self.next_check = now + min(_MAX_BACKOFF, check_every * 2 ** self.failures)
        if not self.up and self.failures == 1:  # out() says it when it was in use
            LOGGER.warning("read replica %s cannot be used (%s): reads go to the primary",
                           self.name, reason)
        self.out(None, reason)

    def _probe(self) -> dict:
        for attempt in (1, 2):  # a monitor connection broken since the last check: once more
            if self._monitor is None or self._monitor.closed:
                self._monitor = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=2, options=_OPTIONS,
                    row_factory=dict_row)
            try:
                return self._monitor.execute(_PROBE).fetchone()
            except psycopg.OperationalError:
                self._monitor.close()
                self._monitor = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def out(self, exc: BaseException | None, why: str | None = None,
            wait: bool = False) -> None:
        """Take the replica out of use (until a check finds it answering): its pool is
        closed — off the request's thread unless ``wait`` — so dead connections are
        neither handed out nor reconnected in a loop."""
        with self._lock:
            was_up, self.up = self.up, False
            pool, self._pool = self._pool, None
        if was_up:
            reason = why or (type(exc).__name__ if exc is not None else "?")
            LOGGER.warning("read replica %s is out (%s): reads go to the primary",
                           self.name, reason)
        if pool is not None:  # connections in use are closed when given back
            if wait:
                pool.close(timeout=2)
            else:
                threading.Thread(target=pool.close, daemon=True,
                                 name="jmgeo-replica-pool-close").start()

    def close(self) -> None:
        self.out(None, "shutdown", wait=True)
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None

    # -- the request path ----------------------------------------------------------
    def borrow(self) -> tuple[ConnectionPool, psycopg.Connection] | None:
        """A live connection of this replica, or None (the request reads the primary)."""
        with self._lock:
            if not self.up:
                return None
            if self._pool is None:
                settings = get_settings()
                self._pool = ConnectionPool(
                    self.dsn, min_size=1, max_size=settings.db_pool_size, open=True,
                    timeout=_BORROW_WAIT,
                    kwargs={"autocommit": True, "row_factory": dict_row,
                            "connect_timeout": 2, "options": _OPTIONS},
                    configure=use_for_json_columns, name=f"jmgeo-replica-{self.name}")
            pool = self._pool
        try:
            conn = pool.getconn()
        except psycopg.OperationalError:  # busy, or closed by out() meanwhile
            return None
        try:
            # a pooled connection dies silently with its server: found out here, while
            # the request can still go to the primary (one round trip per borrow)
            conn.execute("")
        except psycopg.Error as exc:
            pool.putconn(conn)
            self.out(exc)
            return None
        return pool, conn


class ReplicaSet:
    """The configured replicas of this process and the thread that checks them."""

    def __init__(self, dsns: tuple[str, ...]) -> None:
        self.dsns = dsns
        self.replicas = [Replica(dsn) for dsn in dsns]
        self._turn = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the checks in this process (once; a forked or spawned worker starts its
        own on its first request)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="jmgeo-replica-checks")
                self._thread.start()

    def _run(self) -> None:
        while True:
            every = get_settings().replica_check_seconds
            self.check_due(every)
            if self._stop.wait(every):
                return

    def check_due(self, every: float) -> None:
        for replica in self.replicas:
            now = time.monotonic()
            if now >= replica.next_check:
                try:
                    replica.check(now, every)
                except Exception:  # noqa: BLE001 — the checks must outlive any surprise
                    LOGGER.exception("check of read replica %s failed", replica.name)

    def pick(self) -> Replica | None:
        """A usable replica (in turn), or None: read the primary."""
        now, max_lag = time.monotonic(), get_settings().replica_max_lag
        usable = [r for r in self.replicas if r.usable(now, max_lag)]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def status(self) -> dict:
        """What ``/health`` says: how many are configured and in use, and the largest
        staleness bound of those in use (seconds)."""
        now, max_lag = time.monotonic(), get_settings().replica_max_lag
        lags = [r.staleness(now) for r in self.replicas if r.usable(now, max_lag)]
        return {"configured": len(self.replicas), "in_use": len(lags),
                "max_lag_seconds": max_lag,
                "lag_bound_seconds": round(max(lags), 3) if lags else None}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for replica in self.replicas:
            replica.close()


_SETS: dict[tuple[str, ...], ReplicaSet] = {}
_SETS_LOCK = threading.Lock()


def replica_set() -> ReplicaSet | None:
    """This process's replicas for the current settings (None: none configured)."""
    dsns = get_settings().replica_urls
    if not dsns:
        return None
    found = _SETS.get(dsns)
    if found is None:
        with _SETS_LOCK:
            found = _SETS.setdefault(dsns, ReplicaSet(dsns))
    return found


def close_replicas() -> None:
    """Stop the checks and close every replica connection (at shutdown, in tests)."""
    with _SETS_LOCK:
        sets = list(_SETS.values())
        _SETS.clear()
    for found in sets:
        found.close()


class _Route:
    """Where the reads of one request go: undecided, a replica, or the primary."""

    __slots__ = ("source",)

    def __init__(self) -> None:
        self.source: Replica | None | bool = None  # None: undecided; False: the primary

    def borrow(self) -> tuple[Replica, ConnectionPool, psycopg.Connection] | None:
        if self.source is False:
            return None
        if self.source is None:
            found = replica_set()
            self.source = (found.pick() if found is not None else None) or False
            if self.source is False:
                return None
        replica = self.source
        assert isinstance(replica, Replica)
        borrowed = replica.borrow()
        if borrowed is None:
            self.source = False  # from now on this request reads the primary (ahead)
            return None
        return replica, *borrowed


_ROUTE: ContextVar[_Route | None] = ContextVar("jmgeo_read_route", default=None)


@contextmanager
def read_scope() -> Iterator[None]:
    """Reads in this block (one request) may come from a replica, all from the same one."""
    token = _ROUTE.set(_Route())
    try:
        yield
    finally:
        _ROUTE.reset(token)


@contextmanager
def read_connection() -> Iterator[psycopg.Connection]:
    """A connection for reads that may lag by the replication window: a replica's inside
    a read scope when one is usable, the primary's otherwise. Never write through it."""
    route = _ROUTE.get()
    borrowed = route.borrow() if route is not None else None
    if borrowed is None:
        with connection() as conn:
            yield conn
        return
    replica, pool, conn = borrowed
    try:
        yield conn
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            replica.out(exc)
            route.source = False
        raise DatabaseUnavailable(str(exc)) from exc
    finally:
        pool.putconn(conn)


class ReadScope:
    """ASGI middleware: a GET or HEAD request reads through a read scope (a replica when
    one is configured and usable). Pure ASGI, so the context variable reaches the route
    and the worker threads it runs in."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        found = replica_set() if scope["type"] == "http" else None
        if found is None or scope["method"] not in READ_METHODS:
            await self.app(scope, receive, send)
            return
        found.start()
        with read_scope():
            await self.app(scope, receive, send)
