"""A small world for the exchange API tests: callers with keys and fresh resources.

Callers: the applicant 城乡规划局 (gh), the owner 国土资源局 (gtzy), an unrelated
department 环境保护局 (hb), the bureau's admin (网信统筹局 wxtc) and the auditor — plus
anonymous. Every test gets resources of its own (``fresh_resource``: the four test
features of ``policy_fixtures``, owned by gtzy) so requests of one test never meet
another's (nor the grants of the policy world in the same session database).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from policy_fixtures import OWNER, create_layer

APPLICANT, UNRELATED, BUREAU = "gh", "hb", "wxtc"
_SEQ = itertools.count(1)


@dataclass(frozen=True)
class Who:
    label: str
    dept: str | None
    token: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.token} if self.token else {}


def make_callers(conn: psycopg.Connection) -> dict[str, Who]:
    """anonymous, owner (gtzy), applicant (gh), unrelated (hb), admin (wxtc), auditor."""
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS, create_key

    ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
    stamp = datetime.now(UTC).timestamp()
    out = {"anonymous": Who("anonymous", None, None)}
    for label, role, dept in (("owner", "department", OWNER),
                              ("applicant", "department", APPLICANT),
                              ("unrelated", "department", UNRELATED),
                              ("admin", "admin", BUREAU), ("auditor", "auditor", None)):
        key = create_key(conn, f"tx-{label}-{stamp}", role=role, dept=dept)
        out[label] = Who(label, dept, key["token"])
    return out


def fresh_resource(conn: psycopg.Connection, cls: str, tag: str = "r") -> str:
    """A new published layer of sharing class ``cls`` owned by gtzy; its name."""
    name = f"tx_{tag}_{cls[:4]}_{next(_SEQ)}_{int(datetime.now(UTC).timestamp() * 1000) % 10**7}"
    create_layer(conn, name, cls)
    return name


class Api:
    """The exchange API as one caller uses it (every answer < 500; never publicly cacheable
    but anonymous OGC answers, which hold open data only)."""

    def __init__(self, client, who: Who):
        self.client, self.who = client, who

    def _check(self, r):
        assert r.status_code < 500, r.text
        if self.who.token or r.url.path.startswith("/exchange"):
            assert "public" not in r.headers.get("cache-control", "")
        if r.status_code >= 400 and r.url.path.startswith("/exchange"):
            # the seam's envelope, bilingual (the OGC routes answer pygeoapi's own)
            body = r.json()
            assert set(body) >= {"code", "description"}, body
            assert " / " in body["description"], body
        return r

    def get(self, path: str, **params):
        return self._check(self.client.get(path, params=params, headers=self.who.headers))

    def post(self, path: str, body: dict | None = None, **params):
        return self._check(self.client.post(
            path, params=params, headers={**self.who.headers,
                                          "Content-Type": "application/json"},
            content=json.dumps(body if body is not None else {}, default=str)))

    def delete(self, path: str):
        return self._check(self.client.delete(path, headers=self.who.headers))

    def file(self, resource: str, **fields):
        body = {"resource": resource, "purpose": "国土空间规划编制", "basis": "《城乡规划法》第十四条",
                "mode": "download", "contact": "规划科 0750-0000000", **fields}
        return self.post("/exchange/requests", body)

    def request(self, request_id: int):
        return self.get(f"/exchange/requests/{request_id}")
