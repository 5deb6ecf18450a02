"""The report's tables, once: the PDF and the workbook lay out the same rows.

Each table is ``(title, headers, rows, total_row | None)`` built from the figures
(:func:`supervision.figures.compute`); a drill-down sheet is ``(title, headers, rows)``
from a section's ``rows``. Values stay numbers (rates as fractions) — the PDF formats
them, the workbook keeps them numeric so its totals can be checked.
"""

from __future__ import annotations

from typing import Any

from supervision.freshness import CYCLE_ZH, STATE_ZH

Table = tuple[str, list[str], list[list[Any]], list[Any] | None]
OUTCOME_ZH = {**STATE_ZH, "on_time": "按期", "pending": "今日到期"}
ANSWER_ZH = {"fixed": "已修正", "not_error": "非错误", "open": "未答复"}
TICKET_STATE_ZH = {"open": "未答复", "answered": "已答复待复核", "closed": "已关闭"}
MODE_ZH = {"system": "系统对接", "fep": "前置机", "query": "联机查询", "download": "批量下载"}


def _names(fig: dict[str, Any]) -> dict[str, str]:
    return {d["code"]: d["name"] for d in fig["departments"]}


def _rows(fig: dict[str, Any], section: str, cols: list[str]) -> tuple[list[list[Any]],
                                                                       list[Any]]:
    names = _names(fig)
    s = fig["sections"][section]
    body = [[names.get(code, code), *[v.get(c) for c in cols]]
            for code, v in sorted(s["by_dept"].items(), key=lambda kv: kv[0] or "")]
    total = ["合计（全市）" if fig["scope"] == "city" else "合计",
             *[s["total"].get(c) for c in cols]]
    return body, total


def summary_tables(fig: dict[str, Any]) -> list[Table]:
    """The report's tables, in its order."""
    out: list[Table] = []
    ranks = [[r["rank"], r["name"], r["score"], r["cataloguing"], r["timeliness"],
              r["quality"], r["requests"]] for r in fig["ranking"]]
    out.append(("综合排名", ["名次", "部门", "综合得分", "编目完整率", "更新及时率", "质量系数",
                         "申请按期率"], ranks, None))
    cols = ["resources", "obligations", "on_time", "overdue", "delinquent", "rate",
            "now_overdue", "now_delinquent"]
    body, total = _rows(fig, "timeliness", cols)
    out.append(("更新及时性", ["部门", "资源数", "应更新次数", "按期", "逾期", "严重逾期", "及时率",
                          "当前逾期", "当前严重逾期"], body, total))
    cols = ["entries", "complete", "missing_metadata", "declared", "declared_loaded",
            "declared_current", "uncatalogued", "rate"]
    body, total = _rows(fig, "cataloguing", cols)
    out.append(("目录编制", ["部门", "目录条目", "元数据完整", "元数据缺项", "调查表申报", "已接入",
                         "接入且按期", "未编目资源", "编目完整率"], body, total))
    cols = ["resources", "scored", "mean_score", "ratings", "mean_rating"]
    body, total = _rows(fig, "quality", cols)
    out.append(("数据质量与评议", ["部门", "资源数", "有质量报告", "平均质量得分", "评议次数",
                            "平均评分（1–5）"], body, total))
    cols = ["received", "answered", "automatic", "overdue", "median_working_days", "rate"]
    body, total = _rows(fig, "requests", cols)
    out.append(("共享申请办理", ["部门", "收到申请", "已答复", "依法直接不予", "逾期",
                           "答复用时中位数（工作日）", "按期率"], body, total))
    cols = ["deliveries", "system", "fep", "query", "download", "rows", "received"]
    body, total = _rows(fig, "exchange", cols)
    out.append(("数据交换量", ["部门", "提供次数", "系统对接", "前置机", "联机查询", "批量下载",
                          "提供记录数", "获取次数"], body, total))
    cols = ["raised", "closed", "fixed", "not_error", "open", "overdue"]
    body, total = _rows(fig, "corrections", cols)
    out.append(("纠错处理", ["部门", "本期收到", "本期办结", "已修正", "非错误", "未答复", "逾期"],
                body, total))
    cols = ["opened", "open", "answered", "closed", "overdue", "mean_answer_working_days"]
    body, total = _rows(fig, "verification", cols)
    out.append(("基础库校核工单", ["权威部门", "本期新增", "未答复", "已答复待复核", "已关闭", "逾期",
                            "平均答复用时（工作日）"], body, total))
    return out


def drill_tables(fig: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The rows behind every figure, one sheet per section."""
    names = _names(fig)
    s = fig["sections"]

    def n(code):
        return names.get(code, code) if code else "（公众）"

    return [
        ("明细-更新及时性", ["部门", "资源", "名称", "更新周期", "应更新期限", "起算日", "更新日期",
                       "结果", "逾期工作日"],
         [[n(r["dept"]), r["resource"], r["title"], CYCLE_ZH.get(r["cycle"], r["cycle"]),
           r["deadline"], r["since"], r["updated_on"], OUTCOME_ZH[r["outcome"]],
           r["late_working_days"]] for r in s["timeliness"]["rows"]]),
        ("明细-目录编制", ["部门", "类型", "资源代码", "名称", "资源", "调查表申报", "已接入",
                      "按期", "元数据完整", "问题"],
         [[n(r["dept"]), "目录条目" if r["kind"] == "entry" else "未编目资源", r["code"],
           r["name"], r["resource"], r["declared"], r["loaded"], r["current"], r["complete"],
           r["problems"]] for r in s["cataloguing"]["rows"]]),
        ("明细-数据质量", ["部门", "类型", "资源", "版本", "得分/评分", "评议部门", "评语", "时间"],
         [[n(r["dept"]), "质量报告" if r["kind"] == "version" else "评议", r["resource"],
           r.get("version"), r["score"], n(r.get("rater")) if r["kind"] == "rating" else None,
           r.get("comment"), r.get("at")] for r in s["quality"]["rows"]]),
        ("明细-共享申请", ["部门", "申请编号", "资源", "申请部门", "状态", "提交日期", "答复期限",
                      "答复日期", "依法直接不予", "用时（工作日）", "逾期"],
         [[n(r["dept"]), r["id"], r["resource"], n(r["applicant"]), r["status"],
           r["submitted"], r["deadline"], r["answered"], r["automatic"],
           r["answer_working_days"], r["overdue"]] for r in s["requests"]["rows"]]),
        ("明细-交换量", ["提供部门", "资源", "获取部门", "交换方式", "次数", "记录数", "字节数"],
         [[n(r["dept"]), r["resource"], n(r["consumer"]), MODE_ZH.get(r["mode"], r["mode"]),
           r["deliveries"], r["rows"], r["bytes"]] for r in s["exchange"]["rows"]]),
        ("明细-纠错", ["部门", "纠错编号", "资源", "提出部门", "指明记录", "字段", "区域", "提出日期",
                    "答复期限", "办结日期", "答复", "修正版本", "逾期"],
         [[n(r["dept"]), r["id"], r["resource"], n(r["raiser"]), "是" if r["record"] else "否", r["field"],
           r["region"], r["raised"], r["deadline"], r["closed"], ANSWER_ZH[r["answer"]],
           r["fixed_version"], r["overdue"]] for r in s["corrections"]["rows"]]),
        ("明细-校核工单", ["权威部门", "工单编号", "基础库", "属性", "副本部门", "开单日期", "答复期限",
                      "答复日期", "关闭日期", "状态", "用时（工作日）", "逾期"],
         [[n(r["dept"]), r["id"], r["library"], r["attribute"], n(r["copy_dept"]), r["opened"],
           r["deadline"], r["answered"], r["closed"], TICKET_STATE_ZH[r["state"]],
           r["answer_working_days"], r["overdue"]] for r in s["verification"]["rows"]]),
    ]
