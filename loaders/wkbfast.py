"""The loader's common case without rebuilding geometries: GDAL's WKB reprojected in place.

Why: of the geometry work per batch, more than a third went into geometry objects made
only to be written out again — new geometries with the converted coordinates
(``set_coordinates``), Multi* wrappers (``multipolygons``) and their WKB (``to_wkb``),
all holding Python's GIL while the reading and COPY threads waited (issue 16 §6). In
the common case — every feature of the batch a little-endian 2D WKB of one type, none
empty — the coordinates are found in the WKB bytes themselves (a walk over the parts and
rings, all features at once), converted where they lie, and the EWKB is the same bytes
with the Multi header and SRID put in front. GEOS still parses the converted WKB once:
validity and the extent are checked on the geometries that will be stored.

Anything else — nulls, empties, Z/M, mixed types, big-endian or malformed WKB, a coordinate
out of range, an invalid geometry to repair — answers ``None`` and the batch takes the
general path (:func:`loaders.geometry.process`), which also words every refusal. Both give
byte-identical EWKB (``tests/test_loader_wkbfast.py``).
"""

from __future__ import annotations

import binascii

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

# WKB type → (family, is multi, the single type of its parts)
_TYPES = {1: ("point", False, 1), 4: ("point", True, 1), 2: ("line", False, 2),
          5: ("line", True, 2), 3: ("polygon", False, 3), 6: ("polygon", True, 3)}
_MULTI = {"point": 4, "line": 5, "polygon": 6}


class _Malformed(Exception):
    """The walk left the bytes of a feature: the general path will word the error."""


def _u32(buf: np.ndarray, pos: np.ndarray, end: np.ndarray) -> np.ndarray:
    if (pos + 4 > end).any():
        raise _Malformed
    return buf[pos[:, None] + np.arange(4)].view("<u4").reshape(-1).astype(np.int64)


def _runs(buf: np.ndarray, pos: np.ndarray, end: np.ndarray, single: int,
          runs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Walk one single-type body (after its 5-byte header) for every feature at
    ``pos``; append (first coordinate's byte, point count) runs; answer the end."""
    if single == 1:
        runs.append((pos, np.ones(len(pos), np.int64)))
        return pos + 16
    if single == 2:
        n = _u32(buf, pos, end)
        runs.append((pos + 4, n))
        return pos + 4 + 16 * n
    rings = _u32(buf, pos, end)
    if (rings == 0).any():
        raise _Malformed                 # an empty polygon: the general path drops it
    pos = pos + 4
    for r in range(int(rings.max())):
        at = np.flatnonzero(rings > r)
        n = _u32(buf, pos[at], end[at])
        runs.append((pos[at] + 4, n))
        pos[at] += 4 + 16 * n
    return pos


def reproject(wkb: pa.Array, family: str | None, convert) -> tuple[
        str, np.ndarray, pa.StringArray] | None:
    """(family, converted geometries, EWKB hex) of a WKB column, or ``None``.

    ``convert(x, y) -> (lon, lat, ok)`` converts coordinates (``ok``: all plausible).
    """
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if not isinstance(wkb, pa.Array) or wkb.null_count or not len(wkb):
        return None
    if wkb.type == pa.large_binary():
        wkb = wkb.cast(pa.binary())
    if wkb.type != pa.binary():
        return None
    n = len(wkb)
    offsets = np.frombuffer(wkb.buffers()[1], np.int32, n + 1, wkb.offset * 4).astype(np.int64)
    base = int(offsets[0])
    data = np.frombuffer(wkb.buffers()[2], np.uint8, int(offsets[-1]) - base, base)
    starts, ends = offsets[:-1] - base, offsets[1:] - base
    if (data[starts] != 1).any():
        return None                      # big-endian WKB (rare): the general path
    types = _u32(data, starts + 1, ends)
    kind = _TYPES.get(int(types[0]))
    if kind is None or (types != types[0]).any() or (family and kind[0] != family):
        return None
    fam, is_multi, single = kind
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        if is_multi:
            parts = _u32(data, starts + 5, ends)
            if (parts == 0).any():
                return None
            pos = starts + 9
            for j in range(int(parts.max())):
                at = np.flatnonzero(parts > j)
                p, e = pos[at], ends[at]
                if (p + 5 > e).any() or (data[p] != 1).any() or \
                        (_u32(data, p + 1, e) != single).any():
                    return None
                pos[at] = _runs(data, p + 5, e, single, runs)
        else:
            pos = _runs(data, starts + 5, ends, single, runs)
    except _Malformed:
        return None
    if (pos != ends).any():
        return None
    first = np.concatenate([r[0] for r in runs])
    count = np.concatenate([r[1] for r in runs])
    if (count == 0).any():
        return None                      # an empty part: the general path decides
    # every coordinate's bytes: +1/-1 at the runs' edges, summed (runs never touch: a
    # count or a header lies between any two)
    edge = np.zeros(len(data) + 1, np.int8)
    edge[first] = 1
    edge[first + 16 * count] = -1
    inside = np.cumsum(edge[:-1], dtype=np.int8).view(bool)
    xy = data[inside].view("<f8").reshape(-1, 2)
    lon, lat, ok = convert(xy[:, 0], xy[:, 1])
    if not ok:
        return None
    out = data.copy()
    out[inside] = np.column_stack([lon, lat]).astype("<f8").view(np.uint8).reshape(-1)
    geoms = shapely.from_wkb(pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer((offsets - base).astype(np.int32)),
                         pa.py_buffer(out)]).to_numpy(zero_copy_only=False),
        on_invalid="ignore")
    if shapely.is_missing(geoms).any():
        return None                      # GEOS refuses a feature (e.g. a 1-point line)
    return fam, geoms, _ewkb_hex(out, starts, ends, fam, is_multi)


def _ewkb_hex(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, fam: str,
              is_multi: bool) -> pa.StringArray:
    """Multi* EWKB hex with SRID 4490: a single geometry gets a Multi header in front
    (its own WKB is then the one part), a Multi its header rewritten."""
    from loaders.geometry import SRID

    n = len(starts)
    hex_offsets = (np.append(starts, ends[-1]) * 2).astype(np.int32)
    plain = pa.StringArray.from_buffers(n, pa.py_buffer(hex_offsets),
                                        pa.py_buffer(binascii.hexlify(data)))
    header = (b"\x01" + (_MULTI[fam] | 0x20000000).to_bytes(4, "little") +
              SRID.to_bytes(4, "little")).hex()
    if is_multi:
        return pc.utf8_replace_slice(plain, 0, 10, header)
    return pc.utf8_replace_slice(plain, 0, 0, header + "01000000")
