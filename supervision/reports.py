"""Filing the supervision report (通报), and the freshness reminders.

:func:`build` computes a period's figures and renders the PDF and the workbook;
:func:`file_report` stores them (``supervision_report``) — the bureau's archive, listed
at ``GET /supervision/reports`` — and tells the bureau's inbox. The monthly job files the
previous month's report (``supervision.tasks``).

:func:`remind` walks the freshness ladder: a resource *overdue* tells its owner, one
*delinquent* tells the bureau (and the owner, if it was never told it was overdue) —
once per resource, deadline and level (``freshness_reminder``), so the daily job can run
as often as it likes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from exchange import clock
from exchange.notify import notify
from exchange.store import BUREAU
from jmgeo.errors import bilingual
from layers import policy
from layers.policy import Caller
from supervision import figures, freshness
from supervision.periods import Forbidden, NotFound, parse_period
from supervision.report_pdf import render_pdf
from supervision.report_xlsx import render_xlsx


def build(conn, period: str, *, dept: str | None = None, today: date | None = None
          ) -> tuple[dict[str, Any], bytes, bytes]:
    """(figures, PDF, XLSX) of ``period`` for the city, or one department (``dept``)."""
    p = parse_period(period, today=today)
    fig = figures.compute(conn, p, dept=dept)
    return fig, render_pdf(fig), render_xlsx(fig)


def write_files(pdf: bytes, xlsx: bytes, out_dir: str | Path, label: str,
                scope: str = "city") -> tuple[Path, Path]:
    """Write the two files as ``tongbao-<period>[-<dept>].pdf|xlsx`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"tongbao-{label}" + ("" if scope == "city" else f"-{scope}")
    pdf_path, xlsx_path = out / f"{stem}.pdf", out / f"{stem}.xlsx"
    pdf_path.write_bytes(pdf)
    xlsx_path.write_bytes(xlsx)
    return pdf_path, xlsx_path


def summary_of(fig: dict[str, Any]) -> dict[str, Any]:
    """The headline figures kept beside a filed report (what the list shows)."""
    s = fig["sections"]
    return {"timeliness_rate": s["timeliness"]["total"].get("rate"),
            "obligations": s["timeliness"]["total"].get("obligations", 0),
            "requests": s["requests"]["total"].get("received", 0),
            "requests_overdue": s["requests"]["total"].get("overdue", 0),
            "corrections": s["corrections"]["total"].get("raised", 0),
            "tickets_open": s["verification"]["total"].get("open", 0),
            "tickets_overdue": s["verification"]["total"].get("overdue", 0),
            "first": fig["ranking"][0]["dept"] if fig["ranking"] else None}


def file_report(conn, caller: Caller, period: str, *, today: date | None = None
                ) -> dict[str, Any]:
    """File the city's report for ``period`` (the bureau, or the platform's monthly job)."""
    if not policy.may_file_reports(caller):
        raise Forbidden(bilingual("只有市网信统筹局可以出具通报",
                                  "only the bureau files the supervision report"))
    fig, pdf, xlsx = build(conn, period, today=today)
    p = fig["period"]
    with conn.transaction():
        row = conn.cursor(row_factory=dict_row).execute(
            "INSERT INTO supervision_report (period, as_of, filed_by, summary, pdf, xlsx) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, filed_at",
            (p["label"], p["as_of"], caller.name, Jsonb(summary_of(fig)), pdf, xlsx)
        ).fetchone()
        notify(conn, BUREAU, "report", bilingual(
            f"{p['zh']}共享工作通报已生成（编号 {row['id']}，数据截至 {p['as_of']:%Y-%m-%d}）",
            f"the supervision report for {p['label']} is filed (report {row['id']})"))
    return {"id": row["id"], "period": p["label"], "as_of": p["as_of"],
            "filed_at": row["filed_at"], "pdf_bytes": len(pdf), "xlsx_bytes": len(xlsx)}


def list_reports(conn, caller: Caller) -> list[dict[str, Any]]:
    if not policy.may_read_reports(caller):
        raise Forbidden(bilingual("通报档案仅供市网信统筹局与审计员",
                                  "the filed reports are for the bureau and the auditor"))
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT id, period, as_of, filed_by, filed_at, summary, length(pdf) AS pdf_bytes, "
        "length(xlsx) AS xlsx_bytes FROM supervision_report ORDER BY id DESC").fetchall()


def report_file(conn, caller: Caller, report_id: int, kind: str) -> tuple[str, bytes]:
    """(file name, bytes) of a filed report's ``pdf`` or ``xlsx``."""
    if not policy.may_read_reports(caller):
        raise Forbidden(bilingual("通报档案仅供市网信统筹局与审计员",
                                  "the filed reports are for the bureau and the auditor"))
    if kind not in ("pdf", "xlsx"):
        raise NotFound(bilingual(f"没有 {kind} 格式", f"no {kind!r} form: pdf or xlsx"))
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT period, {kind} AS body FROM supervision_report WHERE id = %s",
        (report_id,)).fetchone()
    if row is None:
        raise NotFound(bilingual(f"通报 {report_id} 不存在", f"no report {report_id}"))
    return f"tongbao-{row['period']}-{report_id}.{kind}", bytes(row["body"])


def remind(conn, today: date | None = None, now: datetime | None = None
           ) -> list[dict[str, Any]]:
    """Send the reminders the ladder calls for today; returns what was sent."""
    now = now or datetime.now(UTC)
    today = today or clock.local_date(now)
    sent = []
    for r in freshness.freshness(conn, today):
        if r["state"] not in ("overdue", "delinquent"):
            continue
        levels = ["overdue"] + (["delinquent"] if r["state"] == "delinquent" else [])
        with conn.transaction():
            for level in levels:
                claimed = conn.execute(
                    "INSERT INTO freshness_reminder (layer_id, deadline, level, at) VALUES "
                    "(%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING layer_id",
                    (r["layer_id"], r["deadline"], level, now)).fetchone()
                if claimed is None:
                    continue
                to = r["dept"] if level == "overdue" else BUREAU
                zh = "逾期未更新" if level == "overdue" else "严重逾期未更新，请督办"
                nid = notify(conn, to, f"freshness_{level}", bilingual(
                    f"资源 {r['resource']}（{r['title']}，{r['dept_name']}）{zh}：更新周期"
                    f"{freshness.CYCLE_ZH.get(r['cycle'], r['cycle'])}，应于 "
                    f"{r['deadline']:%Y-%m-%d} 前更新，已逾期 {r['late_days']} 个工作日",
                    f"resource {r['resource']} of {r['dept']} is {level}: due {r['deadline']}, "
                    f"{r['late_days']} working days late"), None, now)
                conn.execute("UPDATE freshness_reminder SET notification_id = %s WHERE layer_id "
                             "= %s AND deadline = %s AND level = %s",
                             (nid, r["layer_id"], r["deadline"], level))
                sent.append({"resource": r["resource"], "level": level, "to": to,
                             "deadline": r["deadline"]})
    return sent
