"""The conformance declaration: what pygeoapi would declare, less what we do not do.

pygeoapi declares every class of every provider type in the configuration, whether
the provider implements it or not. Ours are read-only, so Features Part 4 (create,
replace, delete) is not declared: features change by loading a new version. Each class
that is declared is checked against the running API by tests/test_conformance.py; a
class pygeoapi starts declaring after an upgrade fails that test until it is checked
or listed here.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from jmgeo.ogc.compat import API, APIRequest, core_api, render_j2_template

NOT_OFFERED = frozenset({
    # read-only providers: POST of features answers 415, PUT/PATCH/DELETE 405
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    # a raster here has no time axis: a `datetime` subset selects nothing it could honour
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/coverage-datetime",
})


def conformance(api: API, request: APIRequest):
    """pygeoapi's conformance document without :data:`NOT_OFFERED` (JSON and HTML)."""
    fmt = request.format
    request._format = "json"  # the list, then written as asked
    headers, status, content = core_api.conformance(api, request)
    request._format = fmt
    if status != HTTPStatus.OK:
        return headers, status, content
    body = json.loads(content)
    body["conformsTo"] = [c for c in body["conformsTo"] if c not in NOT_OFFERED]
    headers = request.get_response_headers(**api.api_headers)
    if fmt == "html":
        return headers, status, render_j2_template(
            api.tpl_config, api.config["server"]["templates"], "conformance.html", body,
            request.locale)
    return headers, status, json.dumps(body, ensure_ascii=False)
