"""Which text encoding are the attributes in? Decide, say why, and refuse garbled text.

Order of evidence: ``--encoding`` (the user), the ``.cpg`` file, then the bytes
themselves — UTF-8 is self-validating (GBK text is almost never valid UTF-8), GBK /
GB18030 text must decode *and* read as common Chinese (GB 2312 characters). The DBF's
language-driver byte (LDID) is only a hint: many Chinese tools write 0x57 (ANSI) or 0
for GBK data. Whatever is chosen is checked against samples from the start, middle and
end of the file; text that does not decode is refused rather than loaded as mojibake.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from loaders.dbf import read_header
from loaders.errors import LoaderError

SAMPLE_BYTES = 2 * 1024 * 1024  # per window; three windows (start, middle, end)

# .cpg spellings → (GDAL/iconv name, python codec, label)
_ALIASES = {
    "utf8": "UTF-8", "utf-8": "UTF-8", "65001": "UTF-8",
    "gbk": "GB18030", "cp936": "GB18030", "936": "GB18030", "gb2312": "GB18030",
    "gb18030": "GB18030", "54936": "GB18030", "ansi 936": "GB18030", "euc-cn": "GB18030",
    "big5": "BIG5", "950": "BIG5", "cp950": "BIG5",
    "latin1": "ISO-8859-1", "iso-8859-1": "ISO-8859-1", "iso88591": "ISO-8859-1",
    "88591": "ISO-8859-1", "1252": "CP1252", "cp1252": "CP1252", "ansi 1252": "CP1252",
    "ascii": "UTF-8", "us-ascii": "UTF-8",
}
_PY = {"UTF-8": "utf-8", "GB18030": "gb18030", "BIG5": "big5", "ISO-8859-1": "latin-1",
       "CP1252": "cp1252"}
_LABEL = {"UTF-8": "UTF-8", "GB18030": "GBK/GB18030", "BIG5": "Big5",
          "ISO-8859-1": "Latin-1", "CP1252": "Windows-1252"}
_LDID = {0x4D: "GB18030", 0x7A: "GB18030", 0x4F: "BIG5", 0x78: "BIG5", 0x57: None,
         0x03: "CP1252", 0x57 + 1: None}


@dataclass(frozen=True)
class EncodingDecision:
    gdal: str            # name GDAL/iconv understands (UTF-8, GB18030 …)
    label: str           # what the report says (GBK/GB18030 …)
    source: str          # option | cpg | detected | ldid | format
    reason: str          # one bilingual sentence: why
    sample: str | None = None  # a decoded sample value, so the report shows it reads right

    @property
    def codec(self) -> str:
        return _PY.get(self.gdal, self.gdal.lower())

    def as_dict(self) -> dict[str, str | None]:
        return {"encoding": self.label, "gdal": self.gdal, "source": self.source,
                "reason": self.reason, "sample": self.sample}


def normalise(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        info = codecs.lookup(key)
    except LookupError:
        return ""
    return {"utf-8": "UTF-8", "gbk": "GB18030", "gb2312": "GB18030",
            "gb18030": "GB18030"}.get(info.name, info.name.upper())


# -- reading text bytes out of a DBF -------------------------------------------------
def dbf_text_values(dbf: Path, window: int = SAMPLE_BYTES) -> tuple[list[bytes], int | None]:
    """Non-ASCII character-field values from three windows of the DBF, and the LDID."""
    head = read_header(dbf)
    nrec, hlen, rlen, ldid = head.records, head.header_len, head.record_len, head.ldid
    fields = [(f.offset, f.width) for f in head.fields if f.kind in ("C", "M", "V", "W")]
    if not fields or rlen == 0 or nrec == 0:
        return [], ldid
    per = max(window // rlen, 1)
    starts = sorted({0, max(nrec // 2 - per // 2, 0), max(nrec - per, 0)})
    values: list[bytes] = []
    with open(dbf, "rb") as fh:
        for start in starts:
            fh.seek(hlen + start * rlen)
            block = fh.read(min(per, nrec - start) * rlen)
            for r in range(0, len(block) - rlen + 1, rlen):
                rec = block[r:r + rlen]
                for o, n in fields:
                    v = rec[o:o + n].rstrip(b" \x00")
                    if v and not v.isascii():
                        values.append(v)
    return values, ldid


def _utf8_ok(values: list[bytes]) -> tuple[int, int]:
    bad = 0
    for v in values:
        try:
            v.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a multi-byte character cut by the field width is a writer's fault, not a sign
            if exc.start < len(v) - 3:
                bad += 1
    return len(values) - bad, bad


def _gb_ok(values: list[bytes]) -> tuple[int, int, float]:
    """(decodable, not decodable, share of decoded non-ASCII characters in GB 2312)."""
    bad = 0
    common = total = 0
    for v in values:
        try:
            s = v.decode("gb18030")
        except UnicodeDecodeError:
            bad += 1
            continue
        for ch in s:
            if ord(ch) > 127:
                total += 1
                try:
                    ch.encode("gb2312")
                    common += 1
                except UnicodeEncodeError:
                    pass
    return len(values) - bad, bad, (common / total if total else 1.0)


def _first_decoded(values: list[bytes], codec: str) -> str | None:
    for v in values[:50]:
        try:
            return v.decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def _garbled(display: str, claimed: str, by_zh: str, by_en: str, alt: str | None,
             sample: str | None) -> LoaderError:
    # no sample when the only values are characters cut by the field width
    eg_zh, eg_en = (f"（如“{sample}”）", f" (e.g. {sample!r})") if sample else ("", "")
    hint_zh = f"按 {alt} 解码正常{eg_zh}" if alt else "也无法按 UTF-8 或 GBK 正确解码"
    hint_en = f"it reads correctly as {alt}{eg_en}" if alt else \
        "it does not decode as UTF-8 or GBK either"
    fix_zh = f"用 --encoding {alt} 装载，或改正 .cpg" if alt else "用 --encoding 指明正确编码"
    fix_en = f"load with --encoding {alt}, or correct the .cpg" if alt else \
        "pass the right --encoding"
    return LoaderError(
        "wrong_encoding", f"属性文字不是{by_zh}所说的 {claimed} 编码（会成为乱码），{hint_zh}",
        f"the attribute text is not in {claimed} as {by_en} says (it would load as "
        f"garbage); {hint_en}", file=display, fix_zh=fix_zh, fix_en=fix_en)


def decide_dbf(dbf: Path, display: str, option: str | None = None,
               cpg: Path | None = None) -> EncodingDecision:
    """Decide a Shapefile's attribute encoding (see module docstring)."""
    values, ldid = dbf_text_values(dbf)
    return decide_bytes(values, display, option=option, cpg=cpg, ldid=ldid)


def decide_bytes(values: list[bytes], display: str, option: str | None = None,
                 cpg: Path | None = None, ldid: int | None = None) -> EncodingDecision:
    utf_good, utf_bad = _utf8_ok(values)
    gb_good, gb_bad, gb_common = _gb_ok(values) if values else (0, 0, 1.0)
    utf8_fits = utf_bad == 0 or utf_bad <= 0.001 * len(values)
    gb_fits = gb_bad == 0 and gb_common >= 0.9
    alt = "UTF-8" if utf8_fits else ("GBK" if gb_fits else None)
    alt_sample = _first_decoded(values, "utf-8" if utf8_fits else "gb18030") if alt else None

    claimed, by_zh, by_en = None, "", ""
    if option:
        claimed, by_zh, by_en = normalise(option), "--encoding", "--encoding"
        if not claimed:
            raise LoaderError("bad_option", f"不认识的编码 {option!r}", f"unknown encoding "
                              f"{option!r}", file=display, fix_zh="使用 UTF-8、GBK、GB18030 等",
                              fix_en="use UTF-8, GBK, GB18030 …")
    elif cpg is not None:
        text = cpg.read_bytes().decode("ascii", "replace").strip()
        claimed = normalise(text)
        by_zh, by_en = f".cpg（{text}）", f"the .cpg ({text})"
        if not claimed:
            claimed = None  # unreadable .cpg: fall through to detection, say so below
    if claimed:
        codec = _PY.get(claimed, claimed.lower())
        if claimed == "UTF-8":
            ok = utf8_fits
        elif claimed == "GB18030":
            ok = gb_bad == 0 and gb_common >= 0.9
        else:
            ok = True
            for v in values:
                try:
                    v.decode(codec)
                except UnicodeDecodeError:
                    ok = False
                    break
        if not ok:
            other = alt if alt and alt.replace("GBK", "GB18030") != claimed else None
            raise _garbled(display, _LABEL.get(claimed, claimed), by_zh, by_en, other,
                           alt_sample)
        source = "option" if option else "cpg"
        return EncodingDecision(
            claimed, _LABEL.get(claimed, claimed), source,
            f"按{by_zh}使用 {_LABEL.get(claimed, claimed)} / {_LABEL.get(claimed, claimed)} "
            f"as {by_en} says" + ("" if values else " (no non-ASCII text to check)"),
            _first_decoded(values, codec))
    if not values:
        return EncodingDecision("UTF-8", "UTF-8", "detected",
                                "属性文字全是ASCII字符 / all attribute text is ASCII")
    if utf8_fits:
        return EncodingDecision(
            "UTF-8", "UTF-8", "detected",
            f"无 .cpg；{utf_good} 个非ASCII值都是有效的 UTF-8 / no .cpg; all {utf_good} "
            "non-ASCII values are valid UTF-8", alt_sample)
    if gb_fits:
        ldid_note = f"，LDID=0x{ldid:02X}" if ldid else ""
        return EncodingDecision(
            "GB18030", "GBK/GB18030", "detected",
            f"无 .cpg{ldid_note}；文字不是 UTF-8，按 GBK 解码均为常用汉字 / no .cpg; the text is "
            f"not UTF-8 and {gb_good} values decode as GBK into common Chinese characters",
            alt_sample)
    hint = _LDID.get(ldid or 0)
    if hint == "BIG5":
        try:
            for v in values:
                v.decode("big5")
            return EncodingDecision("BIG5", "Big5", "ldid", "LDID 指明 Big5 / the DBF's "
                                    "language driver says Big5", _first_decoded(values, "big5"))
        except UnicodeDecodeError:
            pass
    raise LoaderError(
        "unknown_encoding", "无法确定属性文字的编码：既不是有效的 UTF-8，也不是可读的 GBK 中文",
        "cannot tell the attribute text encoding: it is neither valid UTF-8 nor readable "
        "GBK Chinese", file=display,
        fix_zh="用 --encoding 指明编码（如 BIG5、CP1252），或提供 .cpg 文件",
        fix_en="pass --encoding (e.g. BIG5, CP1252) or supply a .cpg file")


def decide_text_file(path: Path, display: str, option: str | None = None) -> EncodingDecision:
    """Encoding of a delimited text file (CSV): the same evidence, by lines."""
    size = path.stat().st_size
    values: list[bytes] = []
    header = b""
    with open(path, "rb") as fh:
        for start in sorted({0, max(size // 2 - SAMPLE_BYTES // 2, 0),
                             max(size - SAMPLE_BYTES, 0)}):
            fh.seek(start)
            block = fh.read(SAMPLE_BYTES)
            lines = block.split(b"\n")
            if start == 0 and lines:
                header = lines.pop(0)  # checked too, but last: the sample shown is data
            if start > 0:
                lines = lines[1:]
            if start + SAMPLE_BYTES < size:
                lines = lines[:-1]
            values += [ln for ln in lines if ln and not ln.isascii()]
    if header.startswith(codecs.BOM_UTF8):
        header = header[3:]
    if header and not header.isascii():
        values.append(header)
    return decide_bytes(values, display, option=option)
