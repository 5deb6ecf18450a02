"""Controlled vocabularies of the catalog, text normalisation and resource codes.

Values are stored under short English keys (one name per idea, DESIGN §2) and shown in
Chinese: the survey sheet, the exports and the API all speak the labels below. Sheets
arrive typed by hand: full-width letters and digits, stray and ideographic spaces,
aliases (``有条件`` for ``有条件共享``, ``字符型`` for ``C``) are all read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from jmgeo.errors import UserError

CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(value) -> str:
    """Free text: trim, ideographic spaces to spaces, runs of blanks to one space.

    Line breaks inside a cell are kept (an abstract may have paragraphs).
    """
    if value is None:
        return ""
    text = str(value).replace("\u3000", " ").replace("\xa0", " ").replace("\r\n", "\n")
    text = CONTROL_RE.sub("", text)  # NUL and other control characters never belong
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


def norm_key(value) -> str:
    """A controlled value or header for comparison: NFKC (full-width → half-width),
    no blanks at all, no required-field markers."""
    text = unicodedata.normalize("NFKC", clean_text(value))
    return re.sub(r"[\s*＊]+", "", text)


@dataclass(frozen=True)
class Vocab:
    """One controlled vocabulary: key → Chinese label, with accepted aliases."""

    name: str  # Chinese name of the field
    name_en: str
    labels: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)  # alias → key

    def label(self, key: str | None) -> str:
        return self.labels.get(key or "", key or "")

    @property
    def choices(self) -> list[str]:
        return list(self.labels.values())

    def parse(self, value) -> str | None:
        """The key for a typed value, or None when it is not in the vocabulary."""
        k = norm_key(value)
        if not k:
            return None
        for key, label in self.labels.items():
            if k in (norm_key(label), norm_key(key)):
                return key
        for alias, key in self.aliases.items():
            if k == norm_key(alias):
                return key
        return None


CLASSES = Vocab("信息资源分类（类）", "resource class", {
    "1": "1 基础信息资源", "2": "2 主题信息资源", "3": "3 部门信息资源"},
    {"基础信息资源": "1", "主题信息资源": "2", "部门信息资源": "3",
     "基础": "1", "主题": "2", "部门": "3"})

# 基础信息资源's five 项 (the guide's national base libraries)
BASE_ITEMS = {"01": "人口", "02": "法人单位", "03": "自然资源和空间地理", "04": "社会信用",
              "05": "电子证照"}

FORMATS = Vocab("信息资源格式", "format", {
    "electronic_file": "电子文件", "spreadsheet": "电子表格", "database": "数据库",
    "image": "图形图像", "streaming": "流媒体", "self_describing": "自描述格式",
    "vector": "矢量", "raster": "栅格", "service": "服务接口"},
    {"矢量数据": "vector", "栅格数据": "raster", "接口": "service", "图像": "image",
     "表格": "spreadsheet"})
SPATIAL_FORMATS = ("vector", "raster", "service")

DATA_TYPES = Vocab("数据类型", "data type", {
    "C": "C", "N": "N", "Y": "Y", "D": "D", "T": "T", "L": "L", "M": "M", "G": "G",
    "B": "B", "I": "I", "F": "F"},
    {"字符型": "C", "数值型": "N", "货币型": "Y", "日期型": "D", "日期时间型": "T",
     "逻辑型": "L", "备注型": "M", "通用型": "G", "二进制": "B", "整数型": "I",
     "浮点型": "F", "c": "C", "n": "N", "y": "Y", "d": "D", "t": "T", "l": "L", "m": "M",
     "g": "G", "b": "B", "i": "I", "f": "F"})
DATA_TYPE_NAMES = {"C": "字符型", "N": "数值型", "Y": "货币型", "D": "日期型",
                   "T": "日期时间型", "L": "逻辑型", "M": "备注型", "G": "通用型",
                   "B": "二进制", "I": "整数型", "F": "浮点型"}
# types whose length must be given
LENGTH_REQUIRED = ("C", "N")

SHARING_TYPES = Vocab("共享类型", "sharing type", {
    "unconditional": "无条件共享", "conditional": "有条件共享", "not_shared": "不予共享"},
    {"无条件": "unconditional", "有条件": "conditional", "不予": "not_shared",
     "不共享": "not_shared"})
SHARING_RANK = {"unconditional": 0, "conditional": 1, "not_shared": 2}

SHARING_METHODS = Vocab("共享方式", "sharing method", {
    "platform_database": "共享平台（数据库）", "platform_api": "共享平台（接口）",
    "platform_file": "共享平台（文件）", "email": "邮件", "media": "介质"},
    {"数据库": "platform_database", "接口": "platform_api", "文件": "platform_file",
     "共享平台-数据库": "platform_database", "共享平台-接口": "platform_api",
     "共享平台-文件": "platform_file", "共享平台/数据库": "platform_database",
     "共享平台/接口": "platform_api", "共享平台/文件": "platform_file",
     "电子邮件": "email", "光盘": "media", "拷盘": "media"})

OPEN = Vocab("是否向社会开放", "open to the public", {"yes": "是", "no": "否"},
             {"开放": "yes", "不开放": "no", "Y": "yes", "N": "no", "yes": "yes", "no": "no"})

UPDATE_CYCLES = Vocab("更新周期", "update cycle", {
    "realtime": "实时", "daily": "每日", "weekly": "每周", "monthly": "每月",
    "quarterly": "每季度", "halfyearly": "每半年", "yearly": "每年", "other": "其他"},
    {"每天": "daily", "每季": "quarterly", "季度": "quarterly", "半年": "halfyearly",
     "每年度": "yearly", "年度": "yearly", "月度": "monthly", "不定期": "other"})

STATUSES = {"draft": "草稿", "submitted": "已报送", "published": "已发布", "retired": "已撤销"}

# the plan's four sharing classes (layers.vocab.SHARING_CLASSES) on the catalog fields
SHARING_CLASS_TO_CATALOG = {
    "open": ("unconditional", True),
    "unconditional": ("unconditional", False),
    "conditional": ("conditional", False),
    "not_shared": ("not_shared", False),
}


def sharing_class(sharing_type: str, is_open: bool) -> str:
    """The plan's class of a catalog entry (DESIGN §6): open = 开放 是 + 无条件."""
    if is_open and sharing_type == "unconditional":
        return "open"
    return sharing_type


ACCESS_RIGHTS = {  # dct:accessRights per sharing class
    "open": "可社会公开 / public",
    "unconditional": "无条件共享 / unconditional sharing between government departments",
    "conditional": "有条件共享 / conditional sharing on an approved request",
    "not_shared": "不予共享 / not shared",
}

# ---------------------------------------------------------------------------- codes

CODE_RE = re.compile(r"^([123])(\d{2})(\d{3})(\d*)/(\d{6})$")
PART_RE = re.compile(r"^(\d+)\s*(.*)$")


class CodeError(UserError, ValueError):
    pass


def classification_prefix(class_code: str, item_code: str, category_code: str,
                          subcategory_code: str | None = None) -> str:
    """前段码: 类 (1 digit) + 项 (2) + 目 (3) + 细目 (n digits, may be empty)."""
    if class_code not in CLASSES.labels:
        raise CodeError(f"类代码应为1、2或3 / class code must be 1, 2 or 3, not {class_code!r}")
    if not re.fullmatch(r"\d{2}", item_code or ""):
        raise CodeError(f"项代码应为2位数字 / item code must have 2 digits, not {item_code!r}")
    if not re.fullmatch(r"\d{3}", category_code or ""):
        raise CodeError(f"目代码应为3位数字 / category code must have 3 digits, "
                        f"not {category_code!r}")
    if subcategory_code and not re.fullmatch(r"\d{1,6}", subcategory_code):
        raise CodeError(f"细目代码应为1–6位数字 / sub-category code must have 1–6 digits, "
                        f"not {subcategory_code!r}")
    return f"{class_code}{item_code}{category_code}{subcategory_code or ''}"


def format_code(prefix: str, seq: int) -> str:
    return f"{prefix}/{seq:06d}"


def parse_code(code: str) -> tuple[str, int]:
    """Split ``前段码/后段码`` into (prefix, sequence); raise CodeError when malformed."""
    norm = norm_key(code)
    m = CODE_RE.match(norm)
    if not m:
        raise CodeError(
            f"信息资源代码「{code}」格式错误，应为“前段码/后段码”，如 103001/000001"
            f"（前段码=类1位+项2位+目3位+细目，后段码=6位顺序号） / malformed resource code "
            f"{code!r}: expected PREFIX/SEQUENCE such as 103001/000001")
    seq = int(m.group(5))
    if seq == 0:
        raise CodeError(f"信息资源代码「{code}」的后段码不能为000000 / sequence number "
                        "must not be 000000")
    return norm.split("/")[0], seq


def split_part(value) -> tuple[str, str] | None:
    """``"03 自然资源和空间地理"`` → ("03", "自然资源和空间地理"); None when no code."""
    text = unicodedata.normalize("NFKC", clean_text(value))
    m = PART_RE.match(text)
    if not m:
        return None
    return m.group(1), m.group(2).strip()


def join_part(code: str | None, name: str | None) -> str:
    if not code:
        return ""
    return f"{code} {name}".strip()
