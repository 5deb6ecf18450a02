"""The demo catalog: register the demo layers and load the sample survey sheet.

``load_demo_catalog(dsn)`` is idempotent (a second run changes nothing); ``jmgeo demo
load`` can call it the way it calls the other areas' demo steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from catalog import excel, samples, sync
from layers import policy

DEMO_CALLER = policy.system("demo")


def load_demo_catalog(dsn: str, log=print) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        layers = sync.sync_all_layers(conn)
        with tempfile.TemporaryDirectory() as tmp:
            path = samples.write_sample(Path(tmp) / "调查表_样例.xlsx")
            report = excel.import_survey(conn, path, DEMO_CALLER, status="published")
        sync.ensure_synced(conn)
    counts = report.counts()
    log(f"catalog: {len(layers)} layer entries synced, sample sheet: "
        f"{counts['created']} created, {counts['unchanged']} unchanged")
    return counts
