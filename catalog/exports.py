"""``jmgeo catalog export``: the summary sheet, the city catalog (xlsx + CSV), DCAT, and
the survey sheet of the same entries (so an imported sheet round-trips unchanged)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from psycopg.rows import tuple_row

from catalog import dcat, excel, store
from layers import policy
from layers.policy import Caller

EXPORTER = policy.system("catalog-export")  # the platform writing the published files
FILES = {
    "survey": "调查表.xlsx",
    "summary": "汇总表.xlsx",
    "catalog_xlsx": "江门市政务信息资源目录.xlsx",
    "catalog_csv": "江门市政务信息资源目录.csv",
    "items_csv": "江门市政务信息资源目录_信息项.csv",
    "dcat": "catalog.jsonld",
}


def select(conn, *, status: str = "published", dept: str | None = None,
           caller: Caller = EXPORTER) -> list[dict[str, Any]]:
    """Entries to export, in code order: ``published`` only, or ``all`` but retired."""
    filters = {"dept": dept}
    if status != "all":
        filters["status"] = status
    rows, total = store.list_entries(conn, caller, filters=filters, limit=1_000_000)
    rows = [r for r in rows if status != "all" or r["status"] != "retired"]
    return sorted(rows, key=lambda r: r["code"])


def departments(conn) -> dict[str, dict[str, Any]]:
    return {r[0]: {"code": r[0], "name": r[1], "uscc": r[2]} for r in conn.cursor(row_factory=tuple_row).execute(
        "SELECT code, name, uscc FROM department")}


def export_all(conn, out_dir: str | Path, *, status: str = "published",
               dept: str | None = None, base_url: str = "http://localhost:5000",
               as_of: dt.date | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = select(conn, status=status, dept=dept)
    paths = {k: out / v for k, v in FILES.items()}
    excel.write_survey(paths["survey"], [store.content_of(e) for e in entries],
                       departments(conn))
    excel.write_summary(paths["summary"], entries, as_of)
    excel.write_catalog(paths["catalog_xlsx"], entries)
    excel.write_csv(paths["catalog_csv"], excel.CATALOG_COLUMNS,
                    [excel.catalog_row(n, e) for n, e in enumerate(entries, start=1)])
    excel.write_csv(paths["items_csv"], excel.ITEM_COLUMNS,
                    [r for e in entries for r in excel.item_rows(e)])
    paths["dcat"].write_text(json.dumps(dcat.catalog_jsonld(entries, base_url, as_of),
                                        ensure_ascii=False, indent=1, default=str),
                             encoding="utf-8")
    return paths
