"""The government information resource catalog (政务信息资源目录).

Every resource, spatial or not, with the national core metadata (政务信息资源目录编制指南
（试行）, 2017): classification 类/项/目/细目, name, resource code ``前段码/后段码``, provider,
abstract, format, data items (信息项), sharing and open attributes, update cycle, publish
date and related codes. Departments deliver entries on the survey sheet (调查表, 附件1);
the bureau reviews, publishes and exports the summary sheet (汇总表, 附件2), the city
catalog and DCAT. Spatial layers register themselves (``catalog.sync``).

- ``catalog.vocab``   controlled vocabularies, normalisation, resource codes
- ``catalog.store``   one import for ``catalog.content`` (an entry's content, the national
  rules, errors), ``catalog.entries`` (the SQL: read, search, write, history) and
  ``catalog.lifecycle`` (draft → published → retired, who may move it: the policy's answer)
- ``catalog.sync``    spatial layers → catalog entries
- ``catalog.excel``   one import for ``catalog.sheet`` (the survey sheet's columns),
  ``catalog.survey_import`` / ``survey_rows`` (reading a sheet) and
  ``catalog.sheet_writers`` (template, survey sheet, summary sheet, catalog, CSV)
- ``catalog.dcat``    DCAT JSON-LD for machines
- ``catalog.cli`` the ``jmgeo catalog`` commands; the HTTP API is ``jmgeo.catalog_api``
  (the server package)
- OGC API Records through pygeoapi, under the policy: ``jmgeo.ogc.records`` (the server
  package: it is a pygeoapi provider)
"""
