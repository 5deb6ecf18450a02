"""Chinese full-text search without an external tokenizer.

Chinese has no spaces, so we index every run of CJK characters as its single characters
and its overlapping bigrams (道路中心线 → 道 路 中 心 线, 道路 路中 中心 心线), and latin
words and digit runs as lower-case words. The lexemes go into a ``tsvector`` literal
(weights: A name and code, B data items, C abstract and classification, D provider) so
PostgreSQL's GIN index does the matching, locale-independently. A query becomes a
phrase of bigrams (道路中心 → 道路 <-> 路中 <-> 中心), one character a unigram, and latin
words prefixes; several words are AND-ed. Ranking: exact name, name prefix, name
contains, then ``ts_rank`` over the weights (a name hit outweighs an item hit).
"""

from __future__ import annotations

import re
import unicodedata

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN_RE = re.compile(rf"[{CJK}]+|[a-z0-9]+")
MAX_POS = 16383


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


def _cjk(run: str) -> bool:
    return bool(re.match(rf"[{CJK}]", run))


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("'", "''").replace("\\", "\\\\") + "'"


def tokens(text: str) -> list[tuple[int, str]]:
    """(position, lexeme) pairs; bigram i sits at position i so phrases line up."""
    out: list[tuple[int, str]] = []
    pos = 0
    for run in TOKEN_RE.findall(_norm(text)):
        if _cjk(run):
            for i, ch in enumerate(run):
                out.append((pos + i + 1, ch))
                if i + 1 < len(run):
                    out.append((pos + i + 1, run[i:i + 2]))
            pos += len(run) + 1
        else:
            out.append((pos + 1, run))
            pos += 2
    return out


def build_vector(weighted: list[tuple[str, str]]) -> str:
    """A tsvector literal from (weight, text) parts; positions are kept apart per part."""
    lex: dict[str, list[str]] = {}
    base = 0
    for weight, text in weighted:
        toks = tokens(text)
        for pos, lexeme in toks:
            p = min(base + pos, MAX_POS)
            lex.setdefault(lexeme, []).append(f"{p}{weight}")
        if toks:
            base = min(base + max(p for p, _ in toks) + 10, MAX_POS - 1)
    return " ".join(f"{_quote(k)}:{','.join(v[:256])}" for k, v in lex.items())


def build_query(q: str) -> str | None:
    """A tsquery literal for a user's query, or None when it has nothing searchable."""
    parts = []
    for run in TOKEN_RE.findall(_norm(q)):
        if _cjk(run):
            if len(run) == 1:
                parts.append(_quote(run))
            else:
                grams = [_quote(run[i:i + 2]) for i in range(len(run) - 1)]
                parts.append("(" + " <-> ".join(grams) + ")")
        else:
            parts.append(_quote(run) + ":*")
    return " & ".join(parts) if parts else None


def search_text(weighted: list[tuple[str, str]]) -> str:
    return " ".join(t for _, t in weighted if t)
