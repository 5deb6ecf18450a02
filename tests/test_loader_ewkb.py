"""The loader's EWKB writer (``loaders.geometry.hex_ewkb``) gives exactly the bytes GEOS's
own EWKB writer gives — SRID 4490 in every header — for one type per batch (the fast
path) and for mixed types (the general path); PostGIS reads them back."""

from __future__ import annotations

import numpy as np
import psycopg
import shapely

from loaders.geometry import SRID, hex_ewkb


def _reference(geoms: np.ndarray) -> list[str]:
    return [h.lower() for h in shapely.to_wkb(shapely.set_srid(geoms, SRID), hex=True,
                                               include_srid=True, byte_order=1)]


def test_one_type_per_batch_matches_geos():
    polys = shapely.multipolygons(shapely.box(np.arange(50.0), 0, np.arange(50.0) + 1, 1),
                                  indices=np.arange(50))
    polys[7] = shapely.MultiPolygon([shapely.box(0, 0, 1, 1).buffer(0.1),
                                     shapely.box(5, 5, 6, 6)])  # longer: offsets shift
    assert [h.lower() for h in hex_ewkb(polys).to_pylist()] == _reference(polys)


def test_mixed_types_match_geos_and_empty_is_empty():
    mixed = np.array([shapely.MultiPoint([(113.1, 22.6)]),
                      shapely.MultiLineString([[(113, 22), (113.2, 22.4)]]),
                      shapely.MultiPolygon([shapely.box(113, 22, 113.1, 22.1)])])
    assert [h.lower() for h in hex_ewkb(mixed).to_pylist()] == _reference(mixed)
    assert len(hex_ewkb(np.array([], dtype=object))) == 0


def test_postgis_reads_the_srid(database_url):
    [h] = hex_ewkb(np.array([shapely.MultiPoint([(113.08, 22.58)])])).to_pylist()
    with psycopg.connect(database_url) as conn:
        srid, wkt = conn.execute("SELECT ST_SRID(%s::geometry), ST_AsText(%s::geometry)",
                                 (h, h)).fetchone()
    assert srid == 4490 and wkt == "MULTIPOINT((113.08 22.58))"
