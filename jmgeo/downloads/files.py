"""The formats of a download and the one dispatch to their writers — for the synchronous
route and the export job alike, so a job's file is byte for byte what the route sends.

``write_file`` puts the download in a directory: the streamed formats (CSV, GeoJSON)
written from the same generators the route streams, XLSX by :mod:`~jmgeo.downloads.flat`,
GeoPackage and Shapefile by :mod:`~jmgeo.downloads.ogr`.
"""

from __future__ import annotations

from pathlib import Path

from jmgeo.downloads import flat, ogr
from jmgeo.downloads.export import Export

FORMATS = {  # format → (file extension, media type)
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "shp": (".zip", "application/zip"),
    "shp-gbk": (".zip", "application/zip"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "csv-gbk": (".csv", "text/csv; charset=gbk"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "geojson": (".geojson", "application/geo+json"),
}
TABLE_FORMATS = ("csv", "csv-gbk", "xlsx")  # a table has no geometry: no GIS formats
# the flat formats whose WKT column's CRS (EPSG:4490) is stated in a Content-Crs header
CRS_HEADER_FORMATS = ("csv", "csv-gbk", "xlsx")
STREAMED = {"csv": flat.stream_csv, "csv-gbk": flat.stream_csv_gbk,
            "geojson": flat.stream_geojson}


def formats_for(kind: str) -> tuple[str, ...]:
    """The download formats a resource of ``kind`` offers (the route refuses the rest):
    a table the flat ones, a raster none (its way out is the coverage)."""
    if kind == "raster":
        return ()
    return TABLE_FORMATS if kind == "table" else tuple(FORMATS)


def default_format(kind: str) -> str:
    return "csv" if kind == "table" else "gpkg"


def filename(layer: str, region: str | None, fmt: str) -> str:
    """The download's file name: ``<layer>[_<region>][_gbk]<ext>``."""
    stem = layer if region is None else f"{layer}_{region}"
    suffix = "_gbk" if fmt.endswith("-gbk") else ""
    return f"{stem}{suffix}{FORMATS[fmt][0]}"


def write_file(export: Export, fmt: str, directory: Path) -> tuple[Path, int, list[str]]:
    """Write the download into ``directory``; returns (the file to send, rows written,
    what the format lost — the Warning notes). Rows of the streamed formats are counted
    through ``export.progress`` (chained: a listener already there still hears them)."""
    if fmt == "xlsx":
        path, written = flat.write_xlsx(export, directory)
        return path, written, []
    if fmt not in STREAMED:
        return ogr.write_ogr(export, fmt, directory)
    counted = [0]
    listener = export.progress

    def count(n: int) -> None:
        counted[0] += n
        if listener is not None:
            listener(n)

    export.progress = count
    path = directory / filename(export.layer["name"], export.region, fmt)
    try:
        with path.open("wb") as out:
            for chunk in STREAMED[fmt](export):
                out.write(chunk)
    finally:
        export.progress = listener
    return path, counted[0], []
