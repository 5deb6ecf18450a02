"""The access matrix: callers × sharing classes × ways out, expected outcome from DESIGN §5.

GENERATED with itertools.product — not hand-listed. The expectation for each (caller,
class) is computed from ``DESIGN_TABLE`` (a transcription of the §5 table) and the
caller's grant state; each way out checks its own response against it and asserts no
leak: a hidden layer answers exactly like a nonexistent one (status and body), hidden
fields are absent and refused like unknown ones, sensitive fields are masked, a
region-limited grant returns only its region's rows, non-open data is never
``Cache-Control: public``, and non-open data access writes an audit row.

Adding a way out (tiles, coverages, downloads …) is one entry in ``WAYS``. Every way runs
for both resource kinds with rows (``KINDS``: vector layers ``tpol_<class>`` and table
resources ``tpol_tab_<class>``, whose items are keyed by their key ``name``).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass

import pytest
from policy_fixtures import (
    CLASSES,
    FEATURES,
    FIELDS,
    GRANT_FIELDS,
    GRANT_REGION,
    KINDS,
    SENSITIVE,
    build_world,
    layer_name,
)

NONEXISTENT = "tpol_never_existed"
HIDDEN_FIELD = "qlr"  # 权利人: the field the limited grant leaves out
UNKNOWN_FIELD = "no_such_field"

# DESIGN.md §5, transcribed: caller category × sharing class.
#   data  — the data;  grant — data only with a live grant, limited to it;
#   entry — catalog entry only (no data: absent from the OGC data surface);  – — absent.
DESIGN_TABLE = {
    "anonymous": {"open": "data", "unconditional": "–", "conditional": "–", "not_shared": "–"},
    "department": {"open": "data", "unconditional": "data", "conditional": "grant",
                   "not_shared": "entry"},
    "owner": {"open": "data", "unconditional": "data", "conditional": "data",
              "not_shared": "data"},
}
# test callers: (category in the table, holds a live grant on the conditional layer?)
CALLERS = {
    "anonymous": ("anonymous", False),
    "unrelated": ("department", False),
    "limited_grant": ("department", True),
    "expired_grant": ("department", False),
    "owner": ("owner", False),
}
ALL_FIDS = frozenset(f[0] for f in FEATURES)
GRANT_FIDS = frozenset(f[0] for f in FEATURES if f[3] == GRANT_REGION)
FID_BY_NAME = {f[4]: f[0] for f in FEATURES}  # a table's item id is its key, `name`
COUNTY = {f[0]: f[3] for f in FEATURES}
BY_FID = {f[0]: dict(zip(("name", "qlr", "phone", "sfz", "area", "county"), f[4:8] + (f[8], f[3]),
                         strict=True)) for f in FEATURES}


@dataclass(frozen=True)
class Expect:
    visible: bool
    fields: frozenset[str] = frozenset()
    masked: frozenset[str] = frozenset()
    fids: frozenset[int] = frozenset()
    audited: bool = False


def expect(caller: str, cls: str, kind: str = "vector") -> Expect:
    category, live_grant = CALLERS[caller]
    cell = DESIGN_TABLE[category][cls]
    if cell in ("–", "entry") or (cell == "grant" and not live_grant):
        return Expect(False)
    audited = cls != "open"
    if category == "owner":
        return Expect(True, frozenset(FIELDS), frozenset(), ALL_FIDS, audited)
    if cell == "grant":
        fields = frozenset(GRANT_FIELDS)
        # sensitive fields the grant shows are masked unless the grant names them
        # the table's grant has no region scope (policy_fixtures): every row
        return Expect(True, fields, (frozenset(SENSITIVE) & fields) - set(GRANT_FIELDS),
                      GRANT_FIDS if kind == "vector" else ALL_FIDS, audited)
    return Expect(True, frozenset(FIELDS), frozenset(SENSITIVE), ALL_FIDS, audited)


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


class Ctx:
    def __init__(self, client, db, caller, token, cls, kind="vector"):
        self.client, self.db, self.caller, self.cls = client, db, caller, cls
        self.kind = kind
        self.headers = {"X-API-Key": token} if token else {}
        self.layer = layer_name(cls, kind)
        self.exp = expect(caller, cls, kind)

    @property
    def is_table(self) -> bool:
        return self.kind == "table"

    @property
    def catalog_title(self) -> str:
        return f"策略测试{'表格' if self.is_table else ''} {self.cls}"

    @property
    def catalog_listed(self) -> bool:
        return self.cls == "open" if self.caller == "anonymous" else True

    def key(self, fid: int):
        """The item id of row ``fid``: its fid for a layer, its key for a table."""
        return BY_FID[fid]["name"] if self.is_table else fid

    def fid(self, feature: dict) -> int:
        return FID_BY_NAME[feature["id"]] if self.is_table else feature["id"]

    @property
    def missing_key(self):
        return "不存在的键" if self.is_table else 999

    def get(self, path: str, body: dict | None = None, **params):
        params.setdefault("f", "json")
        if body is None:
            r = self.client.get(path, params=params, headers=self.headers)
        else:  # CQL2 JSON filter in a POST body
            r = self.client.post(path, params=params, content=json.dumps(body),
                                 headers={**self.headers, "Content-Type": "application/json"})
        assert r.status_code < 500, r.text
        cc = r.headers.get("cache-control", "")
        if self.cls != "open" and r.status_code == 200 and self.exp.visible:
            assert "public" not in cc, f"non-open data cached publicly: {cc}"
        if self.caller != "anonymous":
            assert "public" not in cc
        return r

    def like_nonexistent(self, template: str, body: dict | None = None, **params):
        """The request for this layer answers exactly like one for a layer never made."""
        mine = self.get(template.format(c=self.layer), body, **params)
        none = self.get(template.format(c=NONEXISTENT), body, **params)
        assert mine.status_code == none.status_code == 404
        assert mine.text.replace(self.layer, "X") == none.text.replace(NONEXISTENT, "X")
        assert self.layer not in mine.text

    def audit_mark(self) -> int:
        return self.db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]

    def audit_since(self, mark: int) -> list[tuple]:
        return self.db.execute(
            "SELECT dept_code, layer, grant_id, rows, action FROM audit_log WHERE id > %s "
            "ORDER BY id", (mark,)).fetchall()

    @property
    def refused(self) -> bool:
        """Is asking for this resource's data a *refused* access (audited, issue 10 §5)?
        A department that sees the catalog entry but not the data: yes; anonymous
        callers (the resource does not exist for them) and visible data: no."""
        return not self.exp.visible and CALLERS[self.caller][0] == "department"

    def check_refused(self, mark: int, requests: int):
        """Since ``mark``: one ``refused`` audit row per request that named this resource
        when it is a refusal (no grant, no rows), none otherwise — and never one for the
        nonexistent name."""
        new = self.audit_since(mark)
        want = [(CALLER_DEPTS[self.caller], self.layer, None, 0, "refused")] * requests \
            if self.refused else []
        assert new == want, new

    def check_properties(self, fid: int, props: dict, selected: set[str] | None = None):
        expected_keys = set(self.exp.fields) if selected is None else selected
        assert set(props) == expected_keys, (fid, props)
        for name, value in props.items():
            clear = BY_FID[fid][name]
            if name in self.exp.masked:
                assert value != clear and "*" in str(value), (name, value)
            else:
                assert value == clear, (name, value, clear)

    def check_audit(self, mark: int, rows: int, action: str):
        new = self.audit_since(mark)
        if not self.exp.audited:
            assert [r for r in new if r[1] == self.layer] == []
            return
        assert len(new) == 1, new
        dept, layer, grant_id, n, act = new[0]
        assert (dept, layer, n, act) == (CALLER_DEPTS[self.caller], self.layer, rows, action)
        assert (grant_id is not None) == (self.cls == "conditional"
                                          and self.caller == "limited_grant")


CALLER_DEPTS = {"anonymous": None, "unrelated": "hb", "limited_grant": "gh",
                "expired_grant": "jy", "owner": "gtzy"}


# -- the ways out -------------------------------------------------------------------

def way_collections_list(ctx: Ctx):
    r = ctx.get("/ogc/collections")
    assert r.status_code == 200
    ids = {c["id"] for c in r.json()["collections"]}
    assert (ctx.layer in ids) == ctx.exp.visible
    if not ctx.exp.visible:
        assert ctx.layer not in r.text


def way_collection(ctx: Ctx):
    if not ctx.exp.visible:
        return ctx.like_nonexistent("/ogc/collections/{c}")
    r = ctx.get(f"/ogc/collections/{ctx.layer}")
    assert r.status_code == 200 and r.json()["id"] == ctx.layer


def way_items(ctx: Ctx):
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent("/ogc/collections/{c}/items", limit=100)
        ctx.check_refused(mark, 1)
        return
    mark = ctx.audit_mark()
    r = ctx.get(f"/ogc/collections/{ctx.layer}/items", limit=100)
    assert r.status_code == 200
    body = r.json()
    assert {ctx.fid(f) for f in body["features"]} == set(ctx.exp.fids)
    for f in body["features"]:
        ctx.check_properties(ctx.fid(f), f["properties"])
        assert (f["geometry"] is None) == ctx.is_table
        if ctx.exp.fids == GRANT_FIDS:  # region-limited grant: only its region's rows
            assert f["properties"]["county"] == GRANT_REGION
    assert body["numberReturned"] == len(ctx.exp.fids)
    ctx.check_audit(mark, len(ctx.exp.fids), "ogc.items")


def way_item(ctx: Ctx):
    if not ctx.exp.visible:
        for fid in sorted(ALL_FIDS):
            ctx.like_nonexistent(f"/ogc/collections/{{c}}/items/{ctx.key(fid)}")
        return
    missing = ctx.get(f"/ogc/collections/{ctx.layer}/items/{ctx.missing_key}")
    for fid in sorted(ALL_FIDS):
        mark = ctx.audit_mark()
        r = ctx.get(f"/ogc/collections/{ctx.layer}/items/{ctx.key(fid)}")
        if fid in ctx.exp.fids:
            assert r.status_code == 200
            ctx.check_properties(fid, r.json()["properties"])
            ctx.check_audit(mark, 1, "ogc.item")
        else:  # outside the grant's region: exactly like an item that does not exist
            assert r.status_code == missing.status_code == 404
            assert r.json()["code"] == missing.json()["code"]
            assert (r.json()["description"].replace(f": {ctx.key(fid)}", ": N")
                    == missing.json()["description"].replace(f": {ctx.missing_key}", ": N"))


def _schema_like(ctx: Ctx, what: str):
    if not ctx.exp.visible:
        return ctx.like_nonexistent(f"/ogc/collections/{{c}}/{what}")
    r = ctx.get(f"/ogc/collections/{ctx.layer}/{what}")
    assert r.status_code == 200
    props = set(r.json()["properties"]) - {"geometry", "fid"}
    if what == "queryables" and ctx.is_table:  # rows of a table lie in no region
        assert "region" not in r.json()["properties"]
    elif what == "queryables":  # the virtual `region` queryable every feature layer has
        assert r.json()["properties"]["region"]["title"].startswith("行政区划")
        props -= {"region"}
    assert props == set(ctx.exp.fields)


def way_queryables(ctx: Ctx):
    _schema_like(ctx, "queryables")


def way_schema(ctx: Ctx):
    _schema_like(ctx, "schema")


def way_openapi(ctx: Ctx):
    r = ctx.get("/ogc/openapi")
    assert r.status_code == 200
    doc = r.json()
    mine = {p: v for p, v in doc["paths"].items() if p.startswith(f"/collections/{ctx.layer}")}
    if not ctx.exp.visible:
        assert mine == {} and ctx.layer not in r.text
        return
    assert f"/collections/{ctx.layer}/items" in mine
    text = json.dumps(mine, ensure_ascii=False)
    for hidden in set(FIELDS) - set(ctx.exp.fields):
        assert f'"{hidden}"' not in text


def _refused_like_unknown(ctx: Ctx, param: str):
    """filter / sortby / properties on the hidden field: refused exactly like an unknown
    field when hidden; answered when visible; like a nonexistent layer when absent."""
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        ctx.like_nonexistent("/ogc/collections/{c}/items", **{param: _expr(param, HIDDEN_FIELD)})
        ctx.check_refused(mark, 1)
        return
    r = ctx.get(f"/ogc/collections/{ctx.layer}/items", **{param: _expr(param, HIDDEN_FIELD)})
    if HIDDEN_FIELD in ctx.exp.fields:
        assert r.status_code == 200
        if param == "properties":
            for f in r.json()["features"]:
                ctx.check_properties(ctx.fid(f), f["properties"], {HIDDEN_FIELD})
        return
    unknown = ctx.get(f"/ogc/collections/{ctx.layer}/items",
                      **{param: _expr(param, UNKNOWN_FIELD)})
    assert r.status_code == unknown.status_code == 400
    assert r.text.replace(HIDDEN_FIELD, "F") == unknown.text.replace(UNKNOWN_FIELD, "F")


def _expr(param: str, field: str) -> str:
    return f"{field} = '陈大明'" if param == "filter" else field


def way_filter_hidden(ctx: Ctx):
    _refused_like_unknown(ctx, "filter")


def way_sortby_hidden(ctx: Ctx):
    _refused_like_unknown(ctx, "sortby")


def way_properties_hidden(ctx: Ctx):
    _refused_like_unknown(ctx, "properties")


def way_filter_hidden_cql2_json(ctx: Ctx):
    """The same refusal when the filter comes as CQL2 JSON in a POST body."""
    def body(field):
        return {"op": "=", "args": [{"property": field}, "陈大明"]}

    path = "/ogc/collections/{c}/items"
    if not ctx.exp.visible:
        return ctx.like_nonexistent(path, body(HIDDEN_FIELD))
    r = ctx.get(path.format(c=ctx.layer), body(HIDDEN_FIELD))
    if HIDDEN_FIELD in ctx.exp.fields:
        assert r.status_code == 200
        # a masked field compares its masked value: the clear name matches nothing
        n = len(r.json()["features"])
        assert n == (0 if HIDDEN_FIELD in ctx.exp.masked else 1)
        return
    unknown = ctx.get(path.format(c=ctx.layer), body(UNKNOWN_FIELD))
    assert r.status_code == unknown.status_code == 400
    assert r.text.replace(HIDDEN_FIELD, "F") == unknown.text.replace(UNKNOWN_FIELD, "F")


def way_error_text(ctx: Ctx):
    """Every error a hidden layer gives equals the nonexistent layer's, JSON and HTML."""
    paths = ("/ogc/collections/{c}", "/ogc/collections/{c}/items",
             f"/ogc/collections/{{c}}/items/{ctx.key(1)}", "/ogc/collections/{c}/queryables",
             "/ogc/collections/{c}/schema")
    if not ctx.exp.visible:
        for p in paths:
            ctx.like_nonexistent(p)
            ctx.like_nonexistent(p, f="html")
        return
    for p in paths:
        assert ctx.get(p.format(c=ctx.layer)).status_code == 200


def way_statistics(ctx: Ctx):
    """Region statistics: hidden like nonexistent; counts only the caller's rows (a region
    grant: the rows intersecting its regions); a hidden or masked group_by refused like an
    unknown field; a table has no features to count (400)."""
    path = "/regions/440700/stats"
    if not ctx.exp.visible:
        mark = ctx.audit_mark()
        mine = ctx.get(path, layer=ctx.layer)
        none = ctx.get(path, layer=NONEXISTENT)
        assert mine.status_code == none.status_code == 404
        assert mine.text.replace(ctx.layer, "X") == none.text.replace(NONEXISTENT, "X")
        ctx.check_refused(mark, 1)
        return
    if ctx.is_table:
        r = ctx.get(path, layer=ctx.layer)
        assert r.status_code == 400 and "table" in r.text
        return
    mark = ctx.audit_mark()
    r = ctx.get(path, layer=ctx.layer)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert {row["region_code"]: row["count"] for row in rows} == \
        dict(Counter(COUNTY[fid] for fid in ctx.exp.fids))
    ctx.check_audit(mark, len(rows), "regions.stats")
    hidden = ctx.get(path, layer=ctx.layer, group_by=HIDDEN_FIELD)
    if HIDDEN_FIELD in ctx.exp.fields and HIDDEN_FIELD not in ctx.exp.masked:
        assert hidden.status_code == 200
        return
    unknown = ctx.get(path, layer=ctx.layer, group_by=UNKNOWN_FIELD)
    assert hidden.status_code == unknown.status_code == 400
    assert hidden.text.replace(HIDDEN_FIELD, "F") == unknown.text.replace(UNKNOWN_FIELD, "F")


def way_records(ctx: Ctx):
    """Catalog records (metadata, never data): anonymous callers list only open entries,
    every department (and the owner) every published entry — the entry, not the data."""
    title, listed = ctx.catalog_title, ctx.catalog_listed
    for params in ({"limit": 10000}, {"q": "策略测试", "limit": 10000}):  # list and search
        r = ctx.get("/ogc/collections/catalog/items", **params)
        assert r.status_code == 200, r.text
        titles = {f["properties"].get("title") for f in r.json()["features"]}
        assert (title in titles) == listed, (params, title, sorted(t for t in titles if t))
        for f in FEATURES:  # no data value ever reaches a record
            for value in (f[5], f[6], f[7]):
                assert value not in r.text


WAYS = {
    "collections_list": way_collections_list,
    "collection": way_collection,
    "items": way_items,
    "item": way_item,
    "queryables": way_queryables,
    "schema": way_schema,
    "openapi": way_openapi,
    "filter_hidden_field": way_filter_hidden,
    "sortby_hidden_field": way_sortby_hidden,
    "properties_hidden_field": way_properties_hidden,
    "filter_hidden_field_cql2_json": way_filter_hidden_cql2_json,
    "error_text_hidden_vs_nonexistent": way_error_text,
    "statistics": way_statistics,
    "records": way_records,
    # "tiles": way_tiles, "coverage": way_coverage, "download": way_download — when they exist
}

MATRIX = list(itertools.product(CALLERS, CLASSES, KINDS, WAYS))


@pytest.mark.parametrize(("caller", "cls", "kind", "way"), MATRIX,
                         ids=[f"{c}-{k}-{t}-{w}" for c, k, t, w in MATRIX])
def test_access_matrix(world, app_client, db, caller, cls, kind, way):
    ctx = Ctx(app_client, db, caller, world[caller].token, cls, kind)
    WAYS[way](ctx)


# -- retired resources (jmgeo layer retire): like a resource that never existed, for every
# caller — the owner too — on every way out; no refusal audited (nothing is refused: there
# is nothing). Open ones: in service, even anonymous callers would have their data.
RETIRED = {"vector": "tpol_retired", "table": "tpol_tab_retired"}


@pytest.fixture(scope="module")
def retired(world, database_url):
    import psycopg
    from policy_fixtures import create_layer, create_table

    from catalog.sync import ensure_synced
    from layers.lifecycle import retire

    with psycopg.connect(database_url, autocommit=True) as conn:
        fresh = [k for k, name in RETIRED.items() if not conn.execute(
            "SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone()]
        for kind in fresh:
            (create_layer if kind == "vector" else create_table)(conn, RETIRED[kind], "open")
        if fresh:
            ensure_synced(conn)  # its catalog entry published first, then retired
            for kind in fresh:
                retire(conn, RETIRED[kind], reason="矩阵测试", by="test")
    return RETIRED


class RetiredCtx(Ctx):
    """A way out asked for a retired (open) resource: it must not exist."""

    def __init__(self, client, db, caller, token, kind):
        super().__init__(client, db, caller, token, "open", kind)
        self.layer = RETIRED[kind]
        self.exp = Expect(False)

    refused = False  # no resource, no refusal (an attribute: hides Ctx.refused)

    @property
    def catalog_title(self) -> str:
        return f"策略测试 {self.layer}"

    catalog_listed = False


RETIRED_MATRIX = list(itertools.product(CALLERS, KINDS, WAYS))


@pytest.mark.parametrize(("caller", "kind", "way"), RETIRED_MATRIX,
                         ids=[f"{c}-{k}-{w}" for c, k, w in RETIRED_MATRIX])
def test_retired_resource_is_like_a_missing_one(world, retired, app_client, db, caller,
                                                kind, way):
    WAYS[way](RetiredCtx(app_client, db, caller, world[caller].token, kind))


def test_matrix_is_complete():
    # issue 9: the table kind and the statistics and records ways (was 5 * 4 * 12)
    assert len(MATRIX) == len(CALLERS) * len(CLASSES) * len(KINDS) * len(WAYS) == \
        5 * 4 * 2 * 14
    # every cell of the §5 table is exercised by some caller
    cells = {(CALLERS[c][0], k) for c, k, _, _ in MATRIX}
    assert cells == {(cat, k) for cat in DESIGN_TABLE for k in CLASSES}
