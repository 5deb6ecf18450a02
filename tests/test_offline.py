"""Offline by construction, over HTTP (issue 13 part 3): every HTML page carries the strict
Content-Security-Policy and nothing else changes; /docs is the local Swagger UI; the OGC
OpenAPI document is self-contained (every ``$ref`` resolves inside the platform) and
valid OpenAPI 3.0; pygeoapi's HTML pages name no other origin. The browser half (what
a real browser loads and refuses) is tests/test_offline_browser.py.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import psycopg
import pytest
from policy_fixtures import build_world, layer_name
from test_coverages import make_cog

from jmgeo.ogc.compat import validate_openapi_document
from jmgeo.ogc.openapi_bundle import building_blocks, external_refs, reference_key
from jmgeo.web import CONTENT_SECURITY_POLICY

OPEN = layer_name("open")
OPEN_TABLE = layer_name("open", "table")
RASTER = "toff_dem_open"
BASE = "http://testserver"


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    """The policy world plus one open raster, so the document has every kind of
    collection the platform serves (features, table, records, tiles, maps, coverage)."""
    from layers.registry import publish

    callers = build_world(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (RASTER,)).fetchone():
            path = tmp_path_factory.mktemp("cog") / f"{RASTER}_v1.tif"
            make_cog(path)
            publish(conn, layer=RASTER, version=1, table_name=f"file:{path}",
                    feature_count=0, report={"kind": "raster"}, title="离线测试高程",
                    dept="gtzy", theme="land", sharing_class="open", kind="raster")
    yield callers
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM layer WHERE name = %s", (RASTER,))


# -- the page policy --------------------------------------------------------------------

def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


HTML_PAGES = ("/docs", "/ogc?f=html", "/ogc/collections?f=html", "/ogc/conformance?f=html",
              "/ogc/openapi?f=html", f"/ogc/collections/{OPEN}?f=html",
              f"/ogc/collections/{OPEN}/items?f=html", "/ogc/collections/nope?f=html")


@pytest.mark.parametrize("path", HTML_PAGES)
def test_every_html_page_carries_the_strict_policy(app_client, world, path):
    r = app_client.get(path)
    assert r.headers["content-type"].startswith("text/html"), path
    policy = directives(r.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    # nothing in the policy names another origin, nor loosens scripts
    assert not re.search(r"https?:|\*|unsafe-", r.headers["content-security-policy"])
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", ("/health", "/ogc?f=json", "/openapi.json",
                                  "/static/docs/swagger-init.js",
                                  f"/ogc/collections/{OPEN}/items?f=json"))
def test_other_responses_are_unaffected(app_client, world, path):
    r = app_client.get(path)
    assert r.status_code == 200, path
    assert "text/html" not in r.headers["content-type"]
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert name not in r.headers, (path, name)


def test_the_policy_constant_is_what_is_sent(app_client):
    assert app_client.get("/docs").headers["content-security-policy"] == CONTENT_SECURITY_POLICY


# -- pages name no other origin ---------------------------------------------------------

class Assets(HTMLParser):
    """Every URL a page makes the browser load (scripts, styles, images, icons, frames),
    and whether it has inline script or style."""

    LOADING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"),
               ("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src"),
               ("object", "data")}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and (attrs.get("rel") or "") not in ("stylesheet", "icon",
                                                              "shortcut icon", "preload",
                                                              "modulepreload"):
            pass  # a link to another document loads nothing
        else:
            for t, a in self.LOADING:
                if tag == t and attrs.get(a):
                    self.urls.append(attrs[a])
        if "style" in attrs:
            self.inline.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in attrs):
            self.inline.append(f"event handler on <{tag}>")
        if tag == "style":
            self.inline.append("<style>")
        self._in_script = tag == "script" and not attrs.get("src") and attrs.get(
            "type", "text/javascript") in ("text/javascript", "module", "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("inline <script>")
            self._in_script = False


OGC_PAGES = ("/ogc?f=html", "/ogc/collections?f=html", "/ogc/conformance?f=html",
             "/ogc/openapi?f=html", "/ogc/TileMatrixSets?f=html",
             "/ogc/TileMatrixSets/WebMercatorQuad?f=html",
             "/ogc/collections/regions?f=html", "/ogc/collections/regions/items?f=html",
             "/ogc/collections/regions/items/440703?f=html",
             f"/ogc/collections/{OPEN}?f=html", f"/ogc/collections/{OPEN}/items?f=html",
             f"/ogc/collections/{OPEN}/items/1?f=html",
             f"/ogc/collections/{OPEN}/queryables?f=html",
             f"/ogc/collections/{OPEN}/schema?f=html",
             f"/ogc/collections/{OPEN}/tiles?f=html",
             f"/ogc/collections/{OPEN}/tiles/WebMercatorQuad?f=html",
             f"/ogc/collections/{OPEN_TABLE}/items?f=html",
             f"/ogc/collections/{RASTER}?f=html",
             "/ogc/collections/catalog/items?f=html", "/ogc/collections/nope?f=html")


@pytest.mark.parametrize("path", ("/docs", *OGC_PAGES))
def test_pages_load_only_from_the_platform(app_client, world, path):
    r = app_client.get(path)
    assert r.headers["content-type"].startswith("text/html"), path
    page = Assets()
    page.feed(r.text)
    for url in page.urls:
        absolute = urljoin(f"{BASE}{path}", url)
        assert urlsplit(absolute).netloc == "testserver", (path, url)
        assert app_client.get(absolute).status_code == 200, (path, url)
    assert page.inline == [], (path, page.inline)
    assert "unpkg.com" not in r.text and "cdn" not in r.text.lower(), path


def test_redoc_is_off_and_docs_is_local(app_client):
    assert app_client.get("/redoc").status_code == 404
    page = app_client.get("/docs").text
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert 'data-spec-url="/openapi.json"' in page


# -- the OGC OpenAPI document -------------------------------------------------------------

def resolve(document: dict, ref: str):
    """Follow a local JSON pointer (``#/a/b~1c``); KeyError when it points nowhere."""
    node = document
    for token in ref.removeprefix("#/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def all_refs(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.append(node["$ref"])
        for value in node.values():
            out.extend(all_refs(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(all_refs(value))
    return out


@pytest.mark.parametrize("who", ("anonymous", "owner", "limited_grant"))
def test_ogc_openapi_is_self_contained(app_client, world, who):
    caller = world[who]
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    r = app_client.get("/ogc/openapi?f=json", headers=headers)
    assert r.status_code == 200
    oas = r.json()
    refs = all_refs(oas)
    assert len(refs) > 100  # the document is the real one, with its references
    assert external_refs(oas) == set(), sorted(external_refs(oas))[:5]
    for ref in set(refs):
        assert ref.startswith("#/"), ref  # resolvable without leaving the document
        target = resolve(oas, ref)
        assert isinstance(target, dict) and target, ref
    # the building blocks arrived: the Features responses, tiles parameters, CQL2 …
    for name in ("NotFound", "ServerError", "InvalidParameter", "Features", "LandingPage"):
        assert name in oas["components"]["responses"]
    for name in ("tileMatrix", "tileRow", "tileCol", "featureId", "datetime", "subset"):
        assert name in oas["components"]["parameters"]
    assert "cql2Expression" in oas["components"]["schemas"]
    assert RASTER in {p.split("/")[2] for p in oas["paths"] if p.startswith("/collections/")}
    assert validate_openapi_document(oas)


def test_servers_and_links_of_the_document_stay_on_the_platform(app_client, world):
    oas = app_client.get("/ogc/openapi?f=json").json()
    for server in oas.get("servers", []):
        assert urlsplit(server["url"]).netloc in ("testserver", ""), server


def test_every_mapped_reference_has_its_component():
    mapping, authored = building_blocks()
    for key, target in mapping.items():
        kind, _, name = target.partition("/")
        assert name in authored[kind], (key, target)
        for ref in all_refs(authored[kind][name]):
            assert ref.startswith("#/components/"), ref
            kind2, _, name2 = ref.removeprefix("#/components/").partition("/")
            assert name2 in authored[kind2], ref


def test_reference_keys_ignore_the_schema_host():
    a = reference_key("https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/"
                      "ogcapi-features-1.yaml#/components/responses/NotFound")
    b = reference_key("http://127.0.0.1:5000/schemas/ogcapi/features/part1/1.0/openapi/"
                      "ogcapi-features-1.yaml#/components/responses/NotFound")
    assert a == b == "ogcapi-features-1.yaml#/components/responses/NotFound"
    assert reference_key("#/components/parameters/f") is None


def test_html_pages_are_rendered_with_the_callers_own_configuration(app_client, world):
    """pygeoapi caches one translated configuration per locale for the whole process;
    with one configuration per audience an HTML page must still be drawn from the
    caller's own (jmgeo.ogc.patches.translate_struct): a keyed caller's conditional
    collection renders, and the anonymous list never names it."""
    conditional = layer_name("conditional")
    owner = {"Authorization": f"Bearer {world['owner'].token}"}
    for _ in range(2):  # each order of first use
        anon = app_client.get("/ogc/collections", params={"f": "html"})
        assert anon.status_code == 200 and conditional not in anon.text
        keyed = app_client.get(f"/ogc/collections/{conditional}", params={"f": "html"},
                               headers=owner)
        assert keyed.status_code == 200, keyed.text[:300]
        assert conditional in keyed.text
        anon = app_client.get(f"/ogc/collections/{OPEN}", params={"f": "html"})
        assert anon.status_code == 200 and conditional not in anon.text
