"""批量下载 — bulk downloads of a whole layer or a region's part, within the caller's rights.

``GET /downloads/{name}?format=gpkg|shp|shp-gbk|csv|csv-gbk|xlsx|geojson&region=CODE``

A *table* resource (no geometry) offers ``csv`` (default), ``csv-gbk`` and ``xlsx``; any
other format, or a ``region``, answers 400 naming the table formats.

* Who may have what is ``layers.policy``'s answer (``access_for``), turned into SQL by
  ``layers.access_sql`` (columns, masks, the region rule): a layer the caller may
  not read answers 404 exactly like a layer that does not exist (checked before any
  parameter, so a bad parameter is no oracle either); fields are limited and masked as
  the ``Access`` says — in SQL, the clear value never reaches Python; a grant's region
  scope is intersected with the requested ``region`` (rows must intersect both).
* Non-open layers are audited (``layers.audit.record_access``, action ``download``, with
  the row count) *before* the first byte is sent; no audit row, no data (503). Their
  responses carry ``Cache-Control: private, no-store``.
* Memory stays flat however large the layer: rows come from a server-side cursor in
  batches of :data:`BATCH` and are never all in Python at once.

Formats:

``gpkg``, ``shp``, ``shp-gbk``
    Written by GDAL through ``pyogrio.raw.write_arrow`` from an Arrow record-batch stream
    fed by the cursor (WKB + typed attributes), into a temporary directory, then streamed
    and deleted. GeoPackage keeps the layer's ``fid`` as its FID and the 中文 title as
    the layer description. Shapefiles are zipped with ``.shp/.shx/.dbf/.prj`` (ESRI WKT
    of EPSG:4490), a ``.cpg`` naming the DBF encoding (``UTF-8``, or ``GBK`` for older
    desktop software) and ``fields.csv`` mapping each DBF field to its column and 中文
    label. DBF field names are at most 10 bytes: longer names are cut to 10 characters;
    when that collides (case-insensitively) with another field or the reserved ``fid``,
    cut further so that ``_N`` (N = 1, 2, …) fits: ``land_use_category_name`` →
    ``land_use_c``, then ``land_use_category_code`` → ``land_use_1``. Text longer than 254 bytes is cut by the DBF format itself;
    characters GBK cannot represent (e.g. 𠮷, outside GB 2312/GBK) are left out by GDAL —
    the response then carries a ``Warning`` header saying so (use ``shp`` or ``gpkg``).
``csv``
    ``COPY … TO STDOUT`` streamed straight from PostgreSQL: UTF-8 with a BOM (Excel opens
    Chinese correctly), a header row, ``fid``, the attributes, and the geometry as WKT in
    a last column named ``WKT`` (which GDAL's CSV driver reads as the geometry).
``csv-gbk``, ``xlsx``
    See :mod:`jmgeo.downloads.flat` (layers: ``fid``, attributes and a ``WKT`` column).
``geojson``
    A FeatureCollection streamed feature by feature, each built in PostGIS
    (``ST_AsGeoJSON``, CRS84 lon/lat order = EPSG:4490 as stored).

Measured on the 1,000,000-parcel benchmark layer (open, no count; one uvicorn worker whose
resident memory is 181 MB idle): CSV 2.0 s (282 MB), GeoJSON 7.3 s (455 MB), GeoPackage
6.8 s (284 MB), zipped Shapefile 27 s (93 MB; GDAL's ``RESIZE=YES`` costs 17 s of it but
shrinks the DBF from 523 MB to 124 MB). Peak worker memory stayed below 365 MB.

Large downloads — more than ``JMGEO_EXPORT_SYNC_MAX_ROWS`` rows (default 100,000), or any
with ``?async=true`` — are **export jobs**: 202 with a job document and ``Location:
/downloads/jobs/{id}``; a worker writes the same file into ``JMGEO_EXPORT_DIR`` with
progress; ``GET /downloads/jobs/{id}/file`` sends it (audited, access asked again) until
``JMGEO_EXPORT_TTL_HOURS`` after it was written, then 410. See
:mod:`~jmgeo.downloads.jobs`. Every download and job-file fetch is counted in
``exchange_delivery`` (mode ``download``) after its last byte.

Modules: :mod:`~jmgeo.downloads.export` (the SQL, the batched cursor),
:mod:`~jmgeo.downloads.files` (the formats, the one writer dispatch),
:mod:`~jmgeo.downloads.jobs` (export jobs, their tasks),
:mod:`~jmgeo.downloads.ogr` (GeoPackage, Shapefile), :mod:`~jmgeo.downloads.flat` (CSV,
GeoJSON, XLSX), :mod:`~jmgeo.downloads.route` (the route).

Mount: ``app.include_router(jmgeo.downloads.router)``.
"""

from jmgeo.downloads.export import BATCH, Export
from jmgeo.downloads.files import FORMATS, TABLE_FORMATS
from jmgeo.downloads.ogr import TextCheck, shapefile_names
from jmgeo.downloads.route import router

__all__ = ["BATCH", "FORMATS", "TABLE_FORMATS", "Export", "TextCheck", "router",
           "shapefile_names"]
