"""The registry's fixed vocabularies: sharing classes (共享类型), resource kinds and update
cycles (更新周期).

Apart from the SQLAlchemy models (``layers.models``, which check them in the schema) so
that what only needs the words — the loader, the registry, the CLI — does not import
SQLAlchemy's ORM on every run (~0.15 s of each `jmgeo load`)."""

SHARING_CLASSES = ("open", "unconditional", "conditional", "not_shared")
#: a registry entry is a *resource*: a vector layer, a raster layer, or a table (no
#: geometry, one declared key column such as 统一社会信用代码)
RESOURCE_KINDS = ("vector", "raster", "table")
UPDATE_CYCLES = ("realtime", "daily", "weekly", "monthly", "quarterly", "halfyearly",
                 "yearly", "other")
