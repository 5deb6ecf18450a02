"""The one error a load can end with: a clear, bilingual, single-line message.

Every refusal names the file, the problem and the fix — Chinese first, English beside
it — so GIS staff can act on it without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path

from jmgeo.errors import UserError


class LoaderError(UserError):
    """A file (or the options given with it) that cannot be loaded as it is.

    ``code`` is a stable machine-readable tag (e.g. ``missing_shp``) for the API and
    tests; ``str(err)`` is the one line a person reads.
    """

    def __init__(self, code: str, zh: str, en: str, *, file: str | Path | None = None,
                 fix_zh: str | None = None, fix_en: str | None = None) -> None:
        self.code = code
        self.file = str(file) if file is not None else None
        self.zh = zh
        self.en = en
        self.fix_zh = fix_zh
        self.fix_en = fix_en
        super().__init__(self.message)

    @property
    def message(self) -> str:
        name = Path(self.file).name if self.file else None
        zh = f"{name}：{self.zh}" if name else self.zh
        if self.fix_zh:
            zh += f"。处理办法：{self.fix_zh}"
        en = f"{name}: {self.en}" if name else self.en
        if self.fix_en:
            en += f" — fix: {self.fix_en}"
        return f"{zh} / {en}"

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "file": self.file, "message": self.message,
                "zh": self.zh, "en": self.en, "fix_zh": self.fix_zh, "fix_en": self.fix_en}
