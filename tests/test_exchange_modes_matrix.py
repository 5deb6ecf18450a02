"""The access matrix of the exchange modes' endpoints (issue 11): callers × actions, 0 leaks.

Callers as in ``test_exchange_matrix``: anonymous, the owner (gtzy), the applicant (gh),
an unrelated department (hb), the bureau's admin (wxtc) and the auditor. Actions:

* subscriptions (系统对接): register (on a resource the caller may see, and on one it may
  not), list, read one, remove, the delivery log, retry a dead letter — of a subscription
  the applicant registered on a resource it may see (the owner of that *resource* has no
  part in gh's subscription);
* export jobs (批量下载作业): the status and the file of a job the applicant asked for
  (not run yet: the file is "not done"; run in-process: the file);
* the delivery count and the job queue (the bureau and the auditor only);
* front-end-processor receipts (前置机回执): a department its own, naming another 403,
  the bureau and the auditor all.

``EXPECT`` is hand-written from ``layers.policy`` (may_subscribe, may_read_subscription,
may_change_subscription, owns_job, may_see_deliveries, may_see_jobs, receipt_filter)
and the modules' docstrings. Every refused change leaves the state as it was; a 404 (and
a 401) answers byte for byte like one for an id that does not exist (no oracle); no list
names what the caller may not read. Feeds are in ``test_access_matrix_ways``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from exchange_fixtures import APPLICANT, UNRELATED, Api, Who, fresh_resource, make_callers

CALLERS = ("anonymous", "owner", "applicant", "unrelated", "admin", "auditor")
MISSING = 2_000_000_000  # an id no subscription or delivery has
MISSING_JOB = "0" * 32  # a well-formed export job id no job has
RECEIVER = "http://127.0.0.1:9/"  # resolves; nothing is pushed without a worker
_SEQ = itertools.count(1)

OK, CREATED, ACCEPTED = 200, 201, 202
# caller → status per action. 401: authenticate; 403: not yours to do (or seen, not yours
# to change); 404: not seen (like nonexistent); 422: a resource it may not see, in the
# same words as an unknown one; 409: the export job is not done.
EXPECT: dict[str, dict[str, int | tuple[int, ...]]] = {
    "sub_create": {"anonymous": 401, "owner": CREATED, "applicant": CREATED,
                   "unrelated": CREATED, "admin": CREATED, "auditor": 403},
    "sub_create_hidden": {"anonymous": 401, "owner": CREATED, "applicant": 422,
                          "unrelated": 422, "admin": 422, "auditor": 403},
    "sub_read": {"anonymous": 401, "owner": 404, "applicant": OK, "unrelated": 404,
                 "admin": OK, "auditor": OK},
    "sub_delete": {"anonymous": 401, "owner": 404, "applicant": OK, "unrelated": 404,
                   "admin": OK, "auditor": 403},
    "sub_deliveries": {"anonymous": 401, "owner": 404, "applicant": OK, "unrelated": 404,
                       "admin": OK, "auditor": OK},
    "sub_retry": {"anonymous": 401, "owner": 404, "applicant": ACCEPTED, "unrelated": 404,
                  "admin": ACCEPTED, "auditor": 403},
    # an export job is its asker's alone (same key, same department): all others 404
    "job_status": {"anonymous": 404, "owner": 404, "applicant": OK, "unrelated": 404,
                   "admin": 404, "auditor": 404},
    "job_file_pending": {"anonymous": 404, "owner": 404, "applicant": 409,
                         "unrelated": 404, "admin": 404, "auditor": 404},
    "job_file_done": {"anonymous": 404, "owner": 404, "applicant": OK, "unrelated": 404,
                      "admin": 404, "auditor": 404},
    "deliveries": {"anonymous": 401, "owner": 403, "applicant": 403, "unrelated": 403,
                   "admin": OK, "auditor": OK},
    "jobs": {"anonymous": 401, "owner": 403, "applicant": 403, "unrelated": 403,
             "admin": OK, "auditor": OK},
    "receipts": {"anonymous": 401, "owner": OK, "applicant": OK, "unrelated": OK,
                 "admin": OK, "auditor": OK},
    # naming another department's code (the owner, hb: gh; gh: hb; the bureau: gh)
    "receipts_other_dept": {"anonymous": 401, "owner": 403, "applicant": 403,
                            "unrelated": 403, "admin": OK, "auditor": OK},
}
# who finds gh's subscription in GET /exchange/subscriptions
SUB_LISTED = {"owner": False, "applicant": True, "unrelated": False, "admin": True,
              "auditor": True}
# whose receipts (gh's, hb's) each caller reads
RECEIPTS_SEEN = {"owner": set(), "applicant": {APPLICANT}, "unrelated": {UNRELATED},
                 "admin": {APPLICANT, UNRELATED}, "auditor": {APPLICANT, UNRELATED}}


@pytest.fixture(scope="module")
def who(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture(scope="module")
def made(database_url):
    """What the cases leave behind, put to rest afterwards: subscriptions removed, queued
    push and export jobs dropped — no later worker (other test files share the session
    database) pushes to the test receiver or writes these exports."""
    import psycopg

    out: dict[str, list] = {"subs": [], "jobs": [], "deliveries": []}
    yield out
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE subscription SET active = false WHERE id = ANY(%s)",
                     (out["subs"],))
        conn.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo' AND "
                     "(args->>'job_id' = ANY(%s) OR args->>'delivery_id' = ANY(%s))",
                     (out["jobs"], [str(d) for d in out["deliveries"]]))


@pytest.fixture
def exports(tmp_path, monkeypatch, fresh_settings) -> Path:
    """This test's export directory (jobs run in-process write there)."""
    monkeypatch.setenv("JMGEO_EXPORT_DIR", str(tmp_path / "exports"))
    fresh_settings()
    return tmp_path / "exports"


@dataclass
class Case:
    apis: dict[str, Api]
    db: object
    caller: str
    made: dict[str, list]

    @property
    def me(self) -> Api:
        return self.apis[self.caller]

    def expect(self, action: str, r) -> None:
        want = EXPECT[action][self.caller]
        allowed = want if isinstance(want, tuple) else (want,)
        assert r.status_code in allowed, (self.caller, action, r.status_code, r.text)
        if r.status_code == 401:
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
        if r.status_code >= 400:
            assert "secret" not in r.text

    @staticmethod
    def like_missing(real, missing, send: Callable[[object], object]) -> None:
        """The answer for ``real`` equals the one for an id that does not exist."""
        mine, none = send(real), send(missing)
        assert mine.status_code == none.status_code
        assert mine.text.replace(str(real), "N") == none.text.replace(str(missing), "N")

    # -- subscriptions --------------------------------------------------------------
    def subscribe(self, label: str, layer: str):
        r = self.apis[label].post("/exchange/subscriptions",
                                  {"url": RECEIVER, "resources": [layer]})
        if r.status_code == 201:
            self.made["subs"].append(r.json()["id"])
        return r

    def subscribed(self) -> tuple[int, str]:
        """gh's subscription on a resource gh may see (unconditional, owned by gtzy)."""
        layer = fresh_resource(self.db, "unconditional", "ms")
        r = self.subscribe("applicant", layer)
        assert r.status_code == 201, r.text
        return r.json()["id"], layer

    def dead_letter(self, sid: int, layer: str, status: str = "dead") -> int:
        """A dead delivery of the resource's publish step to subscription ``sid`` (or
        one of another ``status``)."""
        step = self.db.execute("SELECT st.id FROM layer_step st JOIN layer l ON "
                               "l.id = st.layer_id WHERE l.name = %s ORDER BY st.id DESC "
                               "LIMIT 1", (layer,)).fetchone()
        assert step is not None, "publish writes a layer_step row"
        did = self.db.execute(
            "INSERT INTO push_delivery (subscription_id, step_id, status, attempts, "
            "last_status, last_error, attempted_at) VALUES (%s, %s, %s, 5, 500, "
            "'HTTP 500 from the receiver', now()) RETURNING id",
            (sid, step[0], status)).fetchone()[0]
        self.made["deliveries"].append(did)
        return did

    def sub_state(self, sid: int) -> tuple:
        """What a refused change must leave alone."""
        sub = self.db.execute("SELECT active, url, resources FROM subscription WHERE id = %s",
                              (sid,)).fetchone()
        deliveries = self.db.execute(
            "SELECT id, status, attempts, last_error FROM push_delivery WHERE "
            "subscription_id = %s ORDER BY id", (sid,)).fetchall()
        return tuple(sub), tuple(map(tuple, deliveries))

    # -- export jobs ----------------------------------------------------------------
    def job(self, label: str = "applicant", cls: str = "unconditional") -> tuple[str, str]:
        """An export job asked for by ``label`` (``?async=true``), not run; (id, layer)."""
        layer = fresh_resource(self.db, cls, "mj")
        r = self.apis[label].get(f"/downloads/{layer}", format="csv", **{"async": "true"})
        assert r.status_code == 202, r.text
        self.made["jobs"].append(r.json()["id"])
        return r.json()["id"], layer

    def counted(self, layer: str) -> int:
        return self.db.execute("SELECT count(*) FROM exchange_delivery e JOIN layer l ON "
                               "l.id = e.layer_id WHERE l.name = %s", (layer,)).fetchone()[0]

    # -- receipts -------------------------------------------------------------------
    def receipt(self, dept: str, status: str) -> tuple[int, str]:
        """A drop-folder receipt of department ``dept``; (id, its resource's name)."""
        resource = f"tfr_{dept}_{next(_SEQ)}_{int(datetime.now(UTC).timestamp() * 1000) % 10**7}"
        rid = self.db.execute(
            "INSERT INTO fep_receipt (dept_id, dept_code, resource, file_name, content_hash, "
            "status, version, message, report, archived_as, finished_at) SELECT d.id, d.code, "
            "%s, %s, 'sha256:00', %s, %s, %s, '{}'::jsonb, %s, now() FROM department d "
            "WHERE d.code = %s RETURNING id",
            (resource, f"{resource}_2026-01.csv", status,
             1 if status == "accepted" else None,
             None if status == "accepted" else "第 3 行：缺少宗地代码 / row 3: no key",
             f"{status}/{resource}_2026-01.csv", dept)).fetchone()[0]
        return rid, resource


# -- subscriptions --------------------------------------------------------------------

def act_sub_create(c: Case):
    layer = fresh_resource(c.db, "unconditional", "mc")
    before = c.db.execute("SELECT count(*) FROM subscription").fetchone()[0]
    r = c.subscribe(c.caller, layer)
    c.expect("sub_create", r)
    after = c.db.execute("SELECT count(*) FROM subscription").fetchone()[0]
    assert after == before + (1 if r.status_code == 201 else 0)
    if r.status_code == 201:
        body = r.json()
        assert body["dept"] == c.me.who.dept and body["resources"] == [layer]
        assert body["secret"] and body["signing_key_id"].startswith("whk_")
        # shown once: never again, in the listing or the one
        again = c.me.get(f"/exchange/subscriptions/{body['id']}")
        assert again.status_code == 200 and "secret" not in again.json()
        assert body["secret"] not in c.me.get("/exchange/subscriptions").text


def act_sub_create_hidden(c: Case):
    """A resource the caller may not see (conditional, no grant): 422 in the words of an
    unknown one; its owner may subscribe."""
    hidden = fresh_resource(c.db, "conditional", "mh")
    before = c.db.execute("SELECT count(*) FROM subscription").fetchone()[0]
    r = c.subscribe(c.caller, hidden)
    c.expect("sub_create_hidden", r)
    after = c.db.execute("SELECT count(*) FROM subscription").fetchone()[0]
    assert after == before + (1 if r.status_code == 201 else 0)
    if r.status_code in (401, 403, 422):
        missing = f"tx_none_{uuid.uuid4().hex[:12]}"
        c.like_missing(hidden, missing, lambda name: c.me.post(
            "/exchange/subscriptions", {"url": RECEIVER, "resources": [name]}))


def act_sub_list(c: Case):
    sid, _layer = c.subscribed()
    r = c.me.get("/exchange/subscriptions")
    if c.caller == "anonymous":
        assert r.status_code == 401
        return
    assert r.status_code == 200, r.text
    rows = r.json()["subscriptions"]
    assert (sid in {x["id"] for x in rows}) == SUB_LISTED[c.caller], c.caller
    assert all("secret" not in x for x in rows)
    if c.caller in ("owner", "applicant", "unrelated"):  # a department: its own only
        assert {x["dept"] for x in rows} <= {c.me.who.dept}, rows


def act_sub_read(c: Case):
    sid, layer = c.subscribed()

    def send(i):
        return c.me.get(f"/exchange/subscriptions/{i}")

    r = send(sid)
    c.expect("sub_read", r)
    if r.status_code == 200:
        assert r.json()["id"] == sid and r.json()["dept"] == APPLICANT
        assert r.json()["resources"] == [layer] and "secret" not in r.json()
    else:
        c.like_missing(sid, MISSING, send)


def act_sub_delete(c: Case):
    sid, _layer = c.subscribed()
    c.dead_letter(sid, _layer)
    before = c.sub_state(sid)

    def send(i):
        return c.me.delete(f"/exchange/subscriptions/{i}")

    r = send(sid)
    c.expect("sub_delete", r)
    if r.status_code >= 400:
        assert c.sub_state(sid) == before, (c.caller, "still active, log unchanged")
        if r.status_code in (401, 404):
            c.like_missing(sid, MISSING, send)
        return
    assert r.json()["active"] is False
    (active, *_), log = c.sub_state(sid)
    assert active is False and log == before[1]  # kept, with its delivery log
    kept = c.apis["applicant"].get(f"/exchange/subscriptions/{sid}")
    assert kept.status_code == 200 and kept.json()["active"] is False
    assert send(sid).status_code == 409  # already removed


def act_sub_deliveries(c: Case):
    sid, layer = c.subscribed()
    did = c.dead_letter(sid, layer)
    # a step of a resource gh may not see was recorded 'skipped': never listed, never named
    hidden = fresh_resource(c.db, "conditional", "mk")
    c.dead_letter(sid, hidden, "skipped")

    def send(i, **params):
        return c.me.get(f"/exchange/subscriptions/{i}/deliveries", **params)

    for params in ({}, {"status": "dead"}):
        r = send(sid, **params)
        c.expect("sub_deliveries", r)
        if r.status_code == 200:
            rows = r.json()["deliveries"]
            assert [(x["id"], x["subscription"], x["resource"], x["status"]) for x in rows] \
                == [(did, sid, layer, "dead")]
            assert hidden not in r.text
        else:
            c.like_missing(sid, MISSING, lambda i, p=params: send(i, **p))


def act_sub_retry(c: Case):
    sid, layer = c.subscribed()
    did = c.dead_letter(sid, layer)
    before = c.sub_state(sid)

    def send(i, d=did):
        return c.me.post(f"/exchange/subscriptions/{i}/deliveries/{d}/retry")

    r = send(sid)
    c.expect("sub_retry", r)
    if r.status_code >= 400:
        assert c.sub_state(sid) == before, (c.caller, "the dead letter stays dead")
        if r.status_code in (401, 404):
            c.like_missing(sid, MISSING, send)
            # whatever the delivery id, the same answer (it names only the subscription)
            assert send(sid, MISSING).text == r.text
        return
    assert r.json()["id"] == did and r.json()["status"] == "pending"
    status = c.db.execute("SELECT status FROM push_delivery WHERE id = %s", (did,)).fetchone()
    assert status[0] == "pending"
    assert send(sid).status_code == 409  # no longer a dead letter


# -- export jobs ------------------------------------------------------------------------

def _job_send(c: Case, suffix: str = "") -> Callable[[str], object]:
    return lambda i: c.me.get(f"/downloads/jobs/{i}{suffix}")


def act_job_status(c: Case):
    jid, layer = c.job()
    send = _job_send(c)
    r = send(jid)
    c.expect("job_status", r)
    if r.status_code == 200:
        doc = r.json()
        assert (doc["id"], doc["resource"], doc["status"]) == (jid, layer, "queued")
        assert "private" in r.headers.get("cache-control", "") or \
            "no-store" in r.headers.get("cache-control", "")
    else:
        c.like_missing(jid, MISSING_JOB, send)
        assert layer not in r.text


def act_job_file_pending(c: Case):
    jid, layer = c.job()
    send = _job_send(c, "/file")
    r = send(jid)
    c.expect("job_file_pending", r)
    if r.status_code == 409:
        assert "not done" in r.json()["description"]
    else:
        c.like_missing(jid, MISSING_JOB, send)
        assert layer not in r.text
    assert c.counted(layer) == 0


def act_job_file_done(c: Case):
    from jmgeo.downloads import jobs

    jid, layer = c.job()
    assert jobs.run(jid) == "done"
    send = _job_send(c, "/file")
    before = c.counted(layer)
    r = send(jid)
    c.expect("job_file_done", r)
    if r.status_code == 200:
        lines = r.content.decode("utf-8-sig").strip().splitlines()
        assert len(lines) == 1 + 4  # the header and the four features
        assert c.counted(layer) == before + 1
    else:
        c.like_missing(jid, MISSING_JOB, send)
        assert layer not in r.text and c.counted(layer) == before  # nothing delivered


# -- supervision: the delivery count and the job queue -----------------------------------

def act_deliveries(c: Case):
    from exchange.deliveries import record

    layer = fresh_resource(c.db, "unconditional", "md")
    record(c.db, layer=layer, dept=APPLICANT, mode="download", rows=4, nbytes=321,
           detail="matrix")
    r = c.me.get("/exchange/deliveries")
    c.expect("deliveries", r)
    if r.status_code == 200:
        mine = [d for d in r.json()["deliveries"] if d["resource"] == layer]
        assert [(d["dept"], d["mode"], d["rows"], d["bytes"]) for d in mine] == \
            [(APPLICANT, "download", 4, 321)]
    else:
        assert layer not in r.text and "deliveries" not in r.json()


def act_jobs(c: Case):
    r = c.me.get("/exchange/jobs")
    c.expect("jobs", r)
    assert ("jobs" in r.json()) == (r.status_code == 200)


# -- front-end-processor receipts ---------------------------------------------------------

def act_receipts(c: Case):
    mine = {APPLICANT: c.receipt(APPLICANT, "accepted"),
            UNRELATED: c.receipt(UNRELATED, "refused")}
    r = c.me.get("/exchange/fep/receipts", limit=1000)
    c.expect("receipts", r)
    if r.status_code != 200:
        assert all(res not in r.text for _rid, res in mine.values())
        return
    rows = r.json()["receipts"]
    ids = {x["id"] for x in rows}
    assert {d for d, (rid, _res) in mine.items() if rid in ids} == RECEIPTS_SEEN[c.caller]
    if c.caller in ("owner", "applicant", "unrelated"):
        assert {x["dept"] for x in rows} <= {c.me.who.dept}, rows
    # a filter never widens: asking for another department's resource by name
    for dept, (rid, res) in mine.items():
        r = c.me.get("/exchange/fep/receipts", resource=res)
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["receipts"]] == \
            ([rid] if dept in RECEIPTS_SEEN[c.caller] else [])
    # a department names its own code: 200, its own only
    if c.me.who.dept and c.caller != "admin":
        r = c.me.get("/exchange/fep/receipts", dept=c.me.who.dept, limit=1000)
        assert r.status_code == 200 and \
            {x["dept"] for x in r.json()["receipts"]} <= {c.me.who.dept}


def act_receipts_other_dept(c: Case):
    mine = {APPLICANT: c.receipt(APPLICANT, "accepted"),
            UNRELATED: c.receipt(UNRELATED, "refused")}
    other = UNRELATED if c.caller == "applicant" else APPLICANT
    r = c.me.get("/exchange/fep/receipts", dept=other, limit=1000)
    c.expect("receipts_other_dept", r)
    if r.status_code == 200:
        rows = r.json()["receipts"]
        assert {x["dept"] for x in rows} == {other}
        assert mine[other][0] in {x["id"] for x in rows}
    else:
        assert all(res not in r.text for _rid, res in mine.values())
        assert "receipts" not in r.json()


ACTIONS = {"sub_create": act_sub_create, "sub_create_hidden": act_sub_create_hidden,
           "sub_list": act_sub_list, "sub_read": act_sub_read, "sub_delete": act_sub_delete,
           "sub_deliveries": act_sub_deliveries, "sub_retry": act_sub_retry,
           "job_status": act_job_status, "job_file_pending": act_job_file_pending,
           "job_file_done": act_job_file_done, "deliveries": act_deliveries,
           "jobs": act_jobs, "receipts": act_receipts,
           "receipts_other_dept": act_receipts_other_dept}


@pytest.mark.parametrize(("caller", "action"), list(itertools.product(CALLERS, ACTIONS)))
def test_exchange_modes_matrix(app_client, db, who, made, exports, caller, action):
    apis = {label: Api(app_client, w) for label, w in who.items()}
    ACTIONS[action](Case(apis, db, caller, made))


def test_retry_names_only_the_subscriptions_own_deliveries(app_client, db, who, made):
    """gh retrying hb's dead letter through gh's own subscription: the 404 of a delivery
    that does not exist, and hb's dead letter stays dead."""
    apis = {label: Api(app_client, w) for label, w in who.items()}
    c = Case(apis, db, "applicant", made)
    sid, _layer = c.subscribed()
    layer = fresh_resource(db, "unconditional", "mo")
    r = c.subscribe("unrelated", layer)
    assert r.status_code == 201, r.text
    theirs = c.dead_letter(r.json()["id"], layer)

    def send(d):
        return c.me.post(f"/exchange/subscriptions/{sid}/deliveries/{d}/retry")

    assert send(theirs).status_code == 404
    c.like_missing(theirs, MISSING, send)
    assert db.execute("SELECT status FROM push_delivery WHERE id = %s",
                      (theirs,)).fetchone()[0] == "dead"


def test_export_job_is_its_keys_alone(app_client, db, who, made, exports):
    """Another key of the same department (a colleague's system) does not see the job:
    ``owns_job`` is the same key *and* the same department."""
    from jmgeo.downloads import jobs
    from layers.identity import create_key

    key = create_key(db, f"tx-colleague-{datetime.now(UTC).timestamp()}", role="department",
                     dept=APPLICANT)
    colleague = Api(app_client, Who("colleague", APPLICANT, key["token"]))
    apis = {label: Api(app_client, w) for label, w in who.items()}
    c = Case(apis, db, "applicant", made)
    jid, layer = c.job()
    for suffix in ("", "/file"):
        send = lambda i, s=suffix: colleague.get(f"/downloads/jobs/{i}{s}")  # noqa: E731
        assert send(jid).status_code == 404
        c.like_missing(jid, MISSING_JOB, send)
    assert jobs.run(jid) == "done"
    assert colleague.get(f"/downloads/jobs/{jid}/file").status_code == 404
    assert c.me.get(f"/downloads/jobs/{jid}/file").status_code == 200
    assert c.counted(layer) == 1  # the asker's fetch only


def test_anonymous_export_job(app_client, db, who, made, exports):
    """An anonymous job (open data) answers anonymous callers holding its id; a caller with
    a key gets the standard 404 (the route: "only its asker (same key, same department)")."""
    apis = {label: Api(app_client, w) for label, w in who.items()}
    c = Case(apis, db, "anonymous", made)
    jid, layer = c.job("anonymous", "open")
    assert c.me.get(f"/downloads/jobs/{jid}").json()["resource"] == layer
    for label in ("applicant", "auditor"):
        r = apis[label].get(f"/downloads/jobs/{jid}")
        assert r.status_code == 404 and layer not in r.text


def test_matrix_is_complete():
    assert all(set(row) == set(CALLERS) for row in EXPECT.values())
    assert set(EXPECT) <= set(ACTIONS)
    assert set(SUB_LISTED) == set(RECEIPTS_SEEN) == set(CALLERS) - {"anonymous"}
