"""The supervision figures of a synthetic quarter, against values computed by hand.

The world is tests/supervision_fixtures.py (its own database: city-wide totals are exact).
Working days are the official table's: 2026 National Day is 1–7 October, Saturday
10 October is a 调休 working day.
"""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from supervision_fixtures import BUREAU, JUDGE, dept, quarter_database

from exchange import clock
from supervision import feedback, figures, freshness
from supervision.periods import Forbidden, Invalid, parse_period


@pytest.fixture(scope="module")
def quarter():
    yield from quarter_database()


@pytest.fixture(scope="module")
def fig(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        return figures.compute(conn, parse_period("2026Q4", today=JUDGE))


def test_the_tenth_day_rule_across_national_day():
    calendar = freshness.Rule("quarterly", "plan", quarter_day=10)
    working = freshness.Rule("quarterly", "plan", quarter_day=10, working_days=True)
    # 10 October 2026 is a Saturday, but a 调休 working day: the deadline stays
    assert calendar.quarter_deadline(2026, 10) == date(2026, 10, 10)
    # 10 January 2026 is a Saturday off: the deadline moves to Monday the 12th
    assert calendar.quarter_deadline(2026, 1) == date(2026, 1, 12)
    # the 10th working day of October: 8, 9, 10 (Sat), 12–16, 19, 20 → 20 October
    assert working.quarter_deadline(2026, 10) == date(2026, 10, 20)
    assert working.quarter_deadline(2026, 7) == date(2026, 7, 14)
    # published 12 October: late under the plan's rule, on time under the working-day one
    pubs = [date(2026, 7, 1), date(2026, 10, 12)]
    late = [o for o in freshness.obligations(pubs, calendar, JUDGE)
            if o.deadline.month == 10]
    assert [(o.deadline, o.outcome, o.late_days) for o in late] == \
        [(date(2026, 10, 10), "overdue", 1)]
    ok = [o for o in freshness.obligations(pubs, working, JUDGE) if o.deadline.month == 10]
    assert [(o.deadline, o.outcome) for o in ok] == [(date(2026, 10, 20), "on_time")]


def test_working_days_between_is_the_inverse_of_the_deadline():
    for start in (date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 31), date(2026, 12, 1)):
        for n in (1, 5, 10):
            assert clock.working_days_between(start, clock.deadline(start, n)) == n


def test_periods_and_their_errors():
    p = parse_period("2026Q4", today=JUDGE)
    assert (p.start, p.end, p.as_of, p.zh) == (date(2026, 10, 1), date(2027, 1, 1), JUDGE,
                                               "2026年第四季度")
    assert parse_period("2026-11", today=JUDGE).end == date(2026, 12, 1)
    assert parse_period("2026", today=date(2026, 12, 2)).as_of == date(2026, 12, 2)
    for bad in ("2026Q5", "26Q4", "2026-13", "Q4", "", "2026/11"):
        with pytest.raises(Invalid, match="格式错误.* / period .* is malformed"):
            parse_period(bad, today=JUDGE)
    with pytest.raises(Invalid, match="尚未开始.* / period 2027Q1 has not begun"):
        parse_period("2027Q1", today=JUDGE)


def test_timeliness(fig):
    t = fig["sections"]["timeliness"]
    # gtzy: syn_parcels on time for 10-10 (published 09-01, in (07-10, 10-10]);
    #       syn_boundaries missed 10-10, updated 10-12: 1 working day late
    # sw (monthly): 10-15 on time (10-14); 11-14 is a Saturday → 11-16, updated 11-20 (4
    #       working days late: overdue); 12-16 on time (11-20); 12-20 Sunday → 12-21, no
    #       update by 12-31 (8 working days: overdue, not yet delinquent at 10)
    # jt (weekly from 11-02): every Monday 11-09 … 12-28 missed: 8 obligations; 12-28 is
    #       3 working days late on 12-31 (overdue), the other seven more than 5 (delinquent)
    assert {k: (v["obligations"], v["on_time"], v["overdue"], v["delinquent"], v["rate"])
            for k, v in t["by_dept"].items()} == {
        "gtzy": (2, 1, 1, 0, 0.5), "sw": (4, 2, 2, 0, 0.5), "jt": (8, 0, 1, 7, 0.0)}
    assert (t["total"]["obligations"], t["total"]["on_time"], t["total"]["rate"]) == \
        (14, 3, round(3 / 14, 4))  # 1 + 2 + 0 on time
    sw = sorted((r["deadline"], r["outcome"], r["late_working_days"]) for r in t["rows"]
                if r["dept"] == "sw")
    assert sw == [(date(2026, 10, 15), "on_time", 0), (date(2026, 11, 16), "overdue", 4),
                  (date(2026, 12, 16), "on_time", 0), (date(2026, 12, 21), "overdue", 8)]
    # the ladder on 12-31
    assert (t["by_dept"]["sw"]["now_overdue"], t["by_dept"]["jt"]["now_delinquent"],
            t["by_dept"]["gtzy"]["now_fresh"]) == (1, 1, 2)


def test_overdue_lists_per_department(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        lists = freshness.overdue_by_department(conn, JUDGE)
    assert {k: [(r["resource"], r["state"], r["deadline"]) for r in v]
            for k, v in lists.items()} == {
        "jt": [("syn_bus", "delinquent", date(2026, 11, 9))],
        "sw": [("syn_pipes", "overdue", date(2026, 12, 21))]}


def test_cataloguing(fig):
    c = fig["sections"]["cataloguing"]["by_dept"]
    # gtzy: 合成宗地 (declared on the sheet, then loaded — linked by name — and current),
    # 不动产登记簿 (declared, never loaded, no 发布日期), 合成界线 (the platform's entry)
    assert c["gtzy"] == {"entries": 3, "complete": 2, "declared": 2, "declared_loaded": 1,
                         "declared_current": 1, "missing_metadata": 1, "uncatalogued": 0,
                         "rate": round(2 / 3, 4)}
    assert (c["sw"]["entries"], c["sw"]["complete"], c["sw"]["rate"]) == (1, 1, 1.0)
    assert (c["jt"]["entries"], c["jt"]["uncatalogued"], c["jt"]["rate"]) == (0, 1, 0.0)
    rows = fig["sections"]["cataloguing"]["rows"]
    assert [r["name"] for r in rows if not r["complete"]] == ["不动产登记簿", "合成公交线路"]
    assert "发布日期" in next(r for r in rows if r["name"] == "不动产登记簿")["problems"]


def test_quality_and_ratings(fig):
    q = fig["sections"]["quality"]
    assert (q["by_dept"]["gtzy"]["mean_score"], q["by_dept"]["gtzy"]["mean_rating"]) == \
        (80.0, 4.0)  # (90 + 70) / 2; hb's 4 stars
    assert (q["by_dept"]["sw"]["mean_score"], q["by_dept"]["sw"]["mean_rating"]) == (85.0, 2.0)
    assert (q["by_dept"]["jt"]["scored"], q["by_dept"]["jt"]["mean_score"]) == (0, None)
    assert q["total"]["mean_score"] == round((90 + 70 + 85) / 3, 1)


def test_requests(fig, quarter):
    r = fig["sections"]["requests"]
    # filed in Q4: 10-12 (answered 10-15: 3 working days), 10-29 (answered 11-17: 13 — due
    # 11-12, overdue), 10-31 Saturday (received 11-02, answered that day: 0), 12-01
    # (unanswered, due 12-15: overdue). The request of 09-28 is last quarter's.
    assert r["by_dept"]["gtzy"] == {"received": 4, "answered": 3, "automatic": 0,
                                    "overdue": 2, "median_working_days": 3, "rate": 0.5}
    days = {x["id"]: x["answer_working_days"] for x in r["rows"]}
    q = quarter.requests
    assert (days[q["on_time"]], days[q["late"]], days[q["same_day"]], days[q["unanswered"]]) \
        == (3, 13, 0, None)
    assert q["last_quarter"] not in days


def test_exchange_volume(fig):
    e = fig["sections"]["exchange"]["by_dept"]
    assert (e["gtzy"]["deliveries"], e["gtzy"]["download"], e["gtzy"]["system"],
            e["gtzy"]["rows"]) == (2, 1, 1, 150)
    assert (e["sw"]["deliveries"], e["sw"]["query"], e["sw"]["fep"]) == (30, 30, 0)  # 09-20
    assert (e["hb"]["received"], e["sw"]["received"]) == (31, 1)
    assert "jt" not in e  # its only delivery (09-20) was last quarter
    assert fig["sections"]["exchange"]["total"]["deliveries"] == 32


def test_corrections(fig):
    c = fig["sections"]["corrections"]["by_dept"]
    # gtzy: raised 10-21, due 10-28 (5 working days), fixed in v2 on 10-23
    assert c["gtzy"] == {"raised": 1, "closed": 1, "fixed": 1, "not_error": 0, "open": 0,
                         "overdue": 0}
    # sw: 11-09 due 11-16, answered 11-20 (late); 12-10 due 12-17, open on 12-31 (late)
    assert c["sw"] == {"raised": 2, "closed": 1, "fixed": 0, "not_error": 1, "open": 1,
                       "overdue": 2}


def test_verification_tickets(fig, quarter):
    v = fig["sections"]["verification"]
    # gtzy: late (opened in Q3, closed 10-20 after its 10-12 deadline: overdue), fixed
    #       (11-02 → corrected 11-05: 11-03, 04, 05 = 3 working days; closed 11-10),
    #       waits (open on 12-31, deadline 12-15 passed: overdue); old settled in Q3
    assert v["by_dept"]["gtzy"] == {"opened": 2, "open": 1, "answered": 0, "closed": 2,
                                    "overdue": 2, "mean_answer_working_days": 3.0}
    # sw: young (open, due 2027-01-05), quick (12-07 → confirmed 12-09: 2 working days);
    #     next (opened 2027-01-04) is after the quarter
    assert v["by_dept"]["sw"] == {"opened": 2, "open": 1, "answered": 1, "closed": 0,
                                  "overdue": 0, "mean_answer_working_days": 2.0}
    assert v["total"] == {"opened": 4, "open": 2, "answered": 1, "closed": 2, "overdue": 2,
                          "mean_answer_working_days": 2.5}
    t = quarter.tickets
    assert sorted(r["id"] for r in v["rows"]) == sorted(
        t[n] for n in ("late", "fixed", "waits", "young", "quick"))
    assert {r["id"] for r in v["rows"] if r["overdue"]} == {t["late"], t["waits"]}
    assert all("key" not in r and "copy_value" not in r for r in v["rows"])  # no values


def test_ranking(fig):
    ranks = {r["dept"]: (r["rank"], r["score"]) for r in fig["ranking"]}
    # gtzy: .25·(2/3) + .35·.5 + .2·.8 + .2·.5 = .6017; sw: (.25·1 + .35·.5 + .2·.85) / .8
    # = .7438 (no requests: that weight is left out); jt: 0 on catalogue and timeliness
    assert ranks == {"sw": (1, 74.4), "gtzy": (2, 60.2), "jt": (3, 0.0)}


def test_a_department_sees_its_own(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        own = figures.compute(conn, parse_period("2026Q4", today=JUDGE), dept="sw")
    assert set(own["sections"]["timeliness"]["by_dept"]) == {"sw"}
    assert all(r["dept"] == "sw" for r in own["sections"]["timeliness"]["rows"])
    assert [r["dept"] for r in own["ranking"]] == ["sw"]


def test_ratings_and_corrections_refused(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        with pytest.raises(Forbidden, match="未收到过"):  # jt never received this delivery
            feedback.rate_delivery(conn, dept("jt"), quarter.deliveries["parcels_hb"], score=3)
        with pytest.raises(Forbidden, match="未收到过"):  # gh never received syn_parcels
            feedback.raise_correction(conn, dept("gh"), resource="syn_parcels",
                                      description="错误")
        for who in (dept("jt"), BUREAU):  # the raiser, the bureau: not the owner
            with pytest.raises(Forbidden, match="只能由资源所属部门 sw 答复"):
                feedback.answer_correction(conn, who, quarter.corrections["open"],
                                           outcome="not_error", reason="x")
        with pytest.raises(Invalid, match="版本号"):
            feedback.answer_correction(conn, dept("sw"), quarter.corrections["open"],
                                       outcome="fixed", version=99)
        with pytest.raises(Invalid, match="没有字段"):
            feedback.raise_correction(conn, dept("hb"), resource="syn_parcels",
                                      field="nope", description="x")
        inbox = conn.execute("SELECT count(*) FROM notification n JOIN department d ON d.id = "
                             "n.dept_id WHERE d.code = 'sw' AND n.kind = 'correction'"
                             ).fetchone()[0]
        assert inbox == 2  # the two tickets on syn_pipes reached the owner


def test_the_rules_are_data(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn, conn.transaction():
        rule = freshness.set_rule(conn, "quarterly", updated_by="test", working_days=True)
        assert rule.quarter_deadline(2026, 10) == date(2026, 10, 20)
        assert freshness.load_rules(conn)["quarterly"].working_days
        with pytest.raises(Invalid, match="规则无效"):
            with conn.transaction():
                freshness.set_rule(conn, "quarterly", updated_by="test", quarter_day=40)
        with pytest.raises(Invalid, match="更新周期"):
            freshness.set_rule(conn, "fortnightly", updated_by="test", due_days=1)
        # leave the module's world as it was
        freshness.set_rule(conn, "quarterly", updated_by="test", working_days=False)
