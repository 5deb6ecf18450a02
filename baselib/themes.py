"""Thematic libraries (专题库) on the base libraries: credit, tax, government services,
statistics, full insurance coverage — catalog themes, each with one demo resource joined
to a base library by USCC or ID number, and one derived indicator.

| theme (catalog) | resource (owner) | key | indicator |
| --- | --- | --- | --- |
| ``credit`` 信用 | ``credit_records`` (fgj) | USCC | 失信 legal persons per county |
| ``tax`` 涉税 | ``tax_records`` (swj) | USCC | legal persons in tax arrears per town |
| ``gov_services`` 政务服务 | ``yimen_services`` (zwfw, 邑门式) | service no. | services whose applicant is in the person library, per county |
| ``statistics`` 统计 | ``enterprise_stats`` (tjj) | USCC | employees per town |
| ``insurance`` 全员足额参保 | ``insurance_coverage`` (rsj, 全员参保登记) | USCC × ID number | legal persons with employees but no insurance record, per town |

Full insurance coverage (全员足额参保) is a table of *legal person × employee × insurance
status*: one row per employment (``record_no``), the employer's USCC (→ ``legal_persons``),
the employee's ID number (→ ``persons``), the insurance status and the contribution base
(缴费基数, the 足额 of it). Its indicator counts, per town of the employer, the legal
persons that have employees — rows whose ID number is a person of the population base —
and no insurance record at all: every row of theirs is ``未参保`` (or has no status).

An indicator is an aggregate (counts per region, never a record); it is shown to a
caller who may read every resource it is computed from (``layers.policy.decide``), so
it tells nobody more than the data they could count themselves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from psycopg.rows import dict_row

from baselib.libraries import LIBRARIES
from layers import policy
from layers.grants import live_grants
from layers.policy import Caller

THEMES = {"credit": "信用", "tax": "涉税", "gov_services": "政务服务", "statistics": "统计",
          "insurance": "全员足额参保"}
NO_INSURANCE = "未参保"
SERVICE_ITEMS = ["居住证办理", "社保卡补办", "个体工商户登记", "不动产登记", "出生医学证明", "港澳通行证签注"]


def _table(conn, name: str) -> str | None:
    row = conn.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = "
                       "l.id AND v.version = l.current_version WHERE l.name = %s",
                       (name,)).fetchone()
    return row[0] if row else None


# indicator → (theme, title, resources it reads, SQL over {name} placeholders)
INDICATORS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "dishonest_per_county": (
        "credit", "失信法人数（按区县） / dishonest legal persons per county",
        ("credit_records", "legal_persons"),
        "SELECT l.county_code AS code, count(*) AS n FROM {credit_records} c JOIN "
        "{legal_persons} l ON l.uscc = c.uscc WHERE c.dishonest = '是' GROUP BY 1 ORDER BY 1"),
    "arrears_per_town": (
        "tax", "欠税法人数（按镇街） / legal persons in tax arrears per town",
        ("tax_records", "legal_persons"),
        "SELECT l.town_code AS code, count(*) AS n FROM {tax_records} t JOIN {legal_persons} l "
        "ON l.uscc = t.uscc WHERE t.arrears::numeric > 0 GROUP BY 1 ORDER BY 1"),
    "services_per_county": (
        "gov_services", "办件数（申请人在人口库，按户籍区县） / services by residents per county",
        ("yimen_services", "persons"),
        "SELECT left(p.id_number, 6) AS code, count(*) AS n FROM {yimen_services} s JOIN "
        "{persons} p ON p.id_number = s.applicant_id GROUP BY 1 ORDER BY 1"),
    "employees_per_town": (
        "statistics", "从业人员数（按镇街） / employees per town",
        ("enterprise_stats", "legal_persons"),
        "SELECT l.town_code AS code, sum(s.employees::int) AS n FROM {enterprise_stats} s "
        "JOIN {legal_persons} l ON l.uscc = s.uscc GROUP BY 1 ORDER BY 1"),
    "uninsured_employers_per_town": (
        "insurance", "有从业人员但无参保记录的法人（按镇街） / legal persons with employees "
        "but no insurance record, per town", ("insurance_coverage", "legal_persons", "persons"),
        "SELECT l.town_code AS code, count(*) AS n FROM {legal_persons} l WHERE EXISTS "
        "(SELECT 1 FROM {insurance_coverage} c JOIN {persons} p ON p.id_number = c.id_number "
        "WHERE c.uscc = l.uscc) AND NOT EXISTS (SELECT 1 FROM {insurance_coverage} c WHERE "
        "c.uscc = l.uscc AND coalesce(c.insurance_status, '" + NO_INSURANCE + "') <> '"
        + NO_INSURANCE + "') GROUP BY 1 ORDER BY 1"),
}


def indicators(conn, caller: Caller) -> list[dict[str, Any]]:
    """Each indicator the caller may see (module docstring), computed now."""
    grants = live_grants(conn, caller.data_dept) if caller.data_dept else []
    out = []
    for code, (theme, title, names, query) in INDICATORS.items():
        tables = {}
        for name in names:
            row = policy.access_row(conn, name)
            if row is None or policy.decide(caller, row, grants) is None:
                break
            tables[name] = row["table_name"]
        else:
            values = conn.cursor(row_factory=dict_row).execute(query.format(**tables)).fetchall()
            out.append({"indicator": code, "theme": theme, "theme_name": THEMES[theme],
                        "title": title, "values": values})
    return out


def demo_rows(conn, seed: int = 2019) -> dict[str, tuple[str, str, str, list[dict[str, Any]]]]:
    """One demo resource per theme from the published libraries: name → (owner, theme,
    key, rows)."""
    rng = random.Random(seed)
    lp = conn.execute(f"SELECT uscc FROM {_table(conn, 'legal_persons')} ORDER BY uscc"
                      ).fetchall()
    people = conn.execute(f"SELECT id_number FROM {_table(conn, 'persons')} ORDER BY 1"
                          ).fetchall()
    credit = [{"uscc": u, "rating": rng.choice("ABCD"),
               "dishonest": "是" if rng.random() < 0.04 else "否"} for (u,) in lp]
    tax = [{"uscc": u, "tax_paid": f"{rng.randrange(1, 5000) * 100}",
            "arrears": f"{rng.randrange(1, 90) * 100 if rng.random() < 0.08 else 0}"}
           for (u,) in lp]
    stats = [{"uscc": u, "employees": str(rng.choice((0, 0, 3, 8, 15, 40, 120))),
              "revenue": f"{rng.randrange(10, 90000)}"} for (u,) in lp]
    coverage = insurance_rows(rng, [u for (u,) in lp], [p for (p,) in people])
    services = [{"service_no": f"YMS{2026_000000 + i}", "applicant_id": p,
                 "item": rng.choice(SERVICE_ITEMS), "handled_on": f"2026-{1 + i % 11:02d}-15"}
                for i, (p,) in enumerate(people[:: max(1, len(people) // 400)])]
    return {"credit_records": ("fgj", "credit", "uscc", credit),
            "tax_records": ("swj", "tax", "uscc", tax),
            "enterprise_stats": ("tjj", "statistics", "uscc", stats),
            "yimen_services": ("zwfw", "gov_services", "service_no", services),
            "insurance_coverage": ("rsj", "insurance", "record_no", coverage)}


def insurance_rows(rng: random.Random, employers: list[str], people: list[str]
                   ) -> list[dict[str, Any]]:
    """全员参保登记: each person employed by at most one legal person (a few employers have
    none); per employer a compliance draw — most insure everyone at a full base, some
    insure part of their staff or at a low base, about one in ten insures nobody."""
    staff = people[:]
    rng.shuffle(staff)
    rows: list[dict[str, Any]] = []
    for uscc in employers:
        if not staff:
            break
        n = min(rng.choice((0, 1, 2, 3, 5, 8)), len(staff))
        compliance = rng.random()
        for _ in range(n):
            insured = compliance >= 0.1 and (compliance >= 0.25 or rng.random() < 0.5)
            status = rng.choice(("正常参保", "正常参保", "暂停缴费")) if insured else NO_INSURANCE
            base = 0  # 缴费基数: the full base, or a low one for the less compliant
            if insured:
                base = 6800 if compliance >= 0.4 else rng.choice((2300, 4500, 6800))
            rows.append({"record_no": f"CB{2026_000000 + len(rows) + 1}", "uscc": uscc,
                         "id_number": staff.pop(), "insurance_status": status,
                         "contribution_base": str(base)})
    return rows


def load_demo_themes(conn, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Publish the themes' demo resources (unconditional; applicants' ID numbers masked)
    and register every base and thematic resource in the catalog."""
    from baselib.demo import publish_source

    out = {}
    for name, (dept, theme, key, rows) in demo_rows(conn).items():
        masks = {"yimen_services": {"applicant_id": "id_number"},
                 "insurance_coverage": {"id_number": "id_number"}}.get(name, {})
        out[name] = publish_source(conn, name, dept, rows, key, theme=theme,
                                   sharing="unconditional", sensitive=masks,
                                   title=f"{THEMES[theme]}专题：{name}")
    try:
        from catalog.sync import sync_layer

        for name in [*out, *LIBRARIES]:
            sync_layer(conn, name)
    except Exception as exc:  # noqa: BLE001 — the catalog re-syncs on the registry epoch
        log(f"catalog sync deferred: {exc}")
    log(f"themes: {', '.join(f'{n} v{v}' for n, v in out.items() if v)}")
    return out
