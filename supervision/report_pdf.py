"""The supervision report (通报) as a PDF in Chinese, with charts.

Layout is WeasyPrint (HTML + CSS → PDF, a real layout engine: CJK line breaking, tables
split across pages with repeated headers, page numbers); it needs Debian's pango
(``libpango-1.0-0 libpangoft2-1.0-0``, installed by ``jmgeo/provision.py``). Fonts are
Debian's ``fonts-noto-cjk``; charts are matplotlib with the same font, embedded as PNG.
Nothing is fetched: every asset is in the document.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from exchange.clock import CHINA
from supervision.freshness import CYCLE_ZH
from supervision.tables import MODE_ZH, drill_tables, summary_tables

FONT_FAMILY = "Noto Sans CJK SC"
ISSUER = "江门市网信统筹局"


@lru_cache(maxsize=1)
def _matplotlib():
    """matplotlib on the Agg backend with a CJK font (fonts-noto-cjk), set up once."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    # only the two faces the charts use: parsing every CJK weight costs seconds
    for path in font_manager.findSystemFonts():
        if path.endswith(("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc")):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError):
                continue
    matplotlib.rcParams["font.family"] = [FONT_FAMILY, "sans-serif"]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _matplotlib().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _short(name: str) -> str:
    return name.removeprefix("江门市")


def chart_timeliness(fig_data: dict[str, Any]) -> str | None:
    plt = _matplotlib()
    names = {d["code"]: d["name"] for d in fig_data["departments"]}
    by = fig_data["sections"]["timeliness"]["by_dept"]
    codes = [c for c in sorted(by) if by[c]["obligations"]]
    if not codes:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 0.5 + 0.45 * len(codes)))
    left = [0] * len(codes)
    for key, label, color in (("on_time", "按期", "#3a8d5d"), ("overdue", "逾期", "#e0a526"),
                              ("delinquent", "严重逾期", "#c0392b")):
        vals = [by[c][key] for c in codes]
        ax.barh([_short(names.get(c, c)) for c in codes], vals, left=left, color=color,
                label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("应更新次数")
    ax.set_title("各部门更新及时性")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, fontsize=8,
              frameon=False)
    return _png(fig)


def chart_ranking(fig_data: dict[str, Any]) -> str | None:
    plt = _matplotlib()
    ranks = [r for r in fig_data["ranking"] if r["score"] is not None]
    if not ranks:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 0.5 + 0.45 * len(ranks)))
    ax.barh([f"{r['rank']}. {_short(r['name'])}" for r in ranks], [r["score"] for r in ranks],
            color="#2f6fa7")
    for i, r in enumerate(ranks):
        ax.text(r["score"] + 1, i, f"{r['score']:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, 110)
    ax.invert_yaxis()
    ax.set_title("综合得分")
    return _png(fig)


def chart_exchange(fig_data: dict[str, Any]) -> str | None:
    plt = _matplotlib()
    names = {d["code"]: d["name"] for d in fig_data["departments"]}
    by = fig_data["sections"]["exchange"]["by_dept"]
    codes = [c for c in sorted(k for k in by if k) if by[c]["deliveries"]]
    if not codes:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 3))
    bottom = [0] * len(codes)
    for mode, color in zip(MODE_ZH, ("#2f6fa7", "#6aa5d8", "#f0a04b", "#8e6bb5"),
                           strict=True):
        vals = [by[c][mode] for c in codes]
        ax.bar([_short(names.get(c, c)) for c in codes], vals, bottom=bottom, color=color,
               label=MODE_ZH[mode])
        bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
    ax.set_ylabel("交付次数")
    ax.set_title("各部门数据提供量（按交换方式）")
    ax.legend(fontsize=8)
    return _png(fig)


def _cell(value: Any, header: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if "率" in header:
            return f"{100 * value:.1f}%"
        if "得分" in header:
            return f"{value:.1f}"
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    return html.escape(str(value))


def _table(title: str, headers: list[str], rows: list[list[Any]], total: list[Any] | None,
           note: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v, h)}</td>" for v, h in
                                    zip(r, headers, strict=True)) + "</tr>" for r in rows)
    if total is not None:
        body += "<tr class='total'>" + "".join(
            f"<td>{_cell(v, h)}</td>" for v, h in zip(total, headers, strict=True)) + "</tr>"
    if not rows:
        body = f"<tr><td colspan='{len(headers)}'>本期无数据</td></tr>"
    return (f"<h2>{html.escape(title)}</h2>{note}<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


CSS = f"""
@page {{ size: A4; margin: 18mm 15mm 18mm 15mm;
        @bottom-center {{ content: "第 " counter(page) " 页 共 " counter(pages) " 页";
                          font-size: 8pt; color: #666; }} }}
body {{ font-family: "{FONT_FAMILY}", sans-serif; font-size: 9.5pt; color: #222; }}
h1 {{ color: #b22222;
      text-align: center; font-size: 20pt; margin: 0 0 4mm 0; }}
.issuer {{ text-align: center; border-bottom: 2px solid #b22222; padding-bottom: 3mm;
           margin-bottom: 5mm; }}
h2 {{ font-size: 12.5pt; border-left: 4px solid #b22222; padding-left: 2mm;
      margin: 6mm 0 2mm 0; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 3mm; font-size: 8.5pt; }}
th, td {{ border: 1px solid #999; padding: 1.2mm 1.5mm; text-align: center; }}
th {{ background: #eef2f7; }}
tr.total td {{ font-weight: bold; background: #f7f7f7; }}
thead {{ display: table-header-group; }}
img {{ width: 100%; margin: 2mm 0; }}
.note {{ color: #555; font-size: 8.5pt; }}
.kpi {{ display: flex; gap: 3mm; margin: 3mm 0; }}
.kpi div {{ flex: 1; border: 1px solid #ccc; border-radius: 2mm; padding: 2mm;
            text-align: center; }}
.kpi b {{ display: block; font-size: 15pt; color: #b22222; }}
"""


def _kpis(fig: dict[str, Any]) -> str:
    s = fig["sections"]
    t, r = s["timeliness"]["total"], s["requests"]["total"]

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}%"

    items = [("更新及时率", pct(t.get("rate"))),
             ("编目完整率", pct(s["cataloguing"]["total"].get("rate"))),
             ("平均质量得分", "—" if s["quality"]["total"].get("mean_score") is None
              else f"{s['quality']['total']['mean_score']:.1f}"),
             ("申请答复用时中位数", "—" if r.get("median_working_days") is None
              else f"{r['median_working_days']:g} 个工作日"),
             ("数据交付次数", str(s["exchange"]["total"].get("deliveries", 0)))]
    return "<div class='kpi'>" + "".join(f"<div><b>{v}</b>{k}</div>" for k, v in items) + \
        "</div>"


def build_html(fig: dict[str, Any], *, filed_at: datetime | None = None) -> str:
    """The report as one self-contained HTML document (charts inline)."""
    p = fig["period"]
    scope = "全市" if fig["scope"] == "city" else next(
        (d["name"] for d in fig["departments"] if d["code"] == fig["scope"]), fig["scope"])
    as_of = p["as_of"].strftime("%Y年%m月%d日")
    state = "" if p["complete"] else f"（统计期未结束，数据截至{as_of}）"
    parts = [f"<h1>江门市政务信息资源共享工作通报</h1><div class='issuer'>{ISSUER} · "
             f"{html.escape(p['zh'])}{state} · {html.escape(scope)} · 出具时间 "
             f"{(filed_at or datetime.now(CHINA)).astimezone(CHINA).strftime('%Y-%m-%d %H:%M')}</div>"]
    s = fig["sections"]
    t = s["timeliness"]["total"]
    parts.append(
        f"<h2>一、总体情况</h2><p>{html.escape(p['zh'])}，全市纳入监督的资源应更新 "
        f"{t.get('obligations', 0)} 次，按期 {t.get('on_time', 0)} 次、逾期 "
        f"{t.get('overdue', 0)} 次、严重逾期 {t.get('delinquent', 0)} 次；收到共享申请 "
        f"{s['requests']['total'].get('received', 0)} 件，逾期 "
        f"{s['requests']['total'].get('overdue', 0)} 件；收到纠错 "
        f"{s['corrections']['total'].get('raised', 0)} 件，办结 "
        f"{s['corrections']['total'].get('closed', 0)} 件；基础库新增校核工单 "
        f"{s['verification']['total'].get('opened', 0)} 件，期末未答复 "
        f"{s['verification']['total'].get('open', 0)} 件、逾期 "
        f"{s['verification']['total'].get('overdue', 0)} 件。</p>" + _kpis(fig))
    tables = summary_tables(fig)
    charts = {"综合排名": chart_ranking(fig), "更新及时性": chart_timeliness(fig),
              "数据交换量": chart_exchange(fig)}
    notes = {
        "综合排名": "<p class='note'>综合得分 = " + " + ".join(
            f"{k}×{v:g}" for k, v in fig["weights"].items()).replace(
            "cataloguing", "编目完整率").replace("timeliness", "更新及时率").replace(
            "quality", "质量得分/100").replace("requests", "申请按期率") +
            "（无该项数据的部门按其余各项折算）。</p>",
        "更新及时性": "<p class='note'>规则：" + "；".join(
            f"{CYCLE_ZH.get(k, k)}：{html.escape(v.split(' / ')[0])}"
            for k, v in fig["rules"].items()) +
            "。期限遇节假日顺延至下一工作日（国务院办公厅节假日安排）。</p>",
        "基础库校核工单": "<p class='note'>按权威部门统计：副本与权威部门取值不一致即开单，"
            "权威部门须在规定工作日内确认或更正；逾期 = 答复（或不一致消除）晚于期限，或期末仍未答复且已过期限。</p>",
    }
    for n, (title, headers, rows, total) in enumerate(tables, 2):
        zh_n = "二三四五六七八九十"[n - 2]
        img = charts.get(title)
        parts.append(_table(f"{zh_n}、{title}", headers, rows, total, notes.get(title, "")))
        if img:
            parts.append(f"<img src='{img}' alt='{html.escape(title)}'>")
    overdue = [r for r in drill_tables(fig)[0][2] if r[7] in ("逾期", "严重逾期")
               and r[6] is None]
    parts.append(_table("附：当前未更新的逾期资源清单", ["部门", "资源", "名称", "更新周期",
                                               "应更新期限", "起算日", "更新日期", "结果",
                                               "逾期工作日"], overdue, None))
    parts.append("<p class='note'>各项数字的明细（每一条计入的记录）见同期 XLSX 工作簿的“明细”工作表。</p>")
    return (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>通报 "
            f"{html.escape(p['label'])}</title><style>{CSS}</style></head><body>"
            + "".join(parts) + "</body></html>")


def render_pdf(fig: dict[str, Any], *, filed_at: datetime | None = None) -> bytes:
    """The report as PDF bytes."""
    from weasyprint import HTML

    return HTML(string=build_html(fig, filed_at=filed_at)).write_pdf()
