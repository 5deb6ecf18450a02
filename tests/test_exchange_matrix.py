"""The access matrix of the exchange API (issue 10 §5): callers × actions, 0 leaks.

Callers: anonymous, the owner (gtzy), the applicant (gh), an unrelated department (hb),
the bureau's admin (wxtc) and the auditor. Actions: file, list each box, read one,
answer, amend, renew, revoke, withdraw, appeal, list notifications, mark one read,
the bureau's supervision view. Each case
gets a fresh resource and request (gh → gtzy), so no case depends on another.

The expected status of each cell is ``EXPECT`` (generated cases, hand-written table —
the rule of issue 10: only the owner or the bureau answers, only the applicant withdraws
and appeals, the auditor reads all and changes nothing, anonymous callers authenticate
first). Every refused change leaves the request exactly as it was (status and events);
a 404 answers byte for byte like one for a request that does not exist (no oracle); no
list, box or notification of a caller who may not read the request names it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from exchange_fixtures import Api, fresh_resource, make_callers

CALLERS = ("anonymous", "owner", "applicant", "unrelated", "admin", "auditor")
MISSING = 2_000_000_000  # an id no request has

# caller → status per action. 401: authenticate; 403: seen, not yours to change;
# 404: not seen (like nonexistent).
OK = 200
EXPECT: dict[str, dict[str, int | tuple[int, ...]]] = {
    "file":     {"anonymous": 401, "owner": (400, 409, 422), "applicant": 201,
                 "unrelated": 201, "admin": 201, "auditor": 403},
    "read":     {"anonymous": 401, "owner": OK, "applicant": OK, "unrelated": 404,
                 "admin": OK, "auditor": OK},
    "answer":   {"anonymous": 401, "owner": OK, "applicant": 403, "unrelated": 404,
                 "admin": OK, "auditor": 403},
    "amend":    {"anonymous": 401, "owner": OK, "applicant": 403, "unrelated": 404,
                 "admin": OK, "auditor": 403},
    "renew":    {"anonymous": 401, "owner": OK, "applicant": 403, "unrelated": 404,
                 "admin": OK, "auditor": 403},
    "revoke":   {"anonymous": 401, "owner": OK, "applicant": 403, "unrelated": 404,
                 "admin": OK, "auditor": 403},
    "withdraw": {"anonymous": 401, "owner": 403, "applicant": OK, "unrelated": 404,
                 "admin": 403, "auditor": 403},
    "appeal":   {"anonymous": 401, "owner": 403, "applicant": OK, "unrelated": 404,
                 "admin": 403, "auditor": 403},
    "supervision": {"anonymous": 401, "owner": 403, "applicant": 403, "unrelated": 403,
                    "admin": OK, "auditor": OK},
    "mark_read": {"anonymous": 401, "owner": OK, "applicant": 404, "unrelated": 404,
                  "admin": 404, "auditor": 403},
}
# which callers find the request in which list (None: the API's choice, not a leak)
LISTED: dict[str, dict[str, bool | None]] = {
    "outbox": {"owner": False, "applicant": True, "unrelated": False, "admin": None,
               "auditor": None},
    "inbox": {"owner": True, "applicant": False, "unrelated": False, "admin": None,
              "auditor": None},
    "all": {"owner": True, "applicant": True, "unrelated": False, "admin": True,
            "auditor": True},
}
# the owner is told a request arrived; nobody outside it hears of it
NOTIFIED = {"owner": True, "unrelated": False, "auditor": False}


@pytest.fixture(scope="module")
def who(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@dataclass
class Case:
    apis: dict[str, Api]
    db: object
    caller: str

    @property
    def me(self) -> Api:
        return self.apis[self.caller]

    def submitted(self, cls: str = "conditional") -> int:
        layer = fresh_resource(self.db, cls, "mx")
        r = self.apis["applicant"].file(layer)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def approved(self) -> int:
        rid = self.submitted()
        r = self.apis["owner"].post(f"/exchange/requests/{rid}/answer",
                                    {"decision": "approve"})
        assert r.status_code == 200, r.text
        return rid

    def state(self, rid: int) -> tuple:
        """What a refused change must leave alone."""
        status = self.db.execute("SELECT status, grant_id FROM share_request WHERE id = %s",
                                 (rid,)).fetchone()
        events = self.db.execute("SELECT count(*) FROM share_request_event "
                                 "WHERE request_id = %s", (rid,)).fetchone()[0]
        grants = self.db.execute("SELECT count(*), count(revoked_at) FROM layer_grant "
                                 "WHERE request_id = %s", (rid,)).fetchone()
        return tuple(status), events, tuple(grants)

    def expect(self, action: str, r) -> None:
        want = EXPECT[action][self.caller]
        allowed = want if isinstance(want, tuple) else (want,)
        assert r.status_code in allowed, (self.caller, action, r.status_code, r.text)
        if r.status_code == 401:
            assert r.headers.get("www-authenticate", "").startswith("Bearer")

    def like_missing(self, rid: int, send: Callable[[int], object]) -> None:
        """The answer for request ``rid`` equals the one for a request never filed."""
        mine, none = send(rid), send(MISSING)
        assert mine.status_code == none.status_code
        assert mine.text.replace(str(rid), "N") == none.text.replace(str(MISSING), "N")

    def change(self, action: str, rid: int, path: str, body: dict | None) -> None:
        before = self.state(rid)

        def send(i: int):
            return self.me.post(f"/exchange/requests/{i}/{path}", body)

        r = send(rid)
        self.expect(action, r)
        if r.status_code >= 400:
            assert self.state(rid) == before, (self.caller, action)
            if r.status_code in (401, 404):  # (403: a caller that may read the request)
                self.like_missing(rid, send)
        else:
            assert self.state(rid) != before


def act_file(c: Case):
    layer = fresh_resource(c.db, "conditional", "mf")
    before = c.db.execute("SELECT count(*) FROM share_request").fetchone()[0]
    r = c.me.file(layer)
    c.expect("file", r)
    after = c.db.execute("SELECT count(*) FROM share_request").fetchone()[0]
    assert after == before + (1 if r.status_code == 201 else 0)
    if r.status_code == 201 and c.caller != "admin":
        assert r.json()["applicant"] == c.me.who.dept


def act_read(c: Case):
    rid = c.submitted()
    r = c.me.request(rid)
    c.expect("read", r)
    if r.status_code == 200:
        assert r.json()["id"] == rid and r.json()["events"]
    if r.status_code in (401, 404):
        c.like_missing(rid, c.me.request)


def act_lists(c: Case):
    rid = c.submitted()
    for box in ("outbox", "inbox", "all"):
        r = c.me.get("/exchange/requests", box=box, limit=500)
        if c.caller == "anonymous":
            assert r.status_code == 401
            continue
        assert r.status_code == 200, r.text
        ids = {x["id"] for x in r.json()["requests"]}
        want = LISTED[box][c.caller]
        if want is not None:
            assert (rid in ids) == want, (c.caller, box)
        if c.caller == "unrelated":  # no request it neither filed nor owns
            for x in r.json()["requests"]:
                assert c.me.who.dept in (x["applicant"], x["owner"]), x
    # a status filter never widens what is seen
    if c.caller != "anonymous":
        r = c.me.get("/exchange/requests", status="submitted", limit=500)
        assert (rid in {x["id"] for x in r.json()["requests"]}) == \
            bool(LISTED["all"][c.caller])


def act_answer(c: Case):
    c.change("answer", c.submitted(), "answer", {"decision": "approve"})


def act_amend(c: Case):
    c.change("amend", c.approved(), "amend", {"fields": ["name", "area"],
                                               "reason": "只需名称与面积"})


def act_renew(c: Case):
    c.change("renew", c.approved(), "renew", {"valid_to": "2099-12-31", "reason": "延期"})


def act_supervision(c: Case):
    r = c.me.get("/exchange/supervision")
    c.expect("supervision", r)
    if r.status_code == 200:
        assert {"by_status", "cli_grants"} <= set(r.json())
    else:
        assert "by_status" not in r.text


def act_revoke(c: Case):
    c.change("revoke", c.approved(), "revoke", {"reason": "项目结束"})


def act_withdraw(c: Case):
    c.change("withdraw", c.submitted(), "withdraw", {"reason": "不再需要"})


def act_appeal(c: Case):
    c.change("appeal", c.submitted("not_shared"), "appeal", {"reason": "提请市政府审定"})


def act_notifications(c: Case):
    rid = c.submitted()
    r = c.me.get("/exchange/notifications")
    if c.caller == "anonymous":
        assert r.status_code == 401
        return
    assert r.status_code in ((200, 403) if c.caller == "auditor" else (200,)), r.text
    if r.status_code != 200:
        return
    mine = [n for n in r.json()["notifications"] if n.get("request_id") == rid]
    if c.caller in NOTIFIED:
        assert bool(mine) == NOTIFIED[c.caller], (c.caller, r.json())
    # mark the owner's notification read: only the owner may
    owner_notes = c.apis["owner"].get("/exchange/notifications").json()["notifications"]
    nid = next(n["id"] for n in owner_notes if n.get("request_id") == rid)

    def send(i: int):
        return c.me.post(f"/exchange/notifications/{i}/read")

    read_before = c.db.execute("SELECT read_at FROM notification WHERE id = %s",
                               (nid,)).fetchone()[0]
    r = send(nid)
    c.expect("mark_read", r)
    read_after = c.db.execute("SELECT read_at FROM notification WHERE id = %s",
                              (nid,)).fetchone()[0]
    if r.status_code == 200:
        assert read_after is not None
    else:
        assert read_after == read_before
        if r.status_code == 404:
            c.like_missing(nid, send)


ACTIONS = {"file": act_file, "read": act_read, "lists": act_lists, "answer": act_answer,
           "amend": act_amend, "renew": act_renew, "revoke": act_revoke, "withdraw": act_withdraw,
           "appeal": act_appeal, "notifications": act_notifications,
           "supervision": act_supervision}


@pytest.mark.parametrize(("caller", "action"), list(itertools.product(CALLERS, ACTIONS)))
def test_exchange_matrix(app_client, db, who, caller, action):
    apis = {label: Api(app_client, w) for label, w in who.items()}
    ACTIONS[action](Case(apis, db, caller))


def test_matrix_is_complete():
    for table in (EXPECT, NOTIFIED):
        for row in (table.values() if table is EXPECT else [table]):
            assert set(row) <= set(CALLERS)
    assert all(set(row) == set(CALLERS) for row in EXPECT.values())
    assert set(ACTIONS) >= {"file", "read", "lists", "answer", "amend", "revoke",
                            "withdraw", "appeal", "notifications"}
