"""系统对接 pushes (issue 11 §2) over real processes: a ``jmgeo worker`` subprocess
dispatches the publish outbox and pushes to real HTTP receivers on 127.0.0.1; the test
checks each push's HMAC signature and its exact change set, retries and the dead letter
of a failing receiver, the requeue after it recovers, that a department never hears of a
resource it may not see, the refusals at registration and who may use which endpoint.

The worker dispatches every second and retries 0.2 s, 0.4 s apart, 3 attempts at most
(``JMGEO_PUSH_*``, ``JMGEO_WORKER_POLL``), so the whole module takes seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from exchange_fixtures import Api, make_callers
from test_feeds import _v1, changed, publish_version, resource

from conftest import REPO, stop_process
from layers import registry
from layers.grants import add_grant

PUBLIC = "http://platform.test"
MAX_ATTEMPTS = 3
MAX_CHANGES = 3  # a pushed change set holds at most this many records


def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    """What a receiver does (the README's snippet): recompute the HMAC over
    ``timestamp.body``, compare in constant time, refuse stale timestamps."""
    ts = headers["X-Jmgeo-Timestamp"]
    if abs(time.time() - int(ts)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Jmgeo-Signature"], f"sha256={mac}")


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST, answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 — http.server's spelling
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(b) for _h, b in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[[], Receiver]]:
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver())
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def worker(database_url: str) -> Iterator[subprocess.Popen]:
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONPATH=str(REPO),
               JMGEO_PUBLIC_URL=PUBLIC, JMGEO_PUSH_DISPATCH_EVERY="1",
               JMGEO_PUSH_MAX_ATTEMPTS=str(MAX_ATTEMPTS), JMGEO_PUSH_RETRY_BASE="0.2",
               JMGEO_PUSH_TIMEOUT="3", JMGEO_WORKER_POLL="0.2",
               JMGEO_PUSH_MAX_CHANGES=str(MAX_CHANGES))
    proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker"], env=env, cwd=REPO)
    yield proc
    stop_process(proc)


@pytest.fixture(scope="module")
def who(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture
def api(app_client, who):
    return {label: Api(app_client, w) for label, w in who.items()}


@pytest.fixture(autouse=True)
def _quiet(database_url):
    """Each test's subscriptions end with it: later publishes push nowhere old."""
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE subscription SET active = false")


def _poll(what: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)
    return got


def subscribe(api: Api, url: str, resources=None, with_changes=False) -> dict:
    body = {"url": url, "with_changes": with_changes}
    if resources is not None:
        body["resources"] = resources
    r = api.post("/exchange/subscriptions", body)
    assert r.status_code == 201, r.text
    return r.json()


def log(api: Api, sid: int, **params) -> list[dict]:
    r = api.get(f"/exchange/subscriptions/{sid}/deliveries", **params)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def test_a_publish_pushes_a_signed_notification_with_the_exact_change_set(
        api, db, worker, receiver):
    name = resource(db, "conditional", "vector")
    v1 = _v1()
    publish_version(db, name, v1, kind="vector")  # before the subscriptions: not pushed
    base = registry.require_layer(db, name)["current_version"]
    add_grant(db, layer=name, dept="gh", purpose="规划", approved_by="测试",
              fields=["name", "area"], regions=["440703"])
    gh_rx, owner_rx = receiver(), receiver()
    gh = subscribe(api["applicant"], gh_rx.url, [name], with_changes=True)
    owner = subscribe(api["owner"], owner_rx.url, [name])
    assert gh["secret"] and gh["signing_key_id"].startswith("whk_")
    v2 = dict(v1)
    lon, lat, qlr, phone, sfz, area, county = v2["北街地块"]
    v2["北街地块"] = (lon, lat, qlr, "13000000000", sfz, area, county)  # phone: not granted
    lon, lat, qlr, phone, sfz, area, county = v2["白沙地块"]
    v2["白沙地块"] = (112.79, 22.255, qlr, phone, sfz, area, "440781")  # leaves 蓬江区
    lon, lat, qlr, phone, sfz, area, county = v2["台城地块"]
    v2["台城地块"] = (113.075, 22.59, qlr, phone, sfz, 77.5, "440703")  # enters 蓬江区
    version = publish_version(db, name, v2, kind="vector")
    _poll(lambda: gh_rx.received and owner_rx.received)
    time.sleep(1.5)  # a second dispatch must not push again
    assert len(gh_rx.received) == 1 and len(owner_rx.received) == 1
    headers, raw = gh_rx.received[0]
    assert verify(gh["secret"], headers, raw)
    assert not verify(owner["secret"], headers, raw)
    assert headers["X-Jmgeo-Key-Id"] == gh["signing_key_id"]
    body = json.loads(raw)
    assert headers["X-Jmgeo-Delivery"] == str(body["delivery"])
    assert {k: body[k] for k in ("event", "resource", "from_version", "to_version")} == {
        "event": "publish", "resource": name, "from_version": base, "to_version": version}
    assert body["pull"] == f"{PUBLIC}/exchange/feeds/{name}?since={base}"
    ch = body["changes"]
    assert ch["truncated"] is False and ch["count"] == 2
    # exactly what the department's own pull returns: its regions, its fields
    pulled = [json.loads(line) for line in api["applicant"].get(
        f"/exchange/feeds/{name}", since=base).text.splitlines()]
    assert ch["records"] == pulled
    by = {r["key"]: r for r in ch["records"]}
    assert {k: r["op"] for k, r in by.items()} == {"白沙地块": "delete", "台城地块": "insert"}
    assert by["台城地块"]["properties"] == {"name": "台城地块", "area": 77.5}
    assert by["台城地块"]["geometry"]["coordinates"] == [[113.075, 22.59]]
    # the owner asked for notifications only
    oh, oraw = owner_rx.received[0]
    assert verify(owner["secret"], oh, oraw) and "changes" not in json.loads(oraw)
    # the delivery log, the audit and the delivery count
    (d,) = _poll(lambda: [x for x in log(api["applicant"], gh["id"])
                          if x["status"] == "delivered"])
    assert (d["attempts"], d["last_status"], d["bytes"], d["step"]) == (1, 200, len(raw),
                                                                          body["step"])
    assert d["delivered_at"] and d["resource"] == name
    assert db.execute("SELECT action, dept_code, rows FROM audit_log WHERE layer = %s AND "
                      "action = 'push'", (name,)).fetchall() == [("push", "gh", 2)]
    counted = _poll(lambda: db.execute(
        "SELECT e.mode, d.code, e.rows, e.bytes FROM exchange_delivery e JOIN layer l ON "
        "l.id = e.layer_id JOIN department d ON d.id = e.dept_id WHERE l.name = %s AND "
        "e.detail LIKE 'push %%'", (name,)).fetchall())
    assert counted == [("system", "gh", 2, len(raw))]  # the owner got no data: not counted


def test_a_failing_receiver_is_retried_then_dead_lettered_and_requeued(
        api, db, worker, receiver):
    name = resource(db, "unconditional", "table")
    rx = receiver()
    rx.status = 500
    sub = subscribe(api["owner"], rx.url, [name], with_changes=True)
    publish_version(db, name, changed(_v1()), kind="table")
    (dead,) = _poll(lambda: log(api["owner"], sub["id"], status="dead"))
    assert dead["attempts"] == MAX_ATTEMPTS and dead["last_status"] == 500
    assert "HTTP 500" in dead["last_error"] and dead["delivered_at"] is None
    assert len(rx.received) == MAX_ATTEMPTS
    assert all(verify(sub["secret"], h, b) for h, b in rx.received)
    assert {h["X-Jmgeo-Delivery"] for h, _b in rx.received} == {str(dead["id"])}
    listed = api["owner"].get("/exchange/subscriptions").json()["subscriptions"]
    assert [s["dead"] for s in listed if s["id"] == sub["id"]] == [1]
    assert not db.execute("SELECT 1 FROM exchange_delivery e JOIN layer l ON l.id = "
                          "e.layer_id WHERE l.name = %s", (name,)).fetchall()
    path = f"/exchange/subscriptions/{sub['id']}/deliveries/{dead['id']}/retry"
    assert api["auditor"].post(path).status_code == 403
    assert api["anonymous"].post(path).status_code == 401
    hidden = api["unrelated"].post(path)  # not hb's: as if it did not exist
    absent = api["unrelated"].post("/exchange/subscriptions/999999/deliveries/1/retry")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["description"].replace(str(sub["id"]), "N") == \
        absent.json()["description"].replace("999999", "N")
    rx.status = 204
    r = api["owner"].post(path)
    assert r.status_code == 202 and r.json()["status"] == "pending"
    _poll(lambda: log(api["owner"], sub["id"], status="delivered"))
    (d,) = log(api["owner"], sub["id"])
    assert d["attempts"] == MAX_ATTEMPTS + 1 and d["last_status"] == 204
    assert len(rx.received) == MAX_ATTEMPTS + 1
    # four changes, three pushed: the rest is the pull link's
    ch = json.loads(rx.received[-1][1])["changes"]
    assert (ch["count"], ch["truncated"], len(ch["records"])) == (MAX_CHANGES, True, MAX_CHANGES)
    assert ch["next"] == f"{PUBLIC}/exchange/feeds/{name}?since=1"
    again = api["owner"].post(path)
    assert again.status_code == 409 and "dead" in again.json()["description"]


def test_no_push_for_a_resource_the_department_may_not_see(api, db, worker, receiver):
    hidden = resource(db, "conditional", "table")  # hb holds no grant
    seen = resource(db, "unconditional", "table")
    rx = receiver()
    sub = subscribe(api["unrelated"], rx.url, with_changes=True)  # every visible resource
    assert sub["resources"] is None
    publish_version(db, hidden, changed(_v1()), kind="table")
    publish_version(db, seen, changed(_v1()), kind="table")
    _poll(lambda: [b for b in rx.bodies() if b["resource"] == seen])
    time.sleep(1.5)
    assert [b["resource"] for b in rx.bodies()] == [seen]
    body = rx.bodies()[0]
    assert "*" in str(body["changes"]["records"][0]["properties"]["phone"])  # masked
    assert [d["resource"] for d in log(api["unrelated"], sub["id"])] == [seen]
    # a grant given later does not replay the step it could not see
    add_grant(db, layer=hidden, dept="hb", purpose="环保", approved_by="测试")
    time.sleep(1.5)
    assert [b["resource"] for b in rx.bodies()] == [seen]
    # a rollback is pushed too, with its own (inverse) change set
    registry.rollback(db, seen, 1)
    back = _poll(lambda: [b for b in rx.bodies() if b["event"] == "rollback"])[0]
    assert (back["resource"], back["from_version"], back["to_version"]) == (seen, 2, 1)
    inverse = {"北街地块": "update", "白沙地块": "insert", "新会地块": "delete",
               "台城地块": "update"}
    got = {r["key"]: r["op"] for r in back["changes"]["records"]}
    assert len(got) == MAX_CHANGES and got.items() <= inverse.items()  # 3 of the 4
    assert back["changes"]["truncated"] is True


def test_registration_refuses_what_could_never_be_delivered(api, db, receiver):
    rx = receiver()
    name = resource(db, "unconditional", "table")
    hidden = resource(db, "conditional", "table")
    gh = api["applicant"]
    cases = {"ftp://127.0.0.1/hook": "http", "http://no-such-host.invalid/hook": "resolve",
             "http:///hook": "host", "https://user:pw@127.0.0.1/hook": "password",
             "127.0.0.1:8000/hook": "http"}
    for url, word in cases.items():
        r = gh.post("/exchange/subscriptions", {"url": url})
        assert r.status_code == 422, (url, r.text)
        assert "url" in r.json()["description"] and word in r.json()["description"], r.text
    unknown = gh.post("/exchange/subscriptions", {"url": rx.url, "resources": ["tx_nope_1"]})
    secret = api["unrelated"].post("/exchange/subscriptions", {"url": rx.url,
                                                               "resources": [hidden]})
    assert unknown.status_code == secret.status_code == 422
    assert "resources" in unknown.json()["description"]
    assert unknown.json()["description"].replace("tx_nope_1", "X") == \
        secret.json()["description"].replace(hidden, "X")  # no oracle
    r = gh.post("/exchange/subscriptions", {"url": rx.url, "resources": []})
    assert r.status_code == 422 and "resources" in r.json()["description"]
    assert api["anonymous"].post("/exchange/subscriptions", {"url": rx.url}).status_code == 401
    assert api["auditor"].post("/exchange/subscriptions", {"url": rx.url}).status_code == 403
    assert gh.post("/exchange/subscriptions", {"url": rx.url, "bogus": 1}).status_code == 422
    before = db.execute("SELECT count(*) FROM subscription").fetchone()[0]
    ok = gh.post("/exchange/subscriptions", {"url": rx.url, "resources": [name, name]})
    assert ok.status_code == 201 and ok.json()["resources"] == [name]
    assert db.execute("SELECT count(*) FROM subscription").fetchone()[0] == before + 1


def test_who_may_read_and_change_subscriptions(api, receiver):
    rx = receiver()
    gh = subscribe(api["applicant"], rx.url)
    hb = subscribe(api["unrelated"], rx.url)
    mine = api["applicant"].get("/exchange/subscriptions").json()["subscriptions"]
    assert gh["id"] in {s["id"] for s in mine} and hb["id"] not in {s["id"] for s in mine}
    assert all("secret" not in s for s in mine)
    for label in ("admin", "auditor"):
        every = api[label].get("/exchange/subscriptions").json()["subscriptions"]
        assert {gh["id"], hb["id"]} <= {s["id"] for s in every}
        assert api[label].get(f"/exchange/subscriptions/{gh['id']}").status_code == 200
        assert api[label].get(f"/exchange/subscriptions/{gh['id']}/deliveries"
                              ).status_code == 200
    assert "secret" not in api["applicant"].get(f"/exchange/subscriptions/{gh['id']}").json()
    assert api["anonymous"].get("/exchange/subscriptions").status_code == 401
    other = api["applicant"].get(f"/exchange/subscriptions/{hb['id']}")
    nothing = api["applicant"].get("/exchange/subscriptions/999999")
    assert other.status_code == nothing.status_code == 404
    assert other.json()["code"] == nothing.json()["code"]
    assert api["applicant"].get(f"/exchange/subscriptions/{hb['id']}/deliveries"
                                ).status_code == 404
    assert api["applicant"].client.delete(f"/exchange/subscriptions/{hb['id']}", headers=api[
        "applicant"].who.headers).status_code == 404
    assert api["auditor"].client.delete(f"/exchange/subscriptions/{gh['id']}", headers=api[
        "auditor"].who.headers).status_code == 403
    r = api["applicant"].client.delete(f"/exchange/subscriptions/{gh['id']}",
                                       headers=api["applicant"].who.headers)
    assert r.status_code == 200 and r.json()["active"] is False
    assert api["applicant"].client.delete(f"/exchange/subscriptions/{gh['id']}", headers=api[
        "applicant"].who.headers).status_code == 409
    r = api["admin"].client.delete(f"/exchange/subscriptions/{hb['id']}",
                                   headers=api["admin"].who.headers)
    assert r.status_code == 200
    bad = api["applicant"].get(f"/exchange/subscriptions/{gh['id']}/deliveries",
                               status="bogus")
    assert bad.status_code == 422


def test_cli_add_list_deliveries(db, receiver, capsys):
    from jmgeo.cli import main

    rx = receiver()
    name = resource(db, "unconditional", "table")
    assert main(["subscription", "add", rx.url, "--as", "hb", "--resources", name,
                 "--with-changes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["secret"] and out["resources"] == [name] and out["dept"] == "hb"
    assert main(["subscription", "list", "--as", "hb"]) == 0
    assert f"订阅 {out['id']}  active  hb → {rx.url}" in capsys.readouterr().out
    assert main(["subscription", "deliveries", str(out["id"]), "--as-auditor"]) == 0
    assert "0 delivery(ies)" in capsys.readouterr().out
    assert main(["subscription", "add", "ftp://x/y", "--as", "hb"]) == 2
    assert "http" in capsys.readouterr().err
    assert main(["subscription", "retry", str(out["id"]), "1", "--as-auditor"]) == 2


def test_the_reference_receiver_verifies_real_pushes(api, db, worker, live_server):
    """The platform's own receiver (the demo's subscription target): a push from the
    worker verifies there and is delivered; a forged or stale one is refused."""
    import httpx

    name = resource(db, "unconditional", "table")
    sub = subscribe(api["unrelated"], f"{live_server}/exchange/webhook-test", [name])
    publish_version(db, name, changed(_v1()), kind="table")
    done = _poll(lambda: log(api["unrelated"], sub["id"], status="delivered"))
    assert done[0]["last_status"] == 200
    body = b'{"event": "publish"}'
    ts = str(int(time.time()))
    good = "sha256=" + hmac.new(sub["secret"].encode(), ts.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
    hdr = {"X-Jmgeo-Key-Id": sub["signing_key_id"], "X-Jmgeo-Timestamp": ts}
    url = f"{live_server}/exchange/webhook-test"
    ok = httpx.post(url, content=body, headers={**hdr, "X-Jmgeo-Signature": good})
    assert ok.status_code == 200 and ok.json()["verified"] is True
    forged = httpx.post(url, content=body + b" ", headers={**hdr, "X-Jmgeo-Signature": good})
    stale = httpx.post(url, content=body, headers={
        **hdr, "X-Jmgeo-Timestamp": str(int(ts) - 3600), "X-Jmgeo-Signature": good})
    unknown = httpx.post(url, content=body, headers={
        **hdr, "X-Jmgeo-Key-Id": "whk_nobody", "X-Jmgeo-Signature": good})
    for r in (forged, stale, unknown):
        assert r.status_code == 401 and " / " in r.json()["description"]
