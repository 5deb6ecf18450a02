"""The catalog API: ``router`` (mounted by the app at ``/catalog``), the HTTP side of
``catalog.store``.

Departments create, edit, submit and retire their own entries; the bureau
(``layers.policy.may_review``) reviews (approve, or return with reasons), publishes and
may correct anything; everyone searches. What a caller sees is the policy's rule
(``layers.policy.catalog_filter``, applied by ``catalog.store``): the public the open
published entries, a department every published entry's metadata and all of its own,
the bureau and auditors all (``sees_every_entry``). An entry the caller may not see
answers 404 exactly like one that does not exist.

Values of controlled vocabularies are accepted as keys (``conditional``) or Chinese
labels (``有条件共享``) and answered as both.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import tempfile
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from catalog import dcat, excel, store, sync, vocab
from jmgeo.db import connection
from jmgeo.http import CallerDep, envelope
from jmgeo.settings import get_settings
from layers.policy import Caller, may_review, owns, sees_every_entry

router = APIRouter(prefix="/catalog", tags=["catalog"])

VOCAB_FIELDS = {"class_code": vocab.CLASSES, "format": vocab.FORMATS,
                "sharing_type": vocab.SHARING_TYPES, "sharing_method": vocab.SHARING_METHODS,
                "update_cycle": vocab.UPDATE_CYCLES}


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="信息项名称")
    data_type: str = Field(description="数据类型 C N Y D T L M G B I F (or 字符型 …)")
    length: str | int | None = Field(None, description="数据长度, e.g. 20 or 18,2")
    sharing_type: str | None = Field(None, description="信息项共享类型; default: the entry's")


class EntryIn(BaseModel):
    """An entry's content; on PATCH only the members given change."""

    model_config = ConfigDict(extra="forbid")
    class_code: str | None = Field(None, description="类: 1 基础, 2 主题, 3 部门")
    item_code: str | None = Field(None, description="项 code, 2 digits")
    item_name: str | None = None
    category_code: str | None = Field(None, description="目 code, 3 digits")
    category_name: str | None = None
    subcategory_code: str | None = Field(None, description="细目 code (optional)")
    subcategory_name: str | None = None
    name: str | None = Field(None, description="信息资源名称")
    code: str | None = Field(None, description="信息资源代码 前段码/后段码; generated if absent")
    provider_code: str | None = Field(None, description="provider department (bureau only; "
                                                        "departments catalogue their own)")
    abstract: str | None = None
    format: str | None = None
    sharing_type: str | None = None
    sharing_condition: str | None = Field(None, description="共享条件; for 不予共享 the legal "
                                                            "basis")
    sharing_method: str | None = None
    is_open: bool | str | None = None
    open_condition: str | None = None
    update_cycle: str | None = None
    publish_date: dt.date | None = None
    related_codes: list[str] | None = None
    items: list[ItemIn] | None = None


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "return"]
    reasons: str | None = Field(None, description="required when returning")


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = None


EntryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="entry id")]


def _content(body: EntryIn) -> dict[str, Any]:
    c = body.model_dump(exclude_unset=True)
    for f, vv in VOCAB_FIELDS.items():
        if isinstance(c.get(f), str):
            c[f] = vv.parse(c[f]) or c[f]
    if isinstance(c.get("is_open"), str):
        c["is_open"] = vocab.OPEN.parse(c["is_open"]) == "yes"
    if c.get("items") is not None:
        for it in c["items"]:
            it["data_type"] = vocab.DATA_TYPES.parse(it["data_type"]) or it["data_type"]
            if it.get("sharing_type"):
                it["sharing_type"] = (vocab.SHARING_TYPES.parse(it["sharing_type"])
                                      or it["sharing_type"])
            if it.get("length") is not None:
                it["length"] = str(it["length"])
    return c


def _error(exc: store.CatalogError) -> JSONResponse:
    code = {400: "InvalidParameterValue", 403: "Forbidden", 404: "NotFound",
            409: "Conflict"}[exc.status]
    return envelope(exc.status, str(exc), code, errors=[p.as_dict() for p in exc.errors])


def _run(fn: Callable[[Any], Any]):
    try:
        with connection() as conn:
            return fn(conn)
    except store.CatalogError as exc:
        return _error(exc)


def _label(v: vocab.Vocab, key: str | None) -> dict[str, str] | None:
    return {"key": key, "label": v.label(key)} if key else None


def owner_view(caller: Caller, entry: dict[str, Any]) -> bool:
    """Does the caller see the entry's review state and history? Whoever sees every
    entry (the bureau, the auditor) and the provider department."""
    return sees_every_entry(caller) or owns(caller, entry["provider_code"])


def serialize(e: dict[str, Any], caller: Caller) -> dict[str, Any]:
    out = {
        "id": e["id"], "code": e["code"], "name": e["name"],
        "classification": {
            "class": _label(vocab.CLASSES, e["class_code"]),
            "item": {"code": e["item_code"], "name": e["item_name"]},
            "category": {"code": e["category_code"], "name": e["category_name"]},
            "subcategory": ({"code": e["subcategory_code"], "name": e["subcategory_name"]}
                            if e.get("subcategory_code") else None),
        },
        "provider": {"code": e["provider_code"], "name": e["provider_name"],
                     "uscc": e["provider_uscc"]},
        "abstract": e["abstract"],
        "format": _label(vocab.FORMATS, e["format"]),
        "sharing_class": e["sharing_class"],
        "sharing_type": _label(vocab.SHARING_TYPES, e["sharing_type"]),
        "sharing_condition": e.get("sharing_condition"),
        "sharing_method": _label(vocab.SHARING_METHODS, e["sharing_method"]),
        "is_open": e["is_open"], "open_condition": e.get("open_condition"),
        "update_cycle": _label(vocab.UPDATE_CYCLES, e["update_cycle"]),
        "publish_date": e.get("publish_date"),
        "related_codes": list(e.get("related_codes") or []),
        "items": [{"name": it["name"], "data_type": it["data_type"],
                   "data_type_label": vocab.DATA_TYPE_NAMES.get(it["data_type"]),
                   "length": it.get("length"),
                   "sharing_type": _label(vocab.SHARING_TYPES, it["sharing_type"])}
                  for it in e["items"]],
        "status": {"key": e["status"], "label": vocab.STATUSES[e["status"]]},
        "layer": ({"name": e["layer_name"], "version": e.get("layer_version"),
                   "data_updated_at": e.get("data_updated_at"), "extent": e.get("extent")}
                  if e.get("layer_name") else None),
        "updated_at": e.get("updated_at"),
    }
    if owner_view(caller, e):
        out["review"] = {"state": e.get("review_state"), "comment": e.get("review_comment"),
                         "by": e.get("reviewed_by"), "at": e.get("reviewed_at")}
    if e.get("rank") is not None and isinstance(e.get("rank"), float):
        out["rank"] = round(e["rank"], 4)
    if e.get("match"):
        out["match"] = e["match"]  # "fuzzy": no exact hit, a similar name
    return out


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


@router.get("/entries", summary="search and filter the catalog")
def list_entries(
    caller: CallerDep,
    q: str | None = Query(None, max_length=200, description="中文检索, e.g. 道路"),
    class_code: str | None = Query(None, alias="class", description="类: 1, 2, 3"),
    dept: str | None = Query(None, description="provider department code"),
    sharing_type: str | None = Query(None, description="无条件共享 / 有条件共享 / 不予共享"),
    format: str | None = Query(None, description="信息资源格式, e.g. 矢量"),
    update_cycle: str | None = Query(None, description="更新周期, e.g. 每月"),
    category: str | None = Query(None, description="目 code, e.g. 004 (水利水务)"),
    kind: str | None = Query(None, description="vector, raster, table, or entry "
                                               "(catalogued, no data on the platform)"),
    facets: bool = Query(False, description="add the facet counts (category, dept, "
                                            "format, update_cycle, kind)"),
    status: str | None = Query(None, description="draft / submitted / published / retired"),
    open: bool | None = Query(None, description="only entries open to the public"),
    sort: str | None = Query(None, description="name, -name, code, updated, publish_date"),
    limit: int = Query(20, ge=1, le=1000),
    offset: int = Query(0, ge=0),
):

    def run(conn):
        sync.ensure_synced(conn)
        filters = {"class_code": class_code, "dept": dept, "sharing_type": sharing_type,
                   "format": format, "update_cycle": update_cycle, "status": status,
                   "category": category, "kind": kind}
        rows, total = store.list_entries(
            conn, caller, q=q, open_only=bool(open), limit=limit, offset=offset, sort=sort,
            filters=filters)
        out = {"numberMatched": total, "numberReturned": len(rows),
               "entries": [serialize(r, caller) for r in rows]}
        if facets:
            out["facets"] = store.facet_counts(
                conn, caller, q=q, filters=filters, open_only=bool(open),
                fuzzy=any(r.get("match") == "fuzzy" for r in rows))
        return _json(out)
    return _run(run)


@router.get("/entries/{entry_id}", summary="one entry")
def get_entry(caller: CallerDep, entry_id: EntryId):

    def run(conn):
        sync.ensure_synced(conn)
        return _json(serialize(store.entry_for(conn, entry_id, caller), caller))
    return _run(run)


@router.get("/entries/{entry_id}/history", summary="who changed the entry, and when")
def entry_history(caller: CallerDep, entry_id: EntryId):
    def run(conn):
        e = store.entry_for(conn, entry_id, caller)
        if not owner_view(caller, e):
            raise store.NotFound(f"信息资源 {entry_id} 不存在 / no catalog entry {entry_id}")
        return _json({"id": entry_id, "code": e["code"], "history": store.history(conn,
                                                                                  entry_id)})
    return _run(run)


@router.post("/entries", status_code=201, summary="draft a new entry")
def create_entry(caller: CallerDep, body: EntryIn):

    def run(conn):
        eid = store.create(conn, _content(body), caller)
        return _json(serialize(store.get_entry(conn, eid), caller), 201)
    return _run(run)


@router.patch("/entries/{entry_id}", summary="edit a draft (the bureau: any entry)")
def edit_entry(caller: CallerDep, entry_id: EntryId, body: EntryIn):

    def run(conn):
        outcome = store.edit(conn, entry_id, _content(body), caller)
        out = serialize(store.get_entry(conn, entry_id), caller)
        out["outcome"] = outcome
        return _json(out)
    return _run(run)


def _transition(caller: Caller, entry_id: int, action: str, comment: str | None):
    return _run(lambda conn: _json(serialize(
        store.transition(conn, entry_id, action, caller, comment), caller)))


@router.post("/entries/{entry_id}/submit", summary="submit a draft for the bureau's review")
def submit_entry(caller: CallerDep, entry_id: EntryId, body: CommentIn | None = None):
    return _transition(caller, entry_id, "submit", body and body.comment)


@router.post("/entries/{entry_id}/review", summary="the bureau approves or returns")
def review_entry(caller: CallerDep, entry_id: EntryId, body: ReviewIn):
    return _transition(caller, entry_id, body.decision, body.reasons)


@router.post("/entries/{entry_id}/publish", summary="the bureau publishes an approved entry")
def publish_entry(caller: CallerDep, entry_id: EntryId, body: CommentIn | None = None):
    return _transition(caller, entry_id, "publish", body and body.comment)


@router.post("/entries/{entry_id}/retire", summary="retire an entry (owner or bureau)")
def retire_entry(caller: CallerDep, entry_id: EntryId, body: CommentIn | None = None):
    return _transition(caller, entry_id, "retire", body and body.comment)


@router.get("/vocabularies", summary="the controlled vocabularies")
def vocabularies():
    return {v.name_en.replace(" ", "_"): {"name": v.name, "values": v.labels}
            for v in (vocab.CLASSES, vocab.FORMATS, vocab.DATA_TYPES, vocab.SHARING_TYPES,
                      vocab.SHARING_METHODS, vocab.OPEN, vocab.UPDATE_CYCLES)} | {
        "base_items": vocab.BASE_ITEMS, "data_type_names": vocab.DATA_TYPE_NAMES,
        "statuses": vocab.STATUSES}


@router.get("/dcat", summary="DCAT JSON-LD of the published entries the caller may see")
def dcat_catalog(request: Request, caller: CallerDep):

    def run(conn):
        sync.ensure_synced(conn)
        rows, _ = store.list_entries(conn, caller, filters={"status": "published"},
                                     limit=1_000_000)
        base = get_settings().base_url  # configuration, never the request's Host
        return JSONResponse(jsonable_encoder(dcat.catalog_jsonld(rows, base)),
                            media_type="application/ld+json")
    return _run(run)


@router.post("/import", summary="the bureau imports a survey sheet (xlsx), all or nothing")
async def import_sheet(caller: CallerDep, sheet: UploadFile = File(...),
                       publish: bool = Query(False)):
    if not may_review(caller):  # importing submits (or publishes) for review
        return _error(store.Forbidden("只有统筹局可以导入调查表 / only the bureau imports "
                                      "survey sheets"))
    data = await sheet.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "sheet.xlsx"
        path.write_bytes(data)

        def run(conn):
            try:
                report = excel.import_survey(conn, path, caller, status="published"
                                             if publish else "submitted")
            except excel.SheetError as exc:
                return envelope(400, exc.report.text().splitlines()[0],
                                errors=jsonable_encoder([e.as_dict() for e in
                                                         exc.report.errors]),
                                warnings=jsonable_encoder([w.as_dict() for w in
                                                           exc.report.warnings]))
            return _json({"counts": report.counts(),
                          "entries": [{"code": c, "name": n, "outcome": o}
                                      for c, n, o in report.outcomes],
                          "warnings": [w.as_dict() for w in report.warnings]})
        return await run_in_threadpool(_run, run)  # the import is blocking database work
