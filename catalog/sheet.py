"""The survey sheet's layout (调查表, 附件1) and the import report, shared by the reader
(:mod:`catalog.survey_import`) and the writers (:mod:`catalog.sheet_writers`).

The survey sheet has one row per data item (信息项); a resource's own columns are merged
down across its items' rows, as departments fill it in by hand. :data:`COLUMNS` is the
one description of its columns: the template and exports write them, the import finds
them by their header texts (and aliases).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from catalog import store, vocab
from catalog.vocab import norm_key

SURVEY_SHEET = "调查表"
SUMMARY_SHEET = "汇总表"
LISTS_SHEET = "代码表"
NOTES_SHEET = "填表说明"
SURVEY_TITLE = "江门市政务信息资源调查表"
SUMMARY_TITLE = "江门市政务信息资源汇总表"
CATALOG_TITLE = "江门市政务信息资源目录"
TEMPLATE_ROWS = 300


@dataclass(frozen=True)
class Col:
    key: str
    header: str  # the sub-header written in the template
    parent: str | None = None  # the merged group header above it
    level: str = "entry"  # entry | item
    width: int = 14
    vocab: vocab.Vocab | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Normalised header texts that mean this column (combined first)."""
        out = []
        if self.parent:
            out.append(norm_key(self.parent + self.header))
        out += [norm_key(self.header)] + [norm_key(a) for a in self.aliases]
        return out


COLUMNS: list[Col] = [
    Col("seq", "序号", width=6),
    Col("class", "类", "信息资源分类", width=16, vocab=vocab.CLASSES, required=True),
    Col("item", "项", "信息资源分类", width=20, required=True),
    Col("category", "目", "信息资源分类", width=18, required=True),
    Col("subcategory", "细目", "信息资源分类", width=14),
    Col("name", "信息资源名称", width=24, required=True),
    Col("code", "信息资源代码", width=17),
    Col("provider", "信息资源提供方", width=20, required=True, aliases=("提供方", "提供单位")),
    Col("uscc", "提供方代码", width=21, required=True,
        aliases=("信息资源提供方代码", "统一社会信用代码")),
    Col("abstract", "信息资源摘要", width=36, required=True, aliases=("摘要",)),
    Col("format", "信息资源格式", width=12, vocab=vocab.FORMATS, required=True,
        aliases=("格式",)),
    Col("item_name", "信息项名称", "信息项", level="item", width=18, required=True,
        aliases=("名称",)),
    Col("data_type", "数据类型", "信息项", level="item", width=9, vocab=vocab.DATA_TYPES,
        required=True),
    Col("length", "数据长度", "信息项", level="item", width=9, aliases=("长度",)),
    Col("item_sharing", "共享类型", "信息项", level="item", width=12,
        vocab=vocab.SHARING_TYPES, aliases=("信息项共享类型",)),
    Col("sharing_type", "共享类型", "共享属性", width=12, vocab=vocab.SHARING_TYPES,
        required=True),
    Col("sharing_condition", "共享条件", "共享属性", width=26),
    Col("sharing_method", "共享方式", "共享属性", width=18, vocab=vocab.SHARING_METHODS,
        required=True),
    Col("is_open", "是否向社会开放", "开放属性", width=10, vocab=vocab.OPEN, required=True,
        aliases=("是否开放",)),
    Col("open_condition", "开放条件", "开放属性", width=20),
    Col("update_cycle", "更新周期", width=10, vocab=vocab.UPDATE_CYCLES, required=True),
    Col("publish_date", "发布日期", width=12),
    Col("related_codes", "关联资源代码", width=20),
]
COL_BY_KEY = {c.key: c for c in COLUMNS}
ENTRY_KEYS = [c.key for c in COLUMNS if c.level == "entry" and c.key != "seq"]
ITEM_KEYS = [c.key for c in COLUMNS if c.level == "item"]
# content field (catalog.store) → sheet column
FIELD_COLUMN = {
    "class_code": "class", "item_code": "item", "item_name": "item",
    "category_code": "category", "category_name": "category",
    "subcategory_code": "subcategory", "subcategory_name": "subcategory", "name": "name",
    "code": "code", "provider_code": "uscc", "abstract": "abstract", "format": "format",
    "sharing_type": "sharing_type", "sharing_condition": "sharing_condition",
    "sharing_method": "sharing_method", "is_open": "is_open",
    "open_condition": "open_condition", "update_cycle": "update_cycle",
    "publish_date": "publish_date", "related_codes": "related_codes", "items": "item_name",
}
ITEM_FIELD_COLUMN = {"name": "item_name", "data_type": "data_type", "length": "length",
                     "sharing_type": "item_sharing"}
PART_WIDTH = {"item": 2, "category": 3}


# ------------------------------------------------------------------------ the report

@dataclass(frozen=True)
class CellError:
    sheet: str
    row: int | None
    column: str | None  # letter
    header: str | None
    zh: str
    en: str

    @property
    def cell(self) -> str:
        sheet = f"'{self.sheet}'" if re.search(r"[\s!'-]", self.sheet) else self.sheet
        if self.row is None:
            return sheet
        return f"{sheet}!{self.column or ''}{self.row}"

    def __str__(self) -> str:
        where = self.cell + (f"（{self.header}）" if self.header else "")
        return f"{where}：{self.zh} / {self.en}"

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column,
                "header": self.header, "message": f"{self.zh} / {self.en}"}


@dataclass
class ImportReport:
    path: str
    errors: list[CellError] = field(default_factory=list)
    warnings: list[CellError] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # parsed content
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # code, name, outcome

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        out = {"created": 0, "updated": 0, "unchanged": 0}
        for _, _, o in self.outcomes:
            out[o] = out.get(o, 0) + 1
        return out

    def text(self) -> str:
        lines = []
        if self.errors:
            lines.append(f"调查表有 {len(self.errors)} 处错误，未导入任何内容 / "
                         f"{len(self.errors)} error(s): nothing was imported")
            lines += [f"  {e}" for e in self.errors]
        for w in self.warnings:
            lines.append(f"  提示 / note: {w}")
        if self.ok and self.outcomes:
            c = self.counts()
            lines.append(f"导入 {len(self.outcomes)} 条信息资源：新增 {c['created']}，更新 "
                         f"{c['updated']}，未变 {c['unchanged']} / imported "
                         f"{len(self.outcomes)} entries: {c['created']} created, "
                         f"{c['updated']} updated, {c['unchanged']} unchanged")
        return "\n".join(lines)


class SheetError(store.CatalogError):
    """The sheet could not be imported; ``report`` lists every error by cell."""

    def __init__(self, report: ImportReport):
        super().__init__(report.text())
        self.report = report
