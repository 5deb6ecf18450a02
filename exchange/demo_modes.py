"""The demo's exchange modes (issue 11 §6): so ``make run`` shows all four working.

* **系统对接** — 城乡规划局 (gh) subscribes to ``enterprises`` and ``land_parcels`` with the
  change set, at the platform's reference receiver (``POST /exchange/webhook-test``,
  which checks each signature as a department's receiver must): every publish of
  either is pushed, signed, and logged as delivered
  (``jmgeo subscription deliveries 1 --as gh``). Its feed: ``GET
  /exchange/feeds/enterprises?since=1`` with gh's key.
* **前置机 inbound** — 市场监督管理局 (scjg) has dropped the December 企业名录 into its
  folder ``<inbox>/scjg/enterprises/``: the worker harvests it within a minute (a new
  version, a receipt beside the file, the push above).
* **前置机 outbound** — 交通运输局 (jt) asked for 蓬江区 parcels by front-end processor
  (mode ``fep``) and 自然资源局 (gtzy) approved: the grant has a copy in the schema
  ``fep_jt`` (in the demo, a schema of the platform's own database stands in for the
  department's), synced by the worker and reconciled (``jmgeo fep copy list``).
* **联机查询 / 批量下载** — as before (gh's grant on ``enterprises``; any download).

Idempotent: a second ``make run`` finds the subscription, the copy and the harvested
drop (by its receipt) and adds nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg

from exchange import requests as ex
from exchange.demo import _at, _dept, _file
from layers.policy import Caller
from loaders.demo import ENTERPRISE_HEADER, SEED, enterprise_records

DROP_NAME = "企业名录_2026年12月.csv"
FEP_SCHEMA = "fep_jt"
BUREAU = Caller(kind="admin", dept_code="wxtc", name="demo-admin")


def december_enterprises(path: Path) -> Path:
    """The December 企业名录 as 市场监管 exports it (GBK, every value quoted): three
    enterprises deregistered (注销), one phone changed, two gone, two new."""
    rows = enterprise_records(200)
    for r in rows[:3]:
        r[8] = "注销"
    rows[3][3] = rows[3][3][:-4] + "0000"
    rows = rows[:-2] + enterprise_records(2, seed=SEED + 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name)  # written aside, then moved in: never half a file
    with open(tmp, "w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(ENTERPRISE_HEADER)
        w.writerows(rows)
    tmp.replace(path)
    return path


def _subscription(conn: psycopg.Connection, base_url: str) -> str:
    from exchange import subscriptions

    url = f"{base_url}/exchange/webhook-test"
    if conn.execute("SELECT 1 FROM subscription s JOIN department d ON d.id = s.dept_id "
                    "WHERE d.code = 'gh' AND s.url = %s AND s.active", (url,)).fetchone():
        return "subscription: gh → webhook-test (present)"
    sub = subscriptions.register(conn, _dept("gh"), url=url,
                                 resources=["enterprises", "land_parcels"], with_changes=True)
    return f"subscription {sub['id']}: gh → {url} (enterprises, land_parcels, with changes)"


def _drop(conn: psycopg.Connection, inbox: Path) -> str:
    done = conn.execute("SELECT status FROM fep_receipt WHERE resource = 'enterprises' AND "
                        "file_name = %s ORDER BY id DESC LIMIT 1", (DROP_NAME,)).fetchone()
    target = inbox / "scjg" / "enterprises" / DROP_NAME
    if done is not None:
        return f"drop folder: {DROP_NAME} already harvested ({done[0]})"
    if not target.exists():
        december_enterprises(target)
    return f"drop folder: {target} waits for the worker's harvest"


def _fep_copy(conn: psycopg.Connection, dsn: str) -> str:
    from exchange import fep_outbound

    if conn.execute("SELECT 1 FROM fep_copy WHERE target_schema = %s",
                    (FEP_SCHEMA,)).fetchone():
        return f"fep copy: {FEP_SCHEMA} (present)"
    purpose = "江门大道沿线用地台账（前置机同步）"
    r = _file(conn, "jt", "land_parcels", purpose, _at(2026, 11, 23),
              fields=["parcel_code", "land_use", "parcel_area"], regions=["440703"],
              mode="fep", basis="《公路法》第二十七条", contact="交通运输局规划科 0750-3000001")
    if r is not None:
        ex.answer(conn, _dept("gtzy"), r["id"], decision="approve", now=_at(2026, 11, 25, 10))
    grant = conn.execute(
        "SELECT g.id FROM layer_grant g JOIN share_request q ON q.id = g.request_id "
        "WHERE q.purpose = %s AND g.revoked_at IS NULL ORDER BY g.id DESC LIMIT 1",
        (purpose,)).fetchone()
    if grant is None:
        return "fep copy skipped: the demo fep request has no live grant"
    copy = fep_outbound.add_copy(conn, BUREAU, grant_id=grant[0], target_url=dsn,
                                 schema=FEP_SCHEMA, every_minutes=60)
    return f"fep copy {copy['id']}: grant {grant[0]} (jt, land_parcels 蓬江区) → {FEP_SCHEMA}"


def load_demo_modes(dsn: str, log=print) -> None:
    """Add the demo's subscription, drop-folder file and fep copy (each once)."""
    from jmgeo.settings import get_settings

    settings = get_settings()
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = {r[0] for r in conn.execute(
            "SELECT name FROM layer WHERE current_version IS NOT NULL AND name = ANY(%s)",
            (["land_parcels", "enterprises"],))}
        if have != {"land_parcels", "enterprises"}:
            log("demo exchange modes skipped: land_parcels and enterprises are not loaded")
            return
        for step in (lambda: _subscription(conn, settings.base_url),
                     lambda: _drop(conn, settings.fep_inbox_root),
                     lambda: _fep_copy(conn, dsn)):
            log(step())
