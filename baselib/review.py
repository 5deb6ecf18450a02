"""The review queue (人工复核): quarantined records with match suggestions.

A record whose key is invalid is never merged on its own (``baselib.integrate``); here
it gets suggestions, best first:

1. **exact key** — a golden record whose key differs only in the check character (a
   keying error in the last character; score 1.0 when the name agrees too);
2. **probabilistic** — golden records sharing the normalised name or the birth date
   (persons; the name or the address for legal persons), scored

       0.5 · name similarity + 0.3 · same birth date + 0.2 · address similarity

   (legal persons: 0.6 · name + 0.4 · address), similarities by ``difflib``'s ratio on
   NFKC-normalised text without spaces.

Why not Splink: it needs DuckDB or Spark and trains m/u probabilities on the whole
population, heavy for a queue of a few hundred records a day, and its score is hard to
explain to the person deciding; this score is three lines a reviewer can check by eye.
A suggestion at or above :data:`AUTO_APPLY` with a margin of :data:`MARGIN` over the
next is applied by the platform (``system:baselib-review``); the rest wait for a person
of the bureau (``decide``). An applied decision maps that raw key to the chosen key at
every later integration; a rejected record stays quarantined and is not re-queued.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from difflib import SequenceMatcher
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from baselib.errors import BaselibError, NotAllowed
from baselib.libraries import OWNER, library
from layers import audit, identifiers, policy
from layers.policy import Caller

AUTO_APPLY = 0.95
MARGIN = 0.1
CANDIDATES = 50


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _norm(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split()).lower()


def similarity(a: str | None, b: str | None) -> float:
    a, b = _norm(a), _norm(b)
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b).ratio()


def score(lib_name: str, record: dict[str, Any], candidate: dict[str, Any]) -> float:
    """The probabilistic score of one candidate (see the module docstring)."""
    name = similarity(record.get("name"), candidate.get("name"))
    address = similarity(record.get("address"), candidate.get("address"))
    if lib_name == "persons":
        born = 1.0 if record.get("birth_date") and \
            record.get("birth_date") == candidate.get("birth_date") else 0.0
        return round(0.5 * name + 0.3 * born + 0.2 * address, 3)
    return round(0.6 * name + 0.4 * address, 3)


def _table(conn, lib_name: str) -> str | None:
    row = _q(conn, "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = "
                   "l.id AND v.version = l.current_version WHERE l.name = %s",
             (lib_name,)).fetchone()
    return row and row["table_name"]


def suggestions(conn, lib_name: str, raw_key: str | None, record: dict[str, Any]
                ) -> list[dict[str, Any]]:
    """Candidates for one quarantined record, best first (at most 5)."""
    lib = library(lib_name)
    table = _table(conn, lib.name)
    if table is None:
        return []
    t = sql.Identifier(*table.split("."))
    k = sql.Identifier(lib.key)
    out: dict[str, dict[str, Any]] = {}
    key = identifiers.half_width(raw_key or "")
    if len(key) == 18:
        for c in _q(conn, sql.SQL("SELECT * FROM {t} WHERE {k} LIKE %s AND {k} <> %s LIMIT 3"
                                  ).format(t=t, k=k), (key[:17] + "_", key)):
            agree = similarity(record.get("name"), c.get("name"))
            out[c[lib.key]] = {"key": c[lib.key], "method": "exact_key",
                               "score": round(0.9 + 0.1 * agree, 3)}
    born = record.get("birth_date") if lib.name == "persons" else None
    second = "birth_date" if born else "address"
    cands = _q(conn, sql.SQL("SELECT * FROM {t} WHERE name = %s OR {s} = %s LIMIT %s").format(
        t=t, s=sql.Identifier(second)),
        (record.get("name"), born or record.get("address"), CANDIDATES)).fetchall()
    for c in cands:
        s = score(lib.name, record, c)
        if c[lib.key] not in out or out[c[lib.key]]["score"] < s:
            out[c[lib.key]] = {"key": c[lib.key], "method": "probabilistic", "score": s}
    return sorted(out.values(), key=lambda s: (-s["score"], s["key"]))[:5]


def suggest_all(conn, lib_name: str, *, auto_apply: bool = True) -> dict[str, int]:
    """Suggestions for every pending record; confident ones applied (module docstring)."""
    lib = library(lib_name)
    pending = _q(conn, "SELECT id, raw_key, record FROM baselib_quarantine WHERE library = %s "
                       "AND status = 'pending' ORDER BY id", (lib.name,)).fetchall()
    applied = 0
    for p in pending:
        sug = suggestions(conn, lib.name, p["raw_key"], p["record"])
        confident = bool(sug) and sug[0]["score"] >= AUTO_APPLY and (
            len(sug) == 1 or sug[0]["score"] - sug[1]["score"] >= MARGIN)
        if auto_apply and confident:
            _q(conn, "UPDATE baselib_quarantine SET suggestions = %s, status = 'applied', "
                     "resolved_key = %s, decided_by = 'system:baselib-review', decided_at = "
                     "now() WHERE id = %s", (Jsonb(sug), sug[0]["key"], p["id"]))
            applied += 1
        else:
            _q(conn, "UPDATE baselib_quarantine SET suggestions = %s WHERE id = %s",
               (Jsonb(sug), p["id"]))
    return {"pending": len(pending) - applied, "applied": applied}


def queue(conn, caller: Caller, lib_name: str, status: str = "pending",
          limit: int = 100) -> list[dict[str, Any]]:
    """The review queue in clear — the bureau's (owner of the libraries) alone: it holds
    the raw records."""
    if not policy.may_edit(caller, OWNER):
        raise NotAllowed("复核队列仅供基础库管理部门", "the review queue is the bureau's")
    return _q(conn, "SELECT id, resource, resource_version, fid, raw_key, reason, record, "
                    "suggestions, status, resolved_key, decided_by, decided_at FROM "
                    "baselib_quarantine WHERE library = %s AND status = %s ORDER BY id "
                    "LIMIT %s", (library(lib_name).name, status, limit)).fetchall()


def decide(conn, caller: Caller, item_id: int, *, key: str | None = None,
           reject: bool = False) -> dict[str, Any]:
    """A person's decision: apply ``key`` (a valid key of the library) or reject."""
    if not policy.may_edit(caller, OWNER):
        raise NotAllowed("只有基础库管理部门可以复核", "only the bureau decides reviews")
    row = _q(conn, "SELECT library, status FROM baselib_quarantine WHERE id = %s",
             (item_id,)).fetchone()
    if row is None:
        raise BaselibError(f"复核记录 {item_id} 不存在", f"no review item {item_id}",
                           "see jmgeo baselib review list", status=404)
    lib = library(row["library"])
    if not reject:
        v = identifiers.check(lib.key_kind, key)
        if not v.ok:
            raise BaselibError("所选键无效", f"the chosen key is invalid: {v.reason}",
                               "choose a suggested key")
        key = v.value
    _q(conn, "UPDATE baselib_quarantine SET status = %s, resolved_key = %s, decided_by = %s, "
             "decided_at = %s WHERE id = %s",
       ("rejected" if reject else "applied", None if reject else key, caller.name,
        datetime.now(UTC), item_id))
    audit.record(conn, action="baselib.review", caller=caller, layer=lib.name,
                 request={"item": item_id, "decision": "reject" if reject else "apply"})
    return {"id": item_id, "status": "rejected" if reject else "applied"}
