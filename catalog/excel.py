"""The Excel forms: survey sheet (调查表, 附件1), summary sheet (汇总表, 附件2), city catalog.

One import for the callers (CLI, API, exports, demo, tests); the code lives in

- :mod:`catalog.sheet`          the survey sheet's columns, the import report
- :mod:`catalog.survey_import`  reading a sheet and importing it, all or nothing
- :mod:`catalog.survey_rows`    one resource's cells → an entry's content
- :mod:`catalog.sheet_writers`  the template, the survey sheet of entries, the summary
  sheet, the city catalog (xlsx) and CSV
"""

from __future__ import annotations

from catalog.sheet import (
    CATALOG_TITLE,
    COL_BY_KEY,
    COLUMNS,
    LISTS_SHEET,
    NOTES_SHEET,
    SUMMARY_SHEET,
    SUMMARY_TITLE,
    SURVEY_SHEET,
    SURVEY_TITLE,
    TEMPLATE_ROWS,
    CellError,
    Col,
    ImportReport,
    SheetError,
)
from catalog.sheet_writers import (
    CATALOG_COLUMNS,
    ITEM_COLUMNS,
    LIST_VOCABS,
    SUMMARY_COLUMNS,
    catalog_row,
    classification_label,
    item_rows,
    summary_row,
    write_catalog,
    write_csv,
    write_summary,
    write_survey,
    write_template,
)
from catalog.survey_import import import_survey, read_survey
from catalog.vocab import clean_text, norm_key

__all__ = [
    "CATALOG_COLUMNS", "CATALOG_TITLE", "COLUMNS", "COL_BY_KEY", "ITEM_COLUMNS",
    "LISTS_SHEET", "LIST_VOCABS", "NOTES_SHEET", "SUMMARY_COLUMNS", "SUMMARY_SHEET",
    "SUMMARY_TITLE", "SURVEY_SHEET", "SURVEY_TITLE", "TEMPLATE_ROWS", "CellError", "Col",
    "ImportReport", "SheetError", "catalog_row", "classification_label", "clean_text",
    "import_survey", "item_rows", "norm_key", "read_survey", "summary_row", "write_catalog",
    "write_csv", "write_summary", "write_survey", "write_template",
]
