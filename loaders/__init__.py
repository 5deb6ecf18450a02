"""Loaders: department files → the framework (detect, reproject, validate, publish).

``jmgeo load FILE --dept CODE --layer NAME --theme THEME --sharing CLASS …`` and
``POST /layers/upload`` both call :func:`loaders.pipeline.load`:

1. :mod:`loaders.source` — find the dataset (loose file, folder, ``.gdb``, zip unpacked
   safely: no ``../`` members, no zip bombs, GBK member names decoded) and check a
   Shapefile is whole (.shp/.shx/.dbf present, not truncated, record counts agree).
2. :mod:`loaders.encoding` — ``--encoding``, else the ``.cpg``, else the DBF bytes
   (UTF-8 validates itself; GBK must decode to common Chinese); checked, never guessed
   into mojibake.
3. :mod:`loaders.readers` — batches from GDAL's Arrow stream (pyogrio) or pyarrow's CSV
   reader; :mod:`loaders.crsdecide` — ``--src-crs``, the file's CRS, or an inference
   from magnitudes / zone prefixes / the Jiangmen extent that refuses when ambiguous.
4. :mod:`loaders.geometry` — per batch, with shapely 2 arrays: empties dropped, one
   geometry family, Z/M refused or dropped (``--force-2d``), reprojection through
   :func:`spatial.crs.to_canonical`, validity repair (or refusal with ``--strict``),
   Multi* promotion, extent flags; :mod:`loaders.attributes` — ascii columns, 中文
   labels, types, dates.
5. :mod:`loaders.pipeline` runs the stages of :mod:`loaders.stages` (open → plan →
   stream → check → publish): COPY (:mod:`loaders.copying`) into the new version's
   table, index, key check and diff (:mod:`loaders.keys`), quality score and report
   (:mod:`loaders.report`), and :func:`layers.registry.publish` — all in one transaction.

*Tables* (``--kind table --key FIELD``: records without geometry from a CSV, an XLSX
sheet — :mod:`loaders.xlsx`, ``--sheet NAME`` — a DBF on its own or a GeoPackage
attribute table) take the same stages without the CRS and geometry steps; their key
must be present, filled and unique (refusals name the rows) and gets a UNIQUE index.

Every refusal is a :class:`loaders.errors.LoaderError`: one line, Chinese first, naming
the file, the problem and the fix. :mod:`loaders.demo` makes the demo department layers;
:mod:`loaders.raster` turns GeoTIFFs into EPSG:4490 COGs.
"""
