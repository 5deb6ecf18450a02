"""前置机 inbound: department drop folders → the loader → a receipt (回执) beside the file.

Each department hands in new versions of its registered resources by dropping a file into
``<root>/<dept code>/<resource>/`` (``root``: the ``fep_inbox`` setting, JMGEO_FEP_INBOX,
default ``var/fep/inbox``). :func:`harvest` — the periodic job ``exchange.harvest_inbox``
(:mod:`exchange.fep_tasks`) and ``jmgeo fep harvest`` — takes every *settled* drop (no part
changed for ``fep_settle_seconds``), loads it through THE loader (:func:`loaders.pipeline.load`,
options rebuilt from the registry row and the last version's options, so a drop is loaded
exactly as the resource was), and answers it:

* ``<file>.receipt.json`` beside the file: accepted (version, counts, quality report) or
  refused (the loader's bilingual message naming the problem and the fix), and the file
  (with its sidecars) moved into ``accepted/`` or ``refused/`` under a timestamped name;
* one ``fep_receipt`` row (what ``jmgeo fep receipts`` and ``GET /exchange/fep/receipts``
  list).

A drop is one file, or a Shapefile's parts (same stem: .shp .shx .dbf .prj .cpg …) taken
together, or a ``.gdb`` folder; a zip is one file (the loader unpacks it). Names starting
with ``.`` or ending in ``.tmp``/``.part`` are uploads in progress and wait.

Nothing is published twice and no file is lost when a harvest is killed at any moment:

1. killed before the load commits: nothing happened; the next run loads the file again;
2. killed after the load committed, before the receipt: the version carries the drop's
   identity in ``loaded_by`` (``fep:<dept>/<resource>/<file>@<hash>``) and has no receipt;
   the next run finds it and only writes the receipt (and the loader's ``skip_unchanged``
   content hash refuses a second identical version anyway);
3. killed after the receipt row, mid-move: the row has no ``finished_at``; the next run
   completes the move of what is left.

Runs are serialised by a session advisory lock: a second harvest meanwhile does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from jmgeo.errors import UserError
from jmgeo.settings import database_url, get_settings
from layers import registry
from layers.policy import Caller, receipt_filter
from loaders.errors import LoaderError

log = logging.getLogger(__name__)

RECEIPT_SUFFIX = ".receipt.json"
ARCHIVES = ("accepted", "refused")
WAITING_SUFFIXES = (".tmp", ".part", ".crdownload", ".filepart", ".partial")
SHP_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix", ".qpj"}
# the primary part of a Shapefile drop, in order of preference (the loader names what is
# missing when the .shp itself is not there)
SHP_PRIMARY = (".shp", ".dbf", ".shx")
LOCK_KEY = 0x6A6D_6665_7069_6E00  # "jmfepin\0": one harvest at a time (session advisory lock)
STATUSES = ("accepted", "refused")


@dataclass
class Drop:
    """One hand-over in a resource folder: the file the loader opens and its parts."""

    dept: str                      # the department folder's name
    resource: str                  # the resource folder's name ('' = file put in the dept folder)
    folder: Path                   # where it lies (archives are made under it)
    primary: Path
    parts: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def display(self) -> str:
        return "/".join(p for p in (self.dept, self.resource, self.name) if p)

    def newest_mtime(self) -> float:
        times = []
        for p in self.parts:
            if p.is_dir():
                times += [f.stat().st_mtime for f in p.rglob("*") if f.is_file()]
            times.append(p.stat().st_mtime)
        return max(times)


# -- finding drops ------------------------------------------------------------------
def _waiting(p: Path) -> bool:
    n = p.name.lower()
    return n.startswith(".") or n.startswith("~$") or n.endswith(WAITING_SUFFIXES) \
        or n.endswith(RECEIPT_SUFFIX)


def _shp_stem(p: Path) -> str | None:
    """The Shapefile stem a file belongs to (``a.shp.xml`` metadata too), or None."""
    n = p.name.lower()
    if n.endswith(".shp.xml"):
        return n[:-8]
    return p.stem.lower() if p.suffix.lower() in SHP_PARTS else None


def drops_in(folder: Path, dept: str, resource: str) -> list[Drop]:
    """The drops lying in one folder (archives, receipts and uploads in progress aside)."""
    shp: dict[str, list[Path]] = {}
    out: list[Drop] = []
    for p in sorted(folder.iterdir()):
        if _waiting(p) or p.name in ARCHIVES:
            continue
        if p.is_dir():
            if p.suffix.lower() == ".gdb":
                out.append(Drop(dept, resource, folder, p, [p]))
            continue  # other folders are not drops (a resource folder has no subfolders)
        stem = _shp_stem(p)
        if stem is not None:
            shp.setdefault(stem, []).append(p)
        else:
            out.append(Drop(dept, resource, folder, p, [p]))
    for parts in shp.values():
        by_ext = {p.suffix.lower(): p for p in parts}
        primary = next((by_ext[e] for e in SHP_PRIMARY if e in by_ext), parts[0])
        out.append(Drop(dept, resource, folder, primary, parts))
    return sorted(out, key=lambda d: d.name)


def scan(root: Path, settle: float, now: float | None = None) -> list[Drop]:
    """Every settled drop under ``root``: ``<dept>/<resource>/<file>`` (and files put
    directly in a department folder, to be refused with the right advice)."""
    now = time.time() if now is None else now
    found: list[Drop] = []
    if not root.is_dir():
        return found
    for dept_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _waiting(p)):
        found += drops_in(dept_dir, dept_dir.name, "")
        for res_dir in sorted(p for p in dept_dir.iterdir() if p.is_dir()):
            if res_dir.name in ARCHIVES or _waiting(res_dir) or res_dir.suffix.lower() == ".gdb":
                continue
            found += drops_in(res_dir, dept_dir.name, res_dir.name)
    settled = []
    for d in found:
        try:
            if d.newest_mtime() <= now - settle:
                settled.append(d)
        except FileNotFoundError:  # a part vanished while we looked: next run
            continue
    return settled


def file_hash(parts: list[Path]) -> str:
    """sha256 over the drop's parts (name suffixes and bytes), the receipt's identity."""
    h = hashlib.sha256()
    files = []
    for p in parts:
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in sorted(files, key=lambda f: f.name.lower()):
        h.update(f.name.lower().encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


# -- the checks before a load -------------------------------------------------------
def _one(conn: psycopg.Connection, query: str, params: tuple) -> tuple | None:
    """One row as a tuple, whatever the connection's row factory."""
    return conn.cursor(row_factory=tuple_row).execute(query, params).fetchone()


def _refusal(code: str, zh: str, en: str, drop: Drop, fix_zh: str, fix_en: str) -> LoaderError:
    return LoaderError(code, zh, en, file=drop.display, fix_zh=fix_zh, fix_en=fix_en)


def check_folder(conn: psycopg.Connection, drop: Drop) -> tuple[dict | None, LoaderError | None]:
    """The resource's registry row, or why this folder cannot take the drop."""
    dept = _one(conn, "SELECT 1 FROM department WHERE code = %s", (drop.dept,))
    if dept is None:
        return None, _refusal(
            "fep_no_department", f"目录 {drop.dept} 不是已登记的部门代码",
            f"the folder {drop.dept!r} is not a registered department code", drop,
            "把文件放到本部门代码命名的目录（如 hb/资源名/）", "drop files under your department's "
            "code (e.g. hb/<resource>/)")
    if not drop.resource:
        return None, _refusal(
            "fep_no_resource_folder", "文件直接放在部门目录中，无法确定是哪个资源",
            "the file lies in the department folder itself: which resource it updates is "
            "unknown", drop, f"放到 {drop.dept}/<资源名>/ 目录中", f"put it into "
            f"{drop.dept}/<resource name>/")
    layer = registry.get_layer(conn, drop.resource)
    if layer is None:
        return None, _refusal(
            "fep_unknown_resource", f"资源 {drop.resource} 不存在；前置机只接收已登记资源的新版本",
            f"there is no resource {drop.resource!r}; the drop folder takes new versions of "
            "registered resources only", drop, "核对目录名（= 资源名，见 jmgeo layer list）；"
            "新资源的首个版本用 jmgeo load 或上传接口发布", "check the folder name (= the "
            "resource name, see `jmgeo layer list`); publish a new resource's first version "
            "with `jmgeo load` or the upload API")
    if layer["owner_code"] != drop.dept:
        return None, _refusal(
            "fep_not_owner", f"资源 {drop.resource} 属于部门 {layer['owner_code']}，"
            f"不能由部门 {drop.dept} 的前置机目录提交",
            f"resource {drop.resource!r} belongs to department {layer['owner_code']!r}, not "
            f"{drop.dept!r}: only its owner hands in its versions", drop,
            f"由 {layer['owner_code']} 提交，或核对资源名", f"have {layer['owner_code']} hand it "
            "in, or check the resource name")
    return layer, None


def load_options(conn: psycopg.Connection, layer: dict[str, Any], loaded_by: str):
    """The resource's load options for a new version: its last version's options (kind,
    key, sheet, encoding, CRS …) under its registry row as it is now (theme, sharing,
    title, sensitive fields), with ``skip_unchanged`` on."""
    from loaders.pipeline import LoadOptions

    row = _one(conn, "SELECT report->'options' FROM layer_version WHERE layer_id = %s AND "
               "version = %s", (layer["id"], layer["current_version"]))
    last = (row[0] if row else None) or {}
    known = {f.name for f in fields(LoadOptions)} - {"dry_run", "loaded_by", "skip_unchanged"}
    opts = {k: v for k, v in last.items() if k in known}
    opts.update(dept=layer["owner_code"], layer=layer["name"], theme=layer["theme"],
                sharing=layer["sharing_class"], legal_basis=layer["legal_basis"],
                title=layer["title"], description=layer["description"],
                update_cycle=layer["update_cycle"],
                sensitive=dict(layer["sensitive_fields"] or {}))
    if layer["kind"] == "table":
        opts["kind"] = "table"
    if not opts.get("key") and layer["key_field"]:
        opts["key"] = layer["key_field"]
    return LoadOptions(**opts, loaded_by=loaded_by, skip_unchanged=True)


def _published_by(conn: psycopg.Connection, layer: dict, token: str) -> int | None:
    """A version this very drop published in a harvest killed before its receipt."""
    row = _one(conn,
        "SELECT v.version FROM layer_version v WHERE v.layer_id = %s AND v.loaded_by = %s "
        "AND NOT EXISTS (SELECT 1 FROM fep_receipt r WHERE r.resource = %s AND "
        "r.version = v.version AND r.status = 'accepted') ORDER BY v.version DESC LIMIT 1",
        (layer["id"], token, layer["name"]))
    return row[0] if row else None


def _version_report(conn: psycopg.Connection, layer: dict, version: int) -> dict[str, Any]:
    row = _one(conn, "SELECT report FROM layer_version WHERE layer_id = %s AND version = %s",
               (layer["id"], version))
    return dict(row[0] or {}) if row else {}


# -- one drop -----------------------------------------------------------------------
def _accepted(resource: str, report: dict[str, Any], unchanged: bool) -> dict[str, Any]:
    t = report.get("target") or {}
    version = t.get("version") or report.get("version")
    counts, quality = report.get("counts") or {}, report.get("quality") or {}
    if unchanged:
        msg = (f"已接收：内容与 {resource} 第 {version} 版相同，未生成新版本 / accepted: the "
               f"content equals {resource} version {version}; no new version")
    else:
        msg = (f"已接收：{resource} 第 {version} 版，装载 {counts.get('loaded', 0)} 条，质量 "
               f"{quality.get('score', '-')} 分 / accepted: {resource} version {version}, "
               f"{counts.get('loaded', 0)} records loaded, quality {quality.get('score', '-')}"
               "/100")
    return {"status": "accepted", "version": version, "unchanged": unchanged,
            "counts": counts, "quality": quality, "warnings": report.get("warnings", []),
            "message": msg, "refusal": None, "report": report}


def _refused(err: LoaderError) -> dict[str, Any]:
    return {"status": "refused", "version": None, "unchanged": False, "counts": None,
            "quality": None, "warnings": [], "message": err.message,
            "refusal": err.as_dict(), "report": None}


def answer(conn: psycopg.Connection, drop: Drop, digest: str, dsn: str) -> dict[str, Any]:
    """Check and load one drop; the receipt's body (not yet recorded)."""
    from loaders.pipeline import load

    layer, refusal = check_folder(conn, drop)
    if refusal is not None:
        return _refused(refusal)
    token = f"fep:{drop.display}@{digest[:16]}"
    done = _published_by(conn, layer, token)
    if done is not None:  # case 2: published by a harvest killed before its receipt
        return _accepted(drop.resource, _version_report(conn, layer, done), False)
    try:
        opts = load_options(conn, layer, token)
        report = load(drop.primary, opts, dsn=dsn, display=drop.display, progress=False)
    except LoaderError as exc:
        return _refused(exc)
    except UserError as exc:  # an option of the registry row the loader refuses
        return _refused(LoaderError("refused", str(exc), str(exc), file=drop.display))
    if report.get("unchanged"):
        return _accepted(drop.resource, _version_report(conn, layer, report["version"]), True)
    return _accepted(drop.resource, report, False)


def _unfinished(conn: psycopg.Connection, drop: Drop) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT id, status, archived_as, report FROM fep_receipt WHERE dept_code = %s AND "
        "resource = %s AND file_name = %s AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
        (drop.dept, drop.resource, drop.name)).fetchone()


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # never read as a drop
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2, default=str),
                   encoding="utf-8")
    os.replace(tmp, path)


def _archive(drop: Drop, body: dict[str, Any]) -> None:
    """Receipt beside the file and beside its archived copy; then the parts moved,
    the primary last (so an interrupted move leaves the drop recognisable)."""
    archived = drop.folder / body["archived_as"]
    archived.parent.mkdir(exist_ok=True)
    prefix = archived.name[: -len(drop.name)]
    _write_json(drop.folder / f"{drop.name}{RECEIPT_SUFFIX}", body)
    _write_json(archived.with_name(archived.name + RECEIPT_SUFFIX), body)
    for p in sorted(drop.parts, key=lambda p: p == drop.primary):
        if p.exists():
            shutil.move(str(p), str(archived.parent / f"{prefix}{p.name}"))


def process(conn: psycopg.Connection, drop: Drop, dsn: str) -> dict[str, Any]:
    """Answer one drop, record its receipt, move it aside; returns the receipt."""
    digest = file_hash(drop.parts)
    row = _unfinished(conn, drop)
    if row is not None and (drop.folder / row["archived_as"]).exists():
        # its move had completed (killed before finished_at): this is a new drop
        conn.execute("UPDATE fep_receipt SET finished_at = now() WHERE id = %s", (row["id"],))
        row = None
    if row is not None and row["report"].get("primary_hash") == file_hash([drop.primary]):
        body = {**row["report"], "receipt": row["id"]}  # case 3: recorded, move interrupted
    else:
        if row is not None:  # replaced since: that receipt's file is gone, close it
            conn.execute("UPDATE fep_receipt SET finished_at = now() WHERE id = %s",
                         (row["id"],))
        body = answer(conn, drop, digest, dsn)
        status = body["status"]
        body.update(dept=drop.dept, resource=drop.resource, file=drop.name,
                    files=sorted(p.name for p in drop.parts), content_hash=digest,
                    primary_hash=file_hash([drop.primary]),
                    archived_as=f"{status}/{_stamp()}_{drop.name}",
                    at=datetime.now(UTC).isoformat(timespec="seconds"))
        with conn.transaction():
            rid = _one(conn,
                "INSERT INTO fep_receipt (dept_id, dept_code, resource, file_name, "
                "content_hash, status, version, message, report, archived_as) VALUES ((SELECT "
                "id FROM department WHERE code = %s), %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id", (drop.dept, drop.dept, drop.resource, drop.name, digest, status,
                                 body["version"], body["message"], Jsonb(body),
                                 body["archived_as"]))[0]
            body["receipt"] = rid
            conn.execute("UPDATE fep_receipt SET report = %s WHERE id = %s", (Jsonb(body), rid))
    _archive(drop, body)
    conn.execute("UPDATE fep_receipt SET finished_at = now() WHERE id = %s", (body["receipt"],))
    return body


def harvest(root: Path | None = None, settle: float | None = None,
            dsn: str | None = None) -> dict[str, Any]:
    """One harvest of every settled drop: ``{"receipts": [...], "errors": [...]}``.

    ``errors`` are drops that could not be answered for a reason of the platform's (the
    database down …): they stay where they are for the next run."""
    s = get_settings()
    root = Path(root) if root is not None else s.fep_inbox_root
    settle = s.fep_settle_seconds if settle is None else settle
    dsn = dsn or database_url()
    out: dict[str, Any] = {"receipts": [], "errors": [], "busy": False}
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            out["busy"] = True  # another harvest is running: it takes these files
            return out
        try:
            for drop in scan(root, settle):
                try:
                    out["receipts"].append(process(conn, drop, dsn))
                except Exception as exc:  # noqa: BLE001 - the platform's fault, not the file's:
                    # the drop stays for the next run; the others are answered meanwhile
                    log.exception("drop %s not answered", drop.display)
                    out["errors"].append({"file": drop.display, "error": f"{type(exc).__name__}:"
                                                                          f" {exc}"})
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return out


# -- reading receipts; the folders ----------------------------------------------------
def list_receipts(conn: psycopg.Connection, caller: Caller, *, dept: str | None = None,
                  resource: str | None = None, status: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """Receipts the caller may read (``layers.policy.receipt_filter``), newest first."""
    f = receipt_filter(caller, dept="r.dept_code")
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT r.id, r.dept_code AS dept, r.resource, r.file_name, r.status, r.version, "
        f"r.message, r.content_hash, r.archived_as, r.at, r.finished_at, r.report "
        f"FROM fep_receipt r WHERE {f.sql} AND (%s::text IS NULL OR r.dept_code = %s) AND "
        f"(%s::text IS NULL OR r.resource = %s) AND (%s::text IS NULL OR r.status = %s) "
        f"ORDER BY r.id DESC LIMIT %s",
        (*f.params, dept, dept, resource, resource, status, status, limit)).fetchall()
    return rows


def ensure_folders(conn: psycopg.Connection, root: Path | None = None) -> list[Path]:
    """The drop folder of every published resource, ``<root>/<owner>/<name>/``, made
    where missing; returns them all."""
    root = Path(root) if root is not None else get_settings().fep_inbox_root
    out = []
    for r in registry.list_layers(conn):
        if r["current_version"]:
            p = root / r["owner_code"] / r["name"]
            p.mkdir(parents=True, exist_ok=True)
            out.append(p)
    return out
