"""The demo's supervision: a rating and a correction ticket on what the demo delivered,
and the report (通报) of the current quarter, filed and written to ``var/reports``.

Idempotent: a delivery already rated, a ticket already raised, a report already filed
for this period today are left as they are (the files are written again).
"""

from __future__ import annotations

from datetime import date

import psycopg

from jmgeo.settings import get_settings
from layers.policy import Caller, system
from supervision import feedback, reports
from supervision.periods import current_quarter


def _first_delivery(conn, log) -> None:
    """Sync the demo's front-end-processor copy once (what the worker does within its
    first minute) when nothing was delivered yet, so the report has an exchange to show."""
    if conn.execute("SELECT 1 FROM exchange_delivery").fetchone() is not None:
        return
    from exchange.fep_outbound import sync_copy

    copy = conn.execute("SELECT id FROM fep_copy WHERE target_schema = 'fep_jt'").fetchone()
    if copy is not None:
        try:
            sync_copy(conn, copy[0])
        except Exception as exc:  # noqa: BLE001 - the demo report goes on without it
            log(f"demo fep sync skipped: {exc}")


def _demo_feedback(conn, log) -> None:
    _first_delivery(conn, log)
    row = conn.execute(
        "SELECT x.id, l.name, d.code FROM exchange_delivery x JOIN layer l ON l.id = "
        "x.layer_id JOIN department d ON d.id = x.dept_id ORDER BY x.id LIMIT 1").fetchone()
    if row is None:
        return
    delivery, resource, dept = row
    who = Caller(kind="department", dept_code=dept, name=f"demo:{dept}")
    if conn.execute("SELECT 1 FROM delivery_rating WHERE delivery_id = %s",
                    (delivery,)).fetchone() is None:
        feedback.rate_delivery(conn, who, delivery, score=4, comment="数据完整，更新及时")
    if conn.execute("SELECT 1 FROM correction").fetchone() is None:
        feedback.raise_correction(conn, who, resource=resource,
                                  description="部分记录的名称与登记簿不一致，请核实")


def load_demo_supervision(dsn: str, log=print, today: date | None = None) -> str | None:
    """Rate, raise a ticket, file and write the current quarter's report; the PDF path."""
    period = current_quarter(today)
    with psycopg.connect(dsn, autocommit=True) as conn:
        _demo_feedback(conn, log)
        fig, pdf, xlsx = reports.build(conn, period, today=today)
        filed = conn.execute("SELECT id FROM supervision_report WHERE period = %s AND as_of = "
                             "%s", (fig["period"]["label"], fig["period"]["as_of"])).fetchone()
        if filed is None:
            reports.file_report(conn, system("demo"), period, today=today)
    pdf_path, _ = reports.write_files(pdf, xlsx, get_settings().var_dir / "reports",
                                      fig["period"]["label"])
    log(f"supervision report {fig['period']['label']} (通报): {pdf_path} and .xlsx")
    return str(pdf_path)
