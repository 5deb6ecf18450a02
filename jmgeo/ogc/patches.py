"""The one place we replace a pygeoapi internal, and why.

pygeoapi 0.24's ``transform_bbox`` builds a new pyproj Transformer for every request
with a ``bbox`` (measured here: 0.27 s for CRS84 → EPSG:4490), which alone caps a worker
at ~4 requests/s. We swap in ``spatial.crs.transform_bbox``: same signature, same
semantics (authority axis order), cached transformer. pygeoapi is pinned (==0.24.*), and
tests/test_foundation.py checks bbox behaviour end to end, so a change upstream shows.
"""

from __future__ import annotations

from jmgeo.ogc.compat import itemtypes_api as itemtypes
from spatial.crs import transform_bbox

_applied = False


def apply() -> None:
    global _applied
    if not _applied:
        itemtypes.transform_bbox = transform_bbox
        _applied = True
