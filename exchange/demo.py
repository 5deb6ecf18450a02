"""Demo share requests in every state, so ``make run`` shows the workflow.

On the demo's conditional resources (land_parcels of 国土 gtzy, enterprises of 市场监管
scjg) and its not_shared one (civil_shelters of 人防 rf), placed in time with the
transitions' ``now``:

| # | applicant | resource       | story                                                   |
| - | --------- | -------------- | ------------------------------------------------------- |
| 1 | jt        | land_parcels   | filed Fri 2025-09-26; due 2025-10-16 (after 国庆 Oct 1–8,|
|   |           |                | with the 调休 Sep 28 / Oct 11); escalated 2025-10-17     |
| 2 | jt        | land_parcels   | period ended unanswered: overdue, then expired          |
| 3 | sw        | land_parcels   | approved                                                |
| 4 | rf        | land_parcels   | approved in part (no 权利人 phone), then renewed         |
| 5 | hb        | land_parcels   | refused with a reason                                   |
| 6 | hb        | land_parcels   | withdrawn                                               |
| 7 | hb        | civil_shelters | refused at once: not shared by law                      |
| 8 | jt        | civil_shelters | refused (not shared), appealed to the bureau            |
| 9 | hb        | land_parcels   | submitted now, waiting for gtzy                         |
| 10| sw        | enterprises    | submitted now, waiting for scjg                         |

Grants from approvals go to sw and rf only: the demo keys of hb (no grants), gh (its
typed grant) and jy (expired grant) keep showing what the access matrix documents.
Idempotent: a request whose (applicant, resource, purpose) exists is not filed again.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

from exchange import requests as ex
from exchange.deadlines import check_deadlines
from layers.policy import Caller

CHINA = ex.clock.CHINA


def _dept(code: str) -> Caller:
    return Caller(kind="department", dept_code=code, name=f"demo:{code}")


def _at(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=CHINA)


def _exists(conn, applicant: str, resource: str, purpose: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM share_request r JOIN layer l ON l.id = r.layer_id JOIN department d "
        "ON d.id = r.applicant_dept_id WHERE d.code = %s AND l.name = %s AND r.purpose = %s",
        (applicant, resource, purpose)).fetchone() is not None


def _file(conn, applicant: str, resource: str, purpose: str, when: datetime | None,
          **kw: Any) -> dict[str, Any] | None:
    if _exists(conn, applicant, resource, purpose):
        return None
    return ex.file_request(conn, _dept(applicant), resource=resource, purpose=purpose,
                           now=when, **kw)


def load_demo_requests(dsn: str, log=print) -> int:
    """File the demo's requests (see the table); returns how many were new."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = {r[0] for r in conn.execute(
            "SELECT name FROM layer WHERE current_version IS NOT NULL AND name = ANY(%s)",
            (["land_parcels", "enterprises", "civil_shelters"],))}
        if len(have) < 3:
            log("demo requests skipped: land_parcels, enterprises and civil_shelters are "
                "not all loaded")
            return 0
        owner = _dept("gtzy")
        new = 0
        r = _file(conn, "jt", "land_parcels", "江门大道扩建征地摸底", _at(2025, 9, 26),
                  fields=["parcel_code", "land_use", "region_code", "parcel_area"],
                  regions=["440703", "440705"], basis="《公路法》第二十七条",
                  contact="交通运输局规划科 0750-3000001", mode="fep")
        if r:  # nobody answered across National Day: escalated the day after its deadline
            check_deadlines(conn, date(2025, 10, 17))
            new += 1
        r = _file(conn, "jt", "land_parcels", "春运临时停车场选址", _at(2026, 1, 5),
                  period_to=date(2026, 1, 31), fields=["parcel_code", "land_use"])
        if r:
            check_deadlines(conn, date(2026, 2, 2))
            new += 1
        r = _file(conn, "sw", "land_parcels", "河道管理范围划定", _at(2026, 11, 2),
                  fields=["parcel_code", "land_use", "region_code", "parcel_area"],
                  regions=["440705"], period_to=date(2027, 12, 31), mode="query",
                  basis="《水法》第四十三条")
        if r:
            ex.answer(conn, owner, r["id"], decision="approve", now=_at(2026, 11, 5, 15))
            new += 1
        r = _file(conn, "rf", "land_parcels", "人防工程规划建设用地核查", _at(2026, 11, 3),
                  fields=["parcel_code", "owner_name", "phone", "land_use"],
                  period_to=date(2027, 12, 31))
        if r:
            ex.answer(conn, owner, r["id"], decision="approve",
                      fields=["parcel_code", "owner_name", "land_use"],
                      valid_to=date(2027, 6, 30), reason="联系电话属个人信息，不予提供",
                      now=_at(2026, 11, 6, 16))
            ex.renew(conn, owner, r["id"], valid_to=date(2027, 12, 31), reason="项目延期一年",
                     now=_at(2026, 11, 20, 9))
            new += 1
        r = _file(conn, "hb", "land_parcels", "环境信访核查", _at(2026, 11, 9))
        if r:
            ex.answer(conn, owner, r["id"], decision="refuse",
                      reason="申请全部字段与所述用途不符：请说明所需字段和区域后重新申请",
                      now=_at(2026, 11, 12, 11))
            new += 1
        r = _file(conn, "hb", "land_parcels", "土壤污染状况详查（重复提交）", _at(2026, 11, 10))
        if r:
            ex.withdraw(conn, _dept("hb"), r["id"], reason="重复提交，撤回",
                        now=_at(2026, 11, 11, 9))
            new += 1
        r = _file(conn, "hb", "civil_shelters", "突发环境事件应急避险", _at(2026, 11, 16))
        new += r is not None
        r = _file(conn, "jt", "civil_shelters", "地铁线路避让人防工程", _at(2026, 11, 17))
        if r:
            ex.appeal(conn, _dept("jt"), r["id"], reason="线路规划必须避让人防工程，提请市政府审定",
                      now=_at(2026, 11, 18, 14))
            new += 1
        r = _file(conn, "hb", "land_parcels", "土壤污染状况详查", None,
                  fields=["parcel_code", "land_use", "region_code"], regions=["440705"],
                  basis="《土壤污染防治法》第十四条", contact="环境保护局土壤科 0750-3000002")
        new += r is not None
        r = _file(conn, "sw", "enterprises", "涉水企业排污许可核查", None,
                  fields=["uscc", "enterprise_name", "county", "industry", "address"])
        new += r is not None
        states = dict(conn.execute("SELECT status, count(*) FROM share_request GROUP BY status"))
    log(f"share requests: {new} new; by state " +
        ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return new
