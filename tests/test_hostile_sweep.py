"""The hostile-value sweep (issue 16): every path and query parameter of BOTH OpenAPI
documents — the platform's ``/openapi.json`` and pygeoapi's ``/ogc/openapi`` — gets
generated hostile values (NUL, control characters, huge and negative integers, floats,
very long strings, JSON objects, bad UTF-8 percent-encodings, bad bbox / datetime / crs
values, unknown parameters), anonymously and with a department key, against the real app.
Any 5xx fails the test. GET operations only: the sweep must not change the world it
reads. Kept under a minute by sending each hostile value once per parameter and
operation, the crafted ones only where they mean something.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
from policy_fixtures import build_world

# (raw, already percent-encoded for the URL): raw bytes a client may send
GENERIC = ["%00", "a%00b", "%01%1F%7F", "%ff%fe", "%c0%af", "%e4%b8", str(2 ** 64),
           str(-(2 ** 63) - 1), "-1", "0", "1e400", "nan", "-inf", "0.5", "x" * 5000,
           quote('{"a":1}'), quote("[1,[2]]"), quote("'; drop table layer; --"), "",
           quote("../../etc/passwd"), quote("\u202e\u4e2d\u6587"), "%25", "true"]
CRAFTED = {
    "bbox": ["1,2,3", "a,b,c,d", "1e309,0,1,1", "nan,nan,nan,nan", "113,22,112,21",
             "-1000,-1000,1000,1000", "1,2,3,4,5,6,7"],
    "datetime": ["2025-13-45", "../..", "2025-01-01/..", "9999-99-99T99:99:99Z",
                 "0000-00-00", "2025-01-01T00:00:00+99:00", "/"],
    "crs": ["EPSG:99999", quote("http://www.opengis.net/def/crs/EPSG/0/999999"), "bogus",
            quote("http://www.opengis.net/def/crs/EPSG/0/3857")],
    "bbox-crs": ["EPSG:99999", "bogus", quote("http://www.opengis.net/def/crs/EPSG/0/3857")],
    "filter": ["area%3E1e400", "name%3D%27%00%27", "INTERSECTS(geometry,POINT(1e400 0))",
               quote("S_INTERSECTS(geom, BBOX(1,2))"), quote("((((((")],
    "sortby": ["-", "+%00", "nonexistent", ",,,"],
    "properties": [",,", "%00", "nonexistent"],
    "subset": ["Lat(a:b)", "Lat(1e400:2)", "x(%00)"],
    "cursor": ["eyJ2IjoxLCJrIjpbeyJhIjoxfV19", "%00", "e30", "W10"],
    "lang": ["*", "zz-ZZ", "%00"],
}
BASE_PATH_VALUES = {"code": "440703", "layer": "tpol_open", "name": "tpol_open",
                    "key": "x", "fontstack": "Noto Sans Regular", "range": "0-255"}
HOSTILE_PATH = ["%00", "a%00b", "%ff", str(2 ** 64), "-1", "x" * 3000, quote("{}"),
                quote("'; --"), "..", "%2e%2e", "%0a"]
COLLECTIONS = ["tpol_open", "tpol_tab_open", "tpol_conditional", "regions"]


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


@pytest.fixture(scope="module")
def client(database_url):
    """The real app, answering an unhandled error as the 500 a client would get."""
    from fastapi.testclient import TestClient

    from jmgeo.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _parameters(doc: dict, op: dict, path_item: dict) -> list[tuple[str, str]]:
    """(name, in) of an operation's parameters, $refs resolved (pygeoapi refers to the
    OGC schemas by URL: the name is the reference's last segment)."""
    out = []
    for param in [*path_item.get("parameters", []), *op.get("parameters", [])]:
        if "$ref" in param:
            ref = param["$ref"]
            if ref.startswith("#/"):
                node = doc
                for part in ref[2:].split("/"):
                    node = node.get(part, {})
                param = node or {"name": _ref_name(ref), "in": "query"}
            else:
                param = {"name": _ref_name(ref), "in": "query"}
        name = param.get("name")
        if name:
            where = param.get("in", "query")
            out.append((name, where))
    return out


def _fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "1"), template)


class Rotation:
    """Hands out ``n`` values of a list at a time, continuing where it stopped: each
    parameter gets a few hostile values, and across parameters every value is sent many
    times — all of them, in a minute."""

    def __init__(self, values: list[str], start: int = 0):
        self.values, self.i = values, start

    def take(self, n: int) -> list[str]:
        out = [self.values[(self.i + k) % len(self.values)] for k in range(n)]
        self.i += n
        return out


PER_PARAM = 3


def _requests(doc: dict, prefix: str, start: int = 0):
    """(url, what) pairs: for each GET operation, each parameter with hostile values
    (path parameters in place, query parameters one at a time: the crafted ones for its
    name and a few generic ones), an unknown parameter, and a hostile collection id."""
    generic, in_path = Rotation(GENERIC, start), Rotation(HOSTILE_PATH, start)
    for template, path_item in doc.get("paths", {}).items():
        op = path_item.get("get")
        if not isinstance(op, dict):
            continue
        params = _parameters(doc, op, path_item)
        base = {n: BASE_PATH_VALUES.get(n, "1") for n, w in params if w == "path"}
        base_url = prefix + _fill(template, base)
        yield f"{base_url}?jmgeo_unknown=%00x", (template, "unknown")
        for name, where in params:
            if where == "path":
                for value in in_path.take(PER_PARAM):
                    yield prefix + _fill(template, {**base, name: value}), (template, name)
            elif where == "query":
                for value in [*CRAFTED.get(name, []), *generic.take(PER_PARAM)]:
                    yield f"{base_url}?{quote(name)}={value}", (template, name)
        # the collection itself hostile, where the path names one
        for cid in COLLECTIONS:
            if f"/collections/{cid}/" in base_url or base_url.endswith(f"/collections/{cid}"):
                for value in in_path.take(2):
                    yield base_url.replace(f"/collections/{cid}", f"/collections/{value}", 1), \
                        (template, "collectionId")
                break


def _ogc_doc(client, headers) -> dict:
    r = client.get("/ogc/openapi", params={"f": "json"}, headers=headers)
    assert r.status_code == 200, r.text[:200]
    doc = r.json()
    # one collection of each kind is enough: collection paths differ only in their id
    keep = {}
    for path, item in doc["paths"].items():
        m = re.match(r"^/collections/([^/]+)(/.*)?$", path)
        if m and m.group(1) not in COLLECTIONS:
            continue
        keep[path] = item
    return {**doc, "paths": keep}


def test_no_hostile_value_gets_a_server_error(client, world):
    callers = [("anonymous", {}), ("department", {"X-API-Key": world["limited_grant"].token})]
    platform = client.get("/openapi.json").json()
    bad, sent, covered = [], 0, set()
    started = time.monotonic()
    for start, (label, headers) in enumerate(callers):
        for doc, prefix in ((platform, ""), (_ogc_doc(client, headers), "/ogc")):
            for url, what in _requests(doc, prefix, start * PER_PARAM):
                r = client.get(url, headers=headers)
                sent += 1
                covered.add((prefix, *what))
                if r.status_code >= 500:
                    bad.append((label, url[:160], r.status_code, r.text[:160]))
    elapsed = time.monotonic() - started
    assert bad == [], f"{len(bad)} of {sent} requests answered 5xx:\n" + "\n".join(
        map(str, bad[:40]))
    assert sent > 1500 and len({c for c in covered if c[0] == "/ogc"}) > 100
    assert len({c for c in covered if c[0] == ""}) > 60
    # ~2,000 requests, about 30 CPU-seconds; wall time depends on the machine's load
    print(f"hostile sweep: {sent} requests in {elapsed:.0f} s")
