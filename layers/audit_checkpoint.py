"""Checkpoints of the audit chain's head (审计检查点), kept outside the database.

A keyed chain (:mod:`layers.audit`) cannot be forged, but it can be *shortened*: delete
the last rows, or all of them, and what remains still verifies. So the head — the last
row's id and hash and the number of rows — is written, every
``JMGEO_AUDIT_CHECKPOINT_MINUTES`` by the worker (``audit.checkpoint``) and at
``jmgeo audit checkpoint``, to an append-only file outside the database
(``JMGEO_AUDIT_CHECKPOINT_FILE``, default ``var/audit/checkpoints.jsonl``, mode 0600).

Each line is one JSON object: ``seq`` (1, 2, …), ``at``, ``row_id``, ``hash``,
``count``, ``prev`` (the previous line's ``sig``), ``key_id`` and ``sig`` — the HMAC of
the rest under that key. Editing a line breaks its ``sig``; removing or reordering lines
breaks ``seq``/``prev``; neither the database administrator nor anyone without the key
file can write a line that verifies. :func:`report` checks the chain against every
checkpoint, so an edit, a deletion anywhere, a truncation of the tail or of the table,
and a forged append are all found, and says which checkpoint it verified against.
Rows written after the last checkpoint are covered by the keyed chain only (a removal
of those is visible at the next checkpoint at the latest, as a count that went down).
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from jmgeo.settings import get_settings
from layers import audit, audit_keys

SIGNED = ("seq", "at", "row_id", "hash", "count", "prev", "key_id")


def _path(path: Path | None) -> Path:
    return Path(path) if path is not None else get_settings().audit_checkpoint_path


def _signed_text(entry: dict[str, Any]) -> str:
    return json.dumps({k: entry.get(k) for k in SIGNED}, sort_keys=True,
                      separators=(",", ":"))


def _fault(line: int, zh: str, en: str) -> dict[str, Any]:
    return {"line": line, "message": f"检查点文件第 {line} 行{zh} / checkpoint file line "
                                     f"{line}: {en}"}


def read(path: Path | None = None, ring: audit_keys.Keyring | None = None
         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The checkpoints whose signatures and sequence verify, and the first fault of the
    file (None when every line verifies). Lines after a fault are not trusted."""
    path = _path(path)
    if not path.exists():
        return [], None
    ring = ring or audit_keys.load(create=False)
    good: list[dict[str, Any]] = []
    prev_sig = ""
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entry = json.loads(text)
            kid, sig = entry["key_id"], entry["sig"]
        except (ValueError, KeyError, TypeError):
            return good, _fault(n, "无法解析（被改动）", "cannot be parsed (altered)")
        if kid not in ring.keys:
            return good, _fault(n, f"的密钥 {kid} 未知（伪造）",
                                f"names key {kid}, which the key file does not hold (forged)")
        if ring.mac(kid, _signed_text(entry)) != sig:
            return good, _fault(n, "签名不符（被改动）", "its signature does not match (altered)")
        if entry["seq"] != len(good) + 1 or entry["prev"] != prev_sig:
            return good, _fault(n, "之前的检查点被删除或调换",
                                "a checkpoint before it was removed or reordered")
        good.append(entry)
        prev_sig = sig
    return good, None


def _head(conn) -> dict[str, Any]:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT (SELECT count(*) FROM audit_log) AS count, "
        "(SELECT id FROM audit_log ORDER BY id DESC LIMIT 1) AS row_id, "
        "(SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) AS hash").fetchone()
    return {"row_id": row["row_id"], "hash": row["hash"], "count": int(row["count"])}


def write(conn, path: Path | None = None) -> dict[str, Any] | None:
    """Append a checkpoint of the current head, signed with the current key; None when
    the head is the one the last checkpoint already holds. Writers on one machine are
    serialised with a lock on the file."""
    path = _path(path)
    ring = audit_keys.load()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        good, fault = read(path, ring)
        head = _head(conn)  # one statement: the id, hash and count agree
        last = good[-1] if good else None
        if fault is None and last and all(last[k] == head[k] for k in ("row_id", "hash",
                                                                         "count")):
            return None
        # a damaged file is not repaired (that would hide the damage): the new line
        # continues from the last good one and `verify` still reports the fault
        entry = {"seq": len(good) + 1, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                 **head, "prev": last["sig"] if last else "", "key_id": ring.current}
        entry["sig"] = ring.mac(ring.current, _signed_text(entry))
        fh.seek(0, os.SEEK_END)
        fh.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def role_warning(conn) -> str | None:
    """A warning when the database role connected may modify audit rows (it is a
    superuser, owns the table, or holds UPDATE/DELETE/TRUNCATE on it)."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT current_user AS who, r.rolsuper AS super, "
        "pg_has_role(current_user, c.relowner, 'USAGE') AS owner, "
        "has_table_privilege('audit_log', 'UPDATE') OR has_table_privilege('audit_log', "
        "'DELETE') OR has_table_privilege('audit_log', 'TRUNCATE') AS modify "
        "FROM pg_roles r, pg_class c WHERE r.rolname = current_user "
        "AND c.oid = 'audit_log'::regclass").fetchone()
    if not (row["super"] or row["owner"] or row["modify"]):
        return None
    why = ("superuser" if row["super"] else "owner of audit_log" if row["owner"]
           else "holds UPDATE/DELETE/TRUNCATE on audit_log")
    return (f"警告：平台以数据库角色 {row['who']} 连接，它可以改动审计记录（{why}）；请为平台"
            f"使用只可追加审计的角色（见 README） / warning: the platform connects as database "
            f"role {row['who']}, which can modify audit rows ({why}): give the platform a "
            "role that may only append to the audit log (see the README, DATABASE_URL and "
            "JMGEO_OWNER_DATABASE_URL)")


def report(conn) -> dict[str, Any]:
    """The whole verification: the chain against every checkpoint, the checkpoint file,
    and the database role. ``intact`` only when the chain and the file both verify;
    ``checkpoint`` is the newest checkpoint verified against (None: none yet)."""
    warnings: list[str] = []
    if not audit_keys.exists():
        ring = None
        warnings.append("警告：没有审计密钥文件 / warning: no audit key file "
                        f"({get_settings().audit_key_path})")
        checkpoints, file_fault = [], None
    else:
        ring = audit_keys.load(create=False)
        checkpoints, file_fault = read(ring=ring)
    broken = audit.verify(conn, checkpoints=checkpoints, ring=ring)
    if broken is None and file_fault is not None:
        broken = {"id": None, "reason": "checkpoint_file", "checked": None,
                  "message": file_fault["message"], "line": file_fault["line"]}
    if not checkpoints and file_fault is None:
        warnings.append("警告：还没有检查点，无法发现末尾被截断 / warning: no checkpoint yet, "
                        "a truncation of the log cannot be detected: run `jmgeo audit "
                        "checkpoint` (the worker writes one every "
                        f"{get_settings().audit_checkpoint_minutes} minutes)")
    if (warning := role_warning(conn)) is not None:
        warnings.append(warning)
    latest = checkpoints[-1] if checkpoints else None
    return {"intact": broken is None, "broken": broken, "head": audit.head(conn),
            "checkpoint": ({k: latest[k] for k in ("seq", "at", "row_id", "count")}
                           if latest else None),
            "checkpoints": len(checkpoints), "warnings": warnings}
