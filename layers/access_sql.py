"""From the policy's answer to SQL: THE one place an ``Access`` becomes columns and WHERE.

``layers.policy.decide`` says *what* a caller may have of a resource (an ``Access``); this
module says what that means in SQL, once, for every way out (OGC items/item/queryables,
vector tiles, coverages, downloads, region statistics, and any later one):

* :meth:`AccessSQL.columns` — the columns the caller may see, in table order (the grant's
  fields; the geometry and the row id are handled by the caller of this module);
* :meth:`AccessSQL.value` / :meth:`AccessSQL.select_list` — each visible column as the
  caller gets it, sensitive ones masked in PostgreSQL (``layers.masking``), so a clear
  value never reaches Python;
* :meth:`AccessSQL.row_scope` — the row restriction of a grant limited to regions.

**A region scope means one thing everywhere: the rows whose geometry intersects the
granted regions** (``public.region_part``). Two spellings of the same condition are
generated here, because each was measured faster for its way out:

* ``prefilter=False`` — a semi-join ``EXISTS`` probed per row in key order: a keyset page
  stops after ``limit`` hits (items, item, tiles; a bbox prefilter there makes the planner
  sort every row in the box — measured 25× slower);
* ``prefilter=True`` — the regions' bounding box first (``geom && extent``, a GIST index
  scan), then the same ``EXISTS``: for whole-table scans (downloads: 1M parcels, 蓬江区:
  1.77 s → 0.37 s).

Region statistics still *assign* each visible row to one child region by its point on
surface (so a parcel is counted once), but *which* rows are visible is this rule. A
raster cannot be filtered by rows: its spelling of the rule is masking the pixels outside
the granted regions, with the region list from :func:`region_scope`.

A **table** resource (no geometry) under a region-scoped grant: its rows cannot be placed
in a region, so the scope fails closed — ``FALSE``, no rows — rather than open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from layers.masking import mask_expression
from layers.policy import Access


def region_scope(access: Access | None) -> list[str] | None:
    """The granted region codes (``None``: no region restriction) — for ways out that
    apply the rule themselves (coverages mask pixels outside these regions)."""
    if access is None or access.regions is None:
        return None
    return list(access.regions)


def intersects_regions(geom: sql.Composable | None, codes: Sequence[str] | None = None, *,
                       prefilter: bool = False,
                       literal: bool = False) -> tuple[sql.Composable, list[Any]]:
    """The rows whose ``geom`` intersects any of the regions — THE region rule — and the
    parameters to bind, in order.

    ``codes=None`` leaves one ``%s`` (a list of codes) for the caller to bind (CQL2's
    ``region`` queryable binds its own); with ``literal`` the codes are inlined, quoted by
    psycopg (``COPY`` takes no parameters). ``prefilter``: the regions' bounding box first
    (see the module docstring). ``geom=None`` (a table resource) gives ``FALSE``: rows
    without geometry lie in no region, so a region scope fails closed.
    """
    if geom is None:
        return sql.SQL("FALSE"), []
    params: list[Any] = []
    if literal and codes is not None:
        value: sql.Composable = sql.SQL("ARRAY[{}]::text[]").format(
            sql.SQL(", ").join(sql.Literal(str(c)) for c in codes))
    else:
        value = sql.Placeholder()
        if codes is not None:
            params = [list(codes)]
    exists = sql.SQL(
        "EXISTS (SELECT 1 FROM public.region_part rp WHERE rp.code = ANY({v}) "
        "AND rp.geom && {g} AND ST_Intersects(rp.geom, {g}))").format(g=geom, v=value)
    if not prefilter:
        return exists, params
    box = sql.SQL(
        "{g} && (SELECT ST_SetSRID(ST_Extent(rp.geom)::geometry, 4490) FROM "
        "public.region_part rp WHERE rp.code = ANY({v}))").format(g=geom, v=value)
    return sql.SQL("{} AND {}").format(box, exists), params * 2


@dataclass(frozen=True)
class AccessSQL:
    """One caller's access to one data table, in SQL.

    ``access`` is the policy's answer (``None`` only for the platform's own open
    collections, e.g. the regions: every column, no masks, no scope); ``table_columns``
    the table's columns (name → PostgreSQL type, table order); ``geom`` the geometry
    column (``None`` for a table resource); ``alias`` the table alias in the statement.
    """

    access: Access | None
    table_columns: Mapping[str, str]
    geom: str | None = "geom"
    alias: str = "t"
    always: tuple[str, ...] = ()  # columns visible whatever the grant (the row id)

    # -- columns --------------------------------------------------------------
    @property
    def masks(self) -> dict[str, str]:
        return dict(self.access.masks) if self.access is not None else {}

    def columns(self) -> list[str]:
        """The attribute columns the caller may see, in table order (geometry excluded;
        ``always`` columns — the row id — included)."""
        cols = [c for c in self.table_columns if c != self.geom]
        fields = self.access.fields if self.access is not None else None
        if fields is not None:
            allowed = set(fields) | set(self.always)
            cols = [c for c in cols if c in allowed]
        return cols

    def visible(self, name: str) -> bool:
        return name in self.columns()

    def masked(self, name: str) -> bool:
        return name in self.masks

    def column(self, name: str) -> sql.Composable:
        """The raw column reference (``t.name``)."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.alias), sql.Identifier(name))

    def value(self, name: str) -> sql.Composable:
        """The column as the caller gets it: masked (text) when the access masks it."""
        col = self.column(name)
        kind = self.masks.get(name)
        return col if kind is None else mask_expression(kind, col)

    def select_list(self, names: Sequence[str] | None = None) -> list[sql.Composable]:
        """``value AS name`` for each visible column (or for ``names``, each visible)."""
        cols = self.columns()
        chosen = cols if names is None else [n for n in names if n in cols]
        return [sql.SQL("{} AS {}").format(self.value(n), sql.Identifier(n)) for n in chosen]

    def geom_sql(self) -> sql.Composable | None:
        return None if self.geom is None else self.column(self.geom)

    # -- rows -----------------------------------------------------------------
    @property
    def regions(self) -> list[str] | None:
        return region_scope(self.access)

    def row_scope(self, *, prefilter: bool = False,
                  literal: bool = False) -> tuple[sql.Composable | None, list[Any]]:
        """The grant's row restriction (``None`` when there is none) and its parameters;
        ``literal`` inlines the codes (``COPY``). See the module docstring for the rule."""
        codes = self.regions
        if codes is None:
            return None, []
        return intersects_regions(self.geom_sql(), codes, prefilter=prefilter,
                                  literal=literal)


def item_id_field(access: Access | None, key_field: str | None) -> str:
    """The column whose value is an item's id for this caller.

    A table's rows are known to a department by their key (统一社会信用代码, 宗地代码):
    the id is the key — ``/items/{key}`` — when the caller may see the key in clear. When
    the grant leaves the key out, or masks it (a person table keyed by 身份证号), the id
    would hand out what the fields withhold, so the id is the row's ``fid`` instead.
    Layers keep ``fid`` (their URLs do not change).
    """
    if key_field is None:
        return "fid"
    if access is not None and (key_field in access.masks or (
            access.fields is not None and key_field not in access.fields)):
        return "fid"
    return key_field
