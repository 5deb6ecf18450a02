"""A PostGIS feature provider for pygeoapi that knows the framework and the policy.

Why not pygeoapi's own PostgreSQL provider: it swaps the axes of a CRS84 ``bbox`` on
EPSG:4490 tables (returning nothing), builds a pyproj Transformer and GeoJSON row by row
in Python on every request, and cannot restrict fields, rows or mask values per caller.

This one reads like any pygeoapi provider (configured by ``provider_def``, created per
request — so it holds no connections; it borrows from ``jmgeo.db``'s pool) and:

* treats everything pygeoapi hands it in the storage CRS (``bbox``, filter geometries) as
  being in the storage CRS's *authority* axis order — lat/lon for EPSG:4490 — while the
  table stores lon/lat, so it flips exactly once, in SQL;
* reprojects output in PostGIS (``ST_Transform``) and writes authority axis order for
  ``crs=`` answers (OGC API Features Part 2), CRS84 lon/lat by default;
* builds GeoJSON in PostGIS (``ST_AsGeoJSON``/``json_build_object``);
* applies the caller's ``layers.policy.Access``, which our ASGI layer put in
  ``provider_def['jmgeo']['access']`` (typed; see ``jmgeo.ogc.access``), as
  ``layers.access_sql`` spells it in SQL (visible fields, masks, the region rule) — the
  provider never decides access, it only obeys it;
* serves table resources (no geometry) too: :class:`TableProvider`.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from jmgeo.db import DatabaseUnavailable
from jmgeo.ogc import paging
from jmgeo.ogc.access import (  # noqa: F401 — re-exported: the providers' shared pieces
    AccessColumnsMixin,
    ProviderDatabaseUnavailable,
    provider_access,
    region_exists,
    split_table,
    table_columns,
)
from jmgeo.ogc.compat import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from jmgeo.ogc.cql import VIRTUAL_REGION, CQLError, CQLTranslator, attributes
from jmgeo.ogc.values import check_property_value
from jmgeo.replicas import read_connection
from layers.access_sql import intersects_regions
from spatial.crs import CANONICAL_EPSG, domain_sql, get_crs, is_lat_first

LOGGER = logging.getLogger(__name__)

_PG_TO_JSON = {
    "integer": "integer", "bigint": "integer", "smallint": "integer",
    "numeric": "number", "double precision": "number", "real": "number",
    "boolean": "boolean", "date": "string", "timestamp with time zone": "string",
    "timestamp without time zone": "string", "jsonb": "object", "json": "object",
}
_FORMATS = {"date": "date", "timestamp with time zone": "date-time",
            "timestamp without time zone": "date-time"}

# query parameters the provider understands beyond the layer's own fields
EXTRA_PARAMS = ("region", "cursor")

# planner row estimates per table, refreshed every few minutes (decides whether to count)
_estimates: dict[str, tuple[float, int]] = {}
ESTIMATE_TTL = 300.0


def _output_srid(crs_transform_spec) -> tuple[int, bool, bool]:
    """(SRID to ST_Transform to, flip to lat/lon?, geographic?) for a CrsTransformSpec.

    ``None`` means the request asked for the storage CRS itself (EPSG:4490), whose
    authority order is lat/lon: same coordinates, flipped.
    """
    if crs_transform_spec is None:
        return _target(f"EPSG:{CANONICAL_EPSG}")
    return _target(crs_transform_spec.target_crs_uri)


@lru_cache(maxsize=64)
def _target(uri: str) -> tuple[int, bool, bool]:
    # CRS.to_epsg() searches the PROJ database (~10 ms): once per URI, not per request
    target = get_crs(uri)
    epsg = target.to_epsg() or 4326  # OGC CRS84 has no EPSG code: lon/lat WGS 84
    return epsg, is_lat_first(target), target.is_geographic


@lru_cache(maxsize=1)
def _storage_lat_first() -> bool:
    return is_lat_first(get_crs(f"EPSG:{CANONICAL_EPSG}"))


class PostGISProvider(AccessColumnsMixin, BaseProvider):
    """pygeoapi feature provider over one framework table (see module docstring)."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        data = provider_def["data"]
        self.table: str = data["table"] if isinstance(data, dict) else data
        self.static_where: str | None = data.get("where") if isinstance(data, dict) else None
        self.id_field = provider_def.get("id_field", "fid")
        self.geom_field = provider_def.get("geom_field", "geom")
        self.access = provider_access(provider_def)
        meta = provider_def.get("jmgeo", {}) or {}
        published = meta.get("columns")
        self.published = tuple(published) if published is not None else None
        self.labels: dict[str, str] = meta.get("labels", {}) or {}
        self.layer_name: str | None = meta.get("layer")
        self.version: int | None = meta.get("version")  # of self.table; cursors pin it
        self.count_threshold = int(meta.get("count_threshold", 200_000))
        # pygeoapi passes unknown query parameters through as `properties`, so `region`
        # and `cursor` reach us; anything else unknown is refused in `_split_properties`
        self.include_extra_query_parameters = True
        self._fields = self.get_fields()

    # -- schema ---------------------------------------------------------------
    def property_columns(self) -> list[str]:
        return self.visible_columns()

    def get_fields(self) -> dict[str, dict[str, Any]]:
        cols = self._columns()
        fields = {}
        for name in self.property_columns():
            pgtype = cols[name]
            base = pgtype.split("(")[0]
            entry: dict[str, Any] = {"type": _PG_TO_JSON.get(base, "string")}
            if base in _FORMATS:
                entry["format"] = _FORMATS[base]
            if name in self.masks:
                entry["type"] = "string"
            if name in self.labels:
                entry["title"] = self.labels[name]
            fields[name] = entry
        return fields

    # -- SQL pieces -----------------------------------------------------------
    def _column_sql(self, name: str) -> sql.Composable:
        if name not in self._fields:
            # same message whether the field is hidden or absent: no oracle
            raise ProviderInvalidQueryError(
                user_msg=f"未知字段 / unknown property: {name}")
        return self.access_sql().value(name)

    @property
    def is_table(self) -> bool:
        """A table resource: no geometry (``geom_field: null`` in its provider entry)."""
        return self.geom_field is None

    def _geometry_sql(self, crs_transform_spec) -> tuple[sql.Composable, int]:
        srid, flip, geographic = _output_srid(crs_transform_spec)
        if self.is_table:
            return sql.SQL("NULL::json"), srid
        geom: sql.Composable = sql.SQL("t.{}").format(sql.Identifier(self.geom_field))
        if srid not in (CANONICAL_EPSG, 4326):
            # clipped to where the transform succeeds (absurd vertices stored by old loads)
            geom = sql.SQL("ST_Transform({}, {})").format(domain_sql(geom, srid),
                                                          sql.Literal(srid))
        if flip:
            geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
        digits = 7 if geographic else 3
        # options 0: no "crs" member (RFC 7946; the CRS is stated by Content-Crs)
        return sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(geom, sql.Literal(digits)), srid

    def _properties_sql(self, select: list[str] | None) -> sql.Composable:
        # a layer's fid is only its id; a table's key is also one of its fields
        names = [c for c in self.property_columns() if c != self.id_field or self.is_table
                 or (select and self.id_field in select)]
        if select:
            names = [c for c in names if c in select]
        if not names:
            return sql.SQL("'{}'::json")
        chunks = []
        for i in range(0, len(names), 50):  # json_build_object takes at most 100 args
            args = sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(n), self._column_sql(n))
                for n in names[i:i + 50])
            chunks.append(sql.SQL("jsonb_build_object({})" if len(names) > 50
                                  else "json_build_object({})").format(args))
        return sql.SQL(" || ").join(chunks)

    def _where(self, bbox, properties, filterq, params: list,
               extra: list[sql.Composable] | None = None,
               regions: list[str] | None = None) -> sql.Composable:
        clauses: list[sql.Composable] = list(extra or [])
        if self.static_where:  # trusted: comes from our generated config, never a request
            clauses.append(sql.SQL(self.static_where))
        geom = self.access_sql().geom_sql()
        if bbox and geom is None:
            raise ProviderInvalidQueryError(
                user_msg="参数 bbox：表格资源没有几何，不能按范围查询 / parameter bbox: this "
                         "collection is a table (no geometry); filter by its fields instead")
        if bbox:
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            # pygeoapi gives bbox in the storage CRS's authority order: lat/lon for 4490
            if _storage_lat_first():
                miny, minx, maxy, maxx = bbox
            else:
                minx, miny, maxx, maxy = bbox
            params.extend([minx, miny, maxx, maxy])
            clauses.append(sql.SQL(
                "ST_Intersects({g}, ST_MakeEnvelope(%s, %s, %s, %s, {srid}))").format(
                g=geom, srid=sql.Literal(CANONICAL_EPSG)))
        cols = self._columns()
        for name, value in properties or []:
            col = self._column_sql(name)
            if name not in self.masks:  # masked: compared as text
                check_property_value(name, cols[name], value)
            if name in self.masks:
                clauses.append(sql.SQL("{} = %s").format(col))
            else:
                clauses.append(sql.SQL("{} = CAST(%s AS {})").format(
                    col, sql.SQL(cols[name])))
            params.append(value)
        if filterq is not None:
            virtual = ({VIRTUAL_REGION} - set(self._fields)) if geom is not None else set()
            spatial = ("geometry", self.geom_field) if geom is not None else ()
            for name in set(attributes(filterq)):
                if name not in (*spatial, *virtual):
                    self._column_sql(name)  # refuses hidden / unknown before any SQL

            def resolve(name: str) -> sql.Composable:
                if name in spatial:
                    return geom
                return self._column_sql(name)

            tr = CQLTranslator(resolve, geom if geom is not None else sql.SQL("NULL::geometry"),
                               CANONICAL_EPSG,
                               flip_literals=_storage_lat_first(),
                               region_filter=(lambda codes: region_exists(geom))
                               if virtual else None)
            try:
                clauses.append(tr(filterq))
            except CQLError as exc:
                raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
            params.extend(tr.params)
        if regions:
            clause, p = intersects_regions(geom, regions)
            clauses.append(clause)
            params.extend(p)
        scope, p = self.access_sql().row_scope()  # the grant: rows in its regions only
        if scope is not None:
            clauses.append(scope)
            params.extend(p)
        if not clauses:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)

    def _from(self, table: str | None = None) -> sql.Composable:
        schema, name = split_table(table or self.table)
        return sql.SQL(" FROM {} AS t").format(sql.Identifier(schema, name))

    # -- extra parameters: region, keyset cursor ------------------------------
    def _split_properties(self, properties) -> tuple[list, dict[str, str]]:
        fields, extra = [], {}
        for name, value in properties or []:
            if name in EXTRA_PARAMS:
                extra[name] = value
            elif name in self._fields:
                fields.append((name, value))
            else:  # same answer for hidden and absent fields: no oracle
                raise ProviderInvalidQueryError(
                    user_msg=f"未知查询参数 / unknown query parameter: {name}")
        return fields, extra

    def _regions(self, value: str | None, conn) -> list[str] | None:
        if not value:
            return None
        if self.is_table:
            raise ProviderInvalidQueryError(
                user_msg="参数 region：表格资源没有几何，不能按区划查询 / parameter region: this "
                         "collection is a table (no geometry); its rows lie in no region")
        codes = [c.strip() for c in value.split(",") if c.strip()]
        found = {r["code"] for r in conn.execute(
            "SELECT DISTINCT code FROM public.region_part WHERE code = ANY(%s)", (codes,))}
        missing = [c for c in codes if c not in found]
        if missing:
            raise ProviderInvalidQueryError(
                user_msg=f"参数 region：区划代码不存在或无界线 / parameter region: unknown region "
                         f"code or no boundary for {', '.join(missing)}")
        return codes

    def _cursor_table(self, token: str, conn) -> tuple[str, int, list, bool]:
        """Decode a keyset cursor: (the version table it pins, that version, the row's
        sort key, read backwards?)."""
        version, key, backwards = paging.decode(token)
        if self.layer_name is None:
            return self.table, version, key, backwards
        row = conn.execute(
            "SELECT v.table_name FROM layer_version v JOIN layer l ON l.id = v.layer_id "
            "WHERE l.name = %s AND v.version = %s", (self.layer_name, version)).fetchone()
        if row is None or row["table_name"] is None:
            raise ProviderInvalidQueryError(
                user_msg="参数 cursor 已失效（版本已删除）/ parameter cursor refers to a version "
                         "that no longer exists: start again from the first page")
        return row["table_name"], version, key, backwards

    # -- provider API ---------------------------------------------------------
    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results",
              bbox: list | None = None, datetime_: str | None = None,
              properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False,
              q: str | None = None, filterq=None, crs_transform_spec=None,
              **kwargs) -> dict:
        """Features by bbox / properties / CQL2 / region, keyset-paged.

        Paging (:mod:`jmgeo.ogc.paging`): the first page may use ``offset``; every
        ``next``/``prev`` link carries a ``cursor`` (a row's sort key and the layer
        version it was read from), so page 1000 costs what page 1 costs and a reload
        between pages does not shift rows: the cursor keeps reading the version it
        started on. One row more than ``limit`` is read to know whether a page follows.
        """
        props, extra = self._split_properties(properties)
        sorts = [(s["property"], s["order"] == "-") for s in sortby or []]
        keyset = len({desc for _, desc in sorts}) <= 1  # row comparison needs one direction
        descending = bool(sorts and sorts[0][1])
        backwards = False
        try:
            with read_connection() as conn:
                regions = self._regions(extra.get("region"), conn)
                table, version, key = self.table, self.version, None
                if extra.get("cursor"):
                    if not keyset:
                        raise ProviderInvalidQueryError(
                            user_msg="参数 cursor 不能与混合方向的 sortby 同用 / parameter "
                                     "cursor cannot be combined with mixed-direction sortby")
                    table, version, key, backwards = self._cursor_table(extra["cursor"], conn)
                    offset = 0
                # read backwards (a `prev` page): the other comparison, the other order
                reverse = descending != backwards
                params: list = []
                extra_clauses: list[sql.Composable] = []
                key_cols = [self._column_sql(p) for p, _ in sorts]
                key_cols.append(sql.SQL("t.{}").format(sql.Identifier(self.id_field)))
                if key is not None:
                    if len(key) != len(key_cols):
                        raise ProviderInvalidQueryError(
                            user_msg="参数 cursor 与 sortby 不一致 / parameter cursor does not "
                                     "match sortby: follow the `next` link as given")
                    extra_clauses.append(sql.SQL("({}) {} ({})").format(
                        sql.SQL(", ").join(key_cols), sql.SQL("<" if reverse else ">"),
                        sql.SQL(", ").join(sql.SQL("%s") for _ in key)))
                    params.extend(key)
                where = self._where(bbox, props, filterq, params, extra=extra_clauses,
                                    regions=regions)
                # numberMatched counts the selection, wherever the page starts
                count_params: list = []
                count_where = where if key is None else self._where(
                    bbox, props, filterq, count_params, regions=regions)
                direction = sql.SQL(" DESC" if reverse else " ASC")
                order = (sql.SQL(", ").join(c + direction for c in key_cols) if keyset else
                         sql.SQL(", ").join(
                             [c + sql.SQL(" DESC" if d else " ASC")
                              for c, (_, d) in zip(key_cols, sorts, strict=False)]
                             + [key_cols[-1]]))
                geom_sql, _ = self._geometry_sql(crs_transform_spec)
                if skip_geometry:
                    geom_sql = sql.SQL("NULL::json")
                keys = sql.SQL(", ").join(
                    sql.SQL("{} AS {}").format(c, sql.Identifier(f"_k{i}"))
                    for i, c in enumerate(key_cols))
                query = (sql.SQL("SELECT {g} AS geometry, {p} AS properties, {keys}").format(
                    g=geom_sql, p=self._properties_sql(select_properties), keys=keys)
                    + self._from(table) + where + sql.SQL(" ORDER BY ") + order
                    + sql.SQL(" LIMIT %s OFFSET %s"))
                matched = self._number_matched(conn, table, count_where,
                                               params if key is None else count_params,
                                               resulttype)
                rows = ([] if resulttype == "hits" else
                        conn.execute(query, [*params, limit + 1, offset]).fetchall())
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        except (psycopg.errors.DataError, psycopg.errors.InvalidParameterValue) as exc:
            raise ProviderInvalidQueryError(
                user_msg=f"查询参数无效 / invalid query value: {exc.diag.message_primary}"
            ) from exc
        except psycopg.errors.UndefinedColumn as exc:  # a cursor into an older schema
            raise ProviderInvalidQueryError(
                user_msg="参数 cursor 指向结构不同的旧版本 / parameter cursor refers to an older "
                         "version with other fields: start again from the first page") from exc
        more = len(rows) > limit  # after the page, or before it when read backwards
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        nkeys = len(key_cols)
        features = [{"type": "Feature", "id": r[f"_k{nkeys - 1}"], "geometry": r["geometry"],
                     "properties": r["properties"]} for r in rows]
        out: dict[str, Any] = {"type": "FeatureCollection", "features": features,
                               "numberReturned": len(features), "links": []}
        if matched is not None:
            out["numberMatched"] = matched
        if resulttype == "hits":
            return out
        if not keyset:
            out["links"] = paging.offset_links(offset, limit, more)
            return out
        def sort_key(r):
            return [r[f"_k{i}"] for i in range(nkeys)]

        out["links"] = paging.keyset_links(
            version, sort_key(rows[0]) if rows else None, sort_key(rows[-1]) if rows else None,
            more_after=more if not backwards else True,
            more_before=more if backwards else (key is not None or offset > 0),
            not_first=key is not None or offset > 0)
        return out

    def _number_matched(self, conn, table, where, params, resulttype) -> int | None:
        """Exact count when asked (hits) or cheap (small table); else omitted."""
        if resulttype != "hits" and self._estimate(conn, table) > self.count_threshold:
            return None
        row = conn.execute(sql.SQL("SELECT count(*) AS n") + self._from(table) + where,
                           params).fetchone()
        return int(row["n"])

    @staticmethod
    def _estimate(conn, table: str) -> int:
        now = time.monotonic()
        hit = _estimates.get(table)
        if hit is not None and now - hit[0] < ESTIMATE_TTL:
            return hit[1]
        schema, name = split_table(table)
        row = conn.execute(
            "SELECT c.reltuples::bigint AS n FROM pg_class c JOIN pg_namespace s "
            "ON s.oid = c.relnamespace WHERE s.nspname = %s AND c.relname = %s",
            (schema, name)).fetchone()
        n = int(row["n"]) if row else 0
        _estimates[table] = (now, n)
        return n

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        geom_sql, _ = self._geometry_sql(crs_transform_spec)
        id_type = self._columns().get(self.id_field, "text")
        params: list = [str(identifier)]
        cond = sql.SQL("t.{} = CAST(%s AS {})").format(sql.Identifier(self.id_field),
                                                       sql.SQL(id_type))
        where = self._where(None, None, None, params, extra=[cond])
        query = (sql.SQL("SELECT t.{id} AS id, {g} AS geometry, {p} AS properties").format(
            id=sql.Identifier(self.id_field), g=geom_sql, p=self._properties_sql(None))
            + self._from() + where)
        try:
            with read_connection() as conn:
                row = conn.execute(query, params).fetchone()
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        except psycopg.errors.DataError:
            row = None
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"要素不存在 / item not found: {identifier}")
        return {"type": "Feature", "id": row["id"], "geometry": row["geometry"],
                "properties": row["properties"]}


class TableProvider(PostGISProvider):
    """A table resource (no geometry) as a feature collection with ``geometry: null``:
    paging, CQL2, sortby, properties exactly as for layers; ``bbox``, ``region`` and
    spatial filters are refused (400 naming them); a region-scoped grant gives no rows
    (``layers.access_sql``: rows without geometry lie in no region — fail closed).
    A class of its own so the router and the OpenAPI add no ``region`` to it."""

    def __init__(self, provider_def: dict):
        provider_def = {**provider_def, "geom_field": None}
        super().__init__(provider_def)

    def property_columns(self) -> list[str]:
        """A table's fields: its key among them, never ``fid`` (a row number the platform
        gives, not data — it is the item id only when the key is withheld)."""
        return [c for c in self.visible_columns() if c != "fid"]
