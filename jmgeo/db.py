"""Database access: one psycopg connection pool per DSN (SQLAlchemy only in the migrations).

Request handlers and pygeoapi providers borrow from the pool; pygeoapi builds a
provider object per request, so the pool must live at module level, not in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from jmgeo.jsonfast import use_for_json_columns
from jmgeo.settings import database_url, get_settings

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the API answers 503."""


def get_pool(dsn: str | None = None) -> ConnectionPool:
    dsn = dsn or database_url()
    pool = _pools.get(dsn)
    if pool is None:
        with _lock:
            pool = _pools.get(dsn)
            if pool is None:
                settings = get_settings()
                pool = ConnectionPool(
                    dsn, min_size=1, max_size=settings.db_pool_size, open=True,
                    timeout=settings.db_pool_timeout,
                    # JIT compiles for 100-200 ms whenever the planner's estimate is large
                    # (any EXISTS over a big layer): ruinous for short API queries
                    kwargs={"autocommit": True, "row_factory": dict_row,
                            "connect_timeout": 5, "options": "-c jit=off"},
                    configure=use_for_json_columns, name="jmgeo",
                )
                _pools[dsn] = pool
    return pool


@contextmanager
def connection(dsn: str | None = None) -> Iterator[psycopg.Connection]:
    """Borrow an autocommit connection (dict rows). Use ``conn.transaction()`` for units."""
    try:
        pool = get_pool(dsn)
        with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, TimeoutError) as exc:
        # psycopg_pool raises PoolTimeout (an OperationalError) when the server is down
        raise DatabaseUnavailable(str(exc)) from exc


def close_pools() -> None:
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()

