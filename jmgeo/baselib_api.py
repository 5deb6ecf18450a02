"""The base libraries over HTTP (``/baselib``) — the HTTP side of ``baselib``.

The libraries' *records* go out only the ways every resource goes out (OGC items,
downloads, feeds, ``/exchange/query/{persons|legal_persons}/{key}``): they are table
resources under the policy. This router adds what a resource has not:

* ``POST /baselib/{library}/verify`` — 核验: ``{"pairs": [{"key", "name"}, …]}`` →
  ``match`` / ``no_match`` / ``unknown`` per row, nothing else;
* ``GET /baselib/{library}/records/{key}/access`` — the person-level access log;
* ``GET /baselib/tickets`` (``?library=&status=``), ``GET /baselib/tickets/report``,
  ``POST /baselib/tickets/{id}/answer`` — verification tickets (校核工单);
* ``GET /baselib/{library}/review``, ``POST /baselib/{library}/review/{id}`` — the
  review queue of quarantined records;
* ``GET /baselib/{library}/regions`` — records per town or county (both libraries);
* ``GET /baselib`` — the libraries, their authorities and sources; ``GET /baselib/themes``.

Never anonymous (401). A library the caller may not have answers 404, as an absent one.
Who may do what is ``layers.policy``'s, applied by ``baselib``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from baselib import libraries, review, spatial_link, tickets, verify
from baselib.errors import BaselibError
from jmgeo.db import connection
from jmgeo.http import NOT_FOUND, ReaderDep, WriterDep
from layers import audit, policy

router = APIRouter(prefix="/baselib", tags=["baselib"])

LibraryName = Annotated[Literal["persons", "legal_persons"],
                        Path(description="基础库 / base library")]
NO_STORE = {"Cache-Control": "private, no-store"}


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=NO_STORE)


def _audited(conn, caller, action: str, request: Request, rows: int,
             library: str | None = None) -> None:
    """Tickets and the review queue carry values of the libraries: audited like data
    (no audit row, no answer — the write raises and the request fails)."""
    audit.record(conn, action=action, caller=caller, layer=library,
                 request={"method": request.method, "path": request.url.path,
                          "query": request.url.query}, rows=rows)


def _visible(conn, caller, name: str) -> dict[str, Any]:
    row, access = policy.lookup(conn, caller, name)
    if row is None or access is None:
        raise HTTPException(404, NOT_FOUND)
    return row


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=64, description="身份证号 / 统一社会信用代码")
    name: str = Field(max_length=200, description="姓名 / 名称")


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pairs: list[Pair] = Field(min_length=1, max_length=verify.MAX_PAIRS)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["confirmed", "corrected"]
    version: int | None = Field(None, ge=1, description="更正后的版本 / corrected in version")
    note: str | None = Field(None, max_length=2000)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str | None = Field(None, max_length=64, description="the key to apply")
    reject: bool = False


@router.get("", summary="基础库 / the base libraries, authorities and sources")
def list_libraries(caller: ReaderDep) -> JSONResponse:
    out = []
    with connection() as conn:
        for lib in libraries.LIBRARIES.values():
            row, access = policy.lookup(conn, caller, lib.name)
            out.append({"name": lib.name, "title": lib.title, "key": lib.key,
                        "attributes": lib.attributes, "published": access is not None,
                        "authorities": libraries.authorities(conn, lib.name),
                        "sources": [s["resource"] for s in libraries.sources(conn, lib.name)]})
    return _json({"libraries": out})


@router.post("/{library}/verify", summary="核验 / match, no match or unknown per pair")
def verify_pairs(request: Request, library: LibraryName, body: VerifyIn,
                 caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        results = verify.verify(conn, caller, library, [p.model_dump() for p in body.pairs],
                                path=request.url.path)
    if results is None:
        raise HTTPException(404, NOT_FOUND)
    return _json({"library": library, "results": results})


LIST_MAX_BYTES = 20 * 1024 * 1024  # 100,000 rows of key,name are about 5 MB


@router.post("/{library}/verify/batch", summary="批量核验 / verify an uploaded list",
             responses={200: {"content": {"text/csv": {}},
                              "description": "row,key,result per line of the list"},
                        413: {"description": "more than 100,000 rows, or over 20 MB"},
                        422: {"description": "not a list of key,name"}})
def verify_batch(request: Request, library: LibraryName, caller: WriterDep,
                 file: UploadFile = File(..., description="CSV with a header row key,name "
                                         "(or 身份证号/统一社会信用代码 and 姓名/名称), "
                                         "UTF-8 or GBK")) -> Response:
    """批量核验: a list of (key, name) answered line by line — match, no_match or unknown,
    nothing else — as CSV (``row`` is the line's number in the list, header excluded)."""
    import csv
    import io

    name = (file.filename or "list.csv").rsplit("/", 1)[-1]
    data = file.file.read(LIST_MAX_BYTES + 1)
    if len(data) > LIST_MAX_BYTES:
        raise HTTPException(413, f"{name}：文件超过 20 MB / the list exceeds 20 MB: split it")
    try:
        pairs = verify.read_pairs(data, name)
    except BaselibError as exc:
        raise HTTPException(exc.status if exc.status != 400 else 422, str(exc)) from exc
    with connection() as conn:
        results = verify.verify(conn, caller, library, pairs, path=request.url.path,
                                limit=verify.MAX_LIST)
    if results is None:
        raise HTTPException(404, NOT_FOUND)
    out = io.StringIO()
    out.write("\ufeff")  # a BOM: Excel opens the answer as UTF-8
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["row", "key", "result"])
    for r in results:
        w.writerow([r["row"], pairs[r["row"] - 1]["key"], r["result"]])
    return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Content-Disposition":
                             f'attachment; filename="verify-{library}.csv"'})


@router.get("/{library}/records/{key}/access", summary="个人访问记录 / who looked at it")
def record_access(request: Request, library: LibraryName, key: str,
                  caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        rows = verify.access_log(conn, caller, library, key)
        _audited(conn, caller, "baselib.access_log", request, len(rows), library)
    return _json({"library": library, "access": rows})


@router.get("/tickets", summary="校核工单 / verification tickets")
def list_tickets(request: Request, caller: ReaderDep,
                 library: LibraryName | None = Query(None),
                 status: Literal["open", "confirmed", "corrected", "closed"] | None = None,
                 limit: int = Query(100, ge=1, le=1000)) -> JSONResponse:
    with connection() as conn:
        rows = tickets.list_tickets(conn, caller, library=library, status=status, limit=limit)
        _audited(conn, caller, "baselib.tickets", request, len(rows), library)
    return _json({"tickets": rows})


@router.get("/tickets/report", summary="校核工单通报 / open, overdue, answer times")
def ticket_report(caller: ReaderDep) -> JSONResponse:
    with connection() as conn:
        return _json(tickets.report(conn, caller))


@router.post("/tickets/{ticket_id}/answer", summary="答复校核工单 / answer a ticket")
def answer_ticket(ticket_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: AnswerIn,
                  caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        return _json(tickets.answer(conn, caller, ticket_id, body.verdict,
                                    version=body.version, note=body.note))


@router.get("/{library}/review", summary="复核队列 / quarantined records")
def review_queue(request: Request, library: LibraryName, caller: ReaderDep,
                 status: Literal["pending", "applied", "rejected"] = "pending") -> JSONResponse:
    with connection() as conn:
        items = review.queue(conn, caller, library, status)
        _audited(conn, caller, "baselib.review", request, len(items), library)
    return _json({"items": items})


@router.post("/{library}/review/{item_id}", summary="复核决定 / apply a key or reject")
def review_decide(library: LibraryName, item_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                  body: DecisionIn, caller: WriterDep) -> JSONResponse:
    with connection() as conn:
        return _json(review.decide(conn, caller, item_id, key=body.key, reject=body.reject))


@router.get("/{library}/regions", summary="按镇街/区县统计 / records per town or county")
def per_region(library: LibraryName, caller: ReaderDep,
               level: Literal["town", "county"] = "town") -> JSONResponse:
    with connection() as conn:
        row = _visible(conn, caller, library)
        if "town_code" not in libraries.LIBRARIES[library].derived:
            raise HTTPException(400, "该库无空间关联 / this library has no spatial link")
        return _json({"library": library, "level": level,
                      "regions": spatial_link.per_region(conn, row["table_name"], level)})


@router.get("/themes", summary="专题库 / thematic libraries and their indicators")
def themes_list(caller: ReaderDep) -> JSONResponse:
    from baselib import themes

    with connection() as conn:
        return _json({"themes": themes.indicators(conn, caller)})
