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
* Built once per version (:mod:`~jmgeo.downloads.cache`): the strong ``ETag`` is the
  digest of layer, version (table + load time), format, region, the metadata the files
  carry and the caller's ``Access.fingerprint()``; the file is kept under it (bounded,
  LRU), so a repeated download is the same bytes and ``Range`` (+ ``If-Range``) resumes
  it (206). Callers with different access have different tags and files. The files are
  deterministic (dated with the version's load time), so a rebuilt file is identical.
  ``If-None-Match`` with the tag answers 304 without building anything; a 304 of non-open
  data is audited too (status 304, rows 0: it confirms the caller's copy is current), and
  without that row it is a 503 like any other answer.
* Memory stays flat however large the layer: rows come from a server-side cursor in
  batches of :data:`BATCH` and are never all in Python at once.

Formats:

``gpkg``, ``shp``, ``shp-gbk``
    Written by GDAL through ``pyogrio.raw.write_arrow`` from an Arrow record-batch stream
    fed by the cursor (WKB + typed attributes: integers, doubles — ``numeric`` too —,
    booleans, dates and timestamps keep their types), into a directory the cache keeps.
    GeoPackage keeps the layer's ``fid`` as its FID and the 中文 title as
    the layer description. Shapefiles are zipped with ``.shp/.shx/.dbf/.prj`` (ESRI WKT
    of EPSG:4490), a ``.cpg`` naming the DBF encoding (``UTF-8``, or ``GBK`` for older
    desktop software — whose DBF also carries the language driver id 0x4D, code page
    936, so it reads correctly when the ``.cpg`` is lost: :mod:`~jmgeo.downloads.stamp`) and ``fields.csv`` mapping each DBF field to its column and 中文
    label. DBF field names are at most 10 bytes: longer names are cut to 10 characters;
    when that collides (case-insensitively) with another field or the reserved ``fid``,
    cut further so that ``_N`` (N = 1, 2, …) fits: ``land_use_category_name`` →
    ``land_use_c``, then ``land_use_category_code`` → ``land_use_1``. Text longer than 254 bytes is cut by the DBF format itself;
    characters GBK cannot represent (e.g. 𠮷, outside GB 2312/GBK) are left out by GDAL —
    the response then carries a ``Warning`` header saying so (use ``shp`` or ``gpkg``).
``csv``
    ``COPY … TO STDOUT`` straight from PostgreSQL into the file: UTF-8 with a BOM (Excel opens
    Chinese correctly), a header row, ``fid``, the attributes, and the geometry as WKT in
    a last column named ``WKT`` (which GDAL's and QGIS's CSV readers take as the geometry
    without being told). Its CRS, EPSG:4490 (lon/lat), is stated in the response's
    ``Content-Crs`` header (as OGC API Features does) rather than in the file: a comment
    line breaks CSV readers, and a column name such as ``wkt_epsg4490`` would no longer
    be found by GDAL. The ``xlsx`` fields sheet names it too.
``csv-gbk``, ``xlsx``
    See :mod:`jmgeo.downloads.flat` (layers: ``fid``, attributes and a ``WKT`` column).
``geojson``
    RFC 7946: a FeatureCollection written feature by feature, each built in PostGIS
    (``ST_AsGeoJSON`` without its ``crs`` member; CRS84 lon/lat order = EPSG:4490 as
    stored, the same to centimetres): GDAL reads it as EPSG:4326 lon/lat.

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
:mod:`~jmgeo.downloads.cache` (the file cache, the ETag),
:mod:`~jmgeo.downloads.stamp` (deterministic dates, the DBF code page byte),
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
