"""The provider side of access: the typed ``Access`` in a provider entry, and the columns
of one data table a caller may see — shared by the feature, table and tile providers.

The ASGI layer puts the policy's ``layers.policy.Access`` itself in
``provider_def['jmgeo']['access']`` (never a dict read back with defaults); what it means
in SQL is ``layers.access_sql``'s business. Providers obey, they never decide.
"""

from __future__ import annotations

import threading

from psycopg import sql

from jmgeo.db import DatabaseUnavailable
from jmgeo.ogc.compat import ProviderGenericError
from jmgeo.replicas import read_connection
from layers import registry
from layers.access_sql import AccessSQL, intersects_regions
from layers.policy import Access

# column metadata per table: {table: {column: pg type}}; tables are versioned by name,
# so a cached entry never goes stale (a new load is a new table).
_columns_cache: dict[str, dict[str, str]] = {}
_cache_lock = threading.Lock()


class ProviderDatabaseUnavailable(ProviderGenericError):
    """The database is down: answer 503 with a message, never a traceback."""

    ogc_exception_code = "ServiceUnavailable"
    http_status_code = 503
    default_msg = "数据库暂不可用，请稍后重试 / database temporarily unavailable, retry later"


def split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return (schema or "public"), table


def table_columns(table: str) -> dict[str, str]:
    """Column name → PostgreSQL type of a data table (cached; tables never change shape)."""
    cols = _columns_cache.get(table)
    if cols is not None:
        return cols
    with read_connection() as conn:
        cols = registry.table_columns(conn, ".".join(split_table(table)))
    if cols:
        with _cache_lock:
            _columns_cache[table] = cols
    return cols


def region_exists(geom: sql.Composable) -> sql.Composable:
    """Rows intersecting any of the regions in one bound list parameter (%s).

    ``layers.access_sql``'s region rule in its key-order spelling: a semi-join probe per
    row in key order, so a first page stops after `limit` hits (a bbox prefilter makes the
    planner sort every row in the box: measured 25x slower)."""
    return intersects_regions(geom)[0]


def provider_access(provider_def: dict) -> Access | None:
    """The caller's ``Access`` our ASGI layer put in ``provider_def['jmgeo']['access']``
    (built by ``layers.policy`` only); ``None`` for the platform's own open collections."""
    access = (provider_def.get("jmgeo") or {}).get("access")
    if access is not None and not isinstance(access, Access):
        raise TypeError(f"provider_def['jmgeo']['access'] must be a layers.policy.Access, "
                        f"not {type(access).__name__}")
    return access


class AccessColumnsMixin:
    """The columns of one framework table a caller may see and how (``AccessSQL``), from
    the typed ``Access`` in ``provider_def['jmgeo']['access']`` — shared by the feature
    and the tile provider."""

    table: str
    geom_field: str | None
    id_field: str
    access: Access | None
    published: tuple[str, ...] | None = None  # the platform's own column choice (regions)

    def _columns(self) -> dict[str, str]:
        try:
            cols = table_columns(self.table)
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        if self.published is not None:
            keep = set(self.published) | {self.id_field}
            cols = {c: t for c, t in cols.items() if c in keep or c == self.geom_field}
        return cols

    def access_sql(self) -> AccessSQL:
        cached = getattr(self, "_access_sql", None)
        if cached is None:
            cached = self._access_sql = AccessSQL(self.access, self._columns(),
                                                  geom=self.geom_field,
                                                  always=(self.id_field,))
        return cached

    @property
    def masks(self) -> dict[str, str]:
        return dict(self.access.masks) if self.access is not None else {}

    def visible_columns(self) -> list[str]:
        """The columns this caller may see, in table order (geometry excluded)."""
        return self.access_sql().columns()
