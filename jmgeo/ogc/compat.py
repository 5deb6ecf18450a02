"""Every pygeoapi internal the platform touches, imported here and nowhere else.

pygeoapi is pinned (``pygeoapi==0.24.*``), but we reach past its public surface: its
request and API classes, its per-route handler functions, provider base classes and
errors, one private helper of the rasterio provider, and the functions we replace
(``transform_bbox``, ``l10n.best_match``, see :mod:`jmgeo.ogc.patches`). Gathering them
in one module makes
an upgrade a one-file review, and :func:`check` (run by the test suite and at app start)
fails loudly, naming what is missing, on a pygeoapi version this was not written for —
instead of an ``AttributeError`` in the middle of a request.
"""

from __future__ import annotations

import pygeoapi
import pygeoapi.api as core_api
import pygeoapi.api.coverages as coverages_api
import pygeoapi.api.itemtypes as itemtypes_api
import pygeoapi.api.tiles as tiles_api
import pygeoapi.l10n as l10n
from pygeoapi.api import API, APIRequest, apply_gzip, validate_bbox
from pygeoapi.models.provider.base import (
    LinkType,
    TileMatrixSetEnum,
    TileMatrixSetEnumType,
    TileSetMetadata,
)
from pygeoapi.openapi import get_oas, validate_openapi_document
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderNoDataError,
)
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.rasterio_ import RasterioProvider, _get_parameter_metadata
from pygeoapi.util import json_serial, read_data, render_j2_template, to_json, url_join

#: the pygeoapi releases this module was written and tested against
SUPPORTED = ("0.24.",)

#: (module, attribute) pairs the platform calls or replaces
REQUIRED = (
    (core_api, "landing_page"), (core_api, "conformance"), (core_api, "describe_collections"),
    (core_api, "get_collection_schema"), (core_api, "openapi_"),
    (itemtypes_api, "get_collection_items"), (itemtypes_api, "get_collection_item"),
    (itemtypes_api, "get_collection_queryables"), (itemtypes_api, "transform_bbox"),
    (tiles_api, "get_collection_tiles"), (tiles_api, "get_collection_tiles_data"),
    (tiles_api, "get_collection_tiles_metadata"), (tiles_api, "tilematrixset"),
    (tiles_api, "tilematrixsets"), (coverages_api, "get_collection_coverage"),
    (APIRequest, "from_starlette"), (APIRequest, "is_valid"),
    (APIRequest, "get_response_headers"), (API, "get_exception"),
    (API, "get_format_exception"), (l10n, "best_match"), (l10n, "str2locale"),
    (l10n, "Locale"), (core_api, "to_json"), (itemtypes_api, "to_json"),
)

__all__ = [
    "API", "APIRequest", "BaseMVTProvider", "BaseProvider", "LinkType",
    "ProviderConnectionError", "ProviderGenericError", "ProviderInvalidQueryError",
    "ProviderItemNotFoundError", "ProviderNoDataError", "RasterioProvider",
    "TileMatrixSetEnum", "TileMatrixSetEnumType", "TileSetMetadata", "_get_parameter_metadata",
    "apply_gzip", "core_api", "json_serial", "coverages_api", "get_oas", "itemtypes_api", "l10n",
    "read_data", "render_j2_template", "tiles_api", "to_json", "url_join", "validate_bbox",
    "validate_openapi_document", "check", "PygeoapiMismatch",
]


class PygeoapiMismatch(RuntimeError):
    """The installed pygeoapi is not one this platform was written for."""


def check() -> str:
    """Return the pygeoapi version, or raise naming the version and what is missing."""
    version = getattr(pygeoapi, "__version__", "unknown")
    problems = []
    if not version.startswith(SUPPORTED):
        problems.append(f"version {version} (supported: {', '.join(s + 'x' for s in SUPPORTED)})")
    for owner, name in REQUIRED:
        if not hasattr(owner, name):
            problems.append(f"{getattr(owner, '__name__', owner)}.{name} is missing")
    if problems:
        raise PygeoapiMismatch(
            "pygeoapi 版本不受支持，请安装 pyproject.toml 固定的版本 / unsupported pygeoapi: "
            + "; ".join(problems) + " — review jmgeo/ogc/compat.py before upgrading")
    return version
