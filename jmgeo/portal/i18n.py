"""The portal's two languages: Chinese first, English on request.

A page's language is ``?lang=zh|en`` when given (and then remembered in the
``jmgeo_lang`` cookie), else that cookie, else Chinese — the platform's users are the
city's departments and public; English is the toggle in the header. Messages are one
dict, key → (中文, English): templates call ``t("key")``. Another page module (the
console) adds its own keys with :func:`add_messages` rather than a second mechanism.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

LANGS = ("zh", "en")
COOKIE = "jmgeo_lang"

MESSAGES: dict[str, tuple[str, str]] = {
    "site.name": ("江门市政务大数据平台", "Jiangmen Government Big Data Platform"),
    "site.portal": ("开放门户", "Open data portal"),
    "site.framework": ("数字江门地理空间框架", "Digital Jiangmen spatial framework"),
    "nav.label": ("主导航", "Main navigation"),
    "nav.home": ("首页", "Home"),
    "nav.datasets": ("数据目录", "Datasets"),
    "nav.regions": ("行政区划", "Regions"),
    "nav.developers": ("开发者", "Developers"),
    "skip": ("跳到正文", "Skip to content"),
    "lang.switch": ("English", "中文"),
    "lang.switch_label": ("Switch to English", "切换到中文"),
    "footer.about": ("江门市网信统筹局 主办 · 数据依《政务信息资源共享管理暂行办法》开放",
                     "Run by the Jiangmen coordinating bureau · data opened under the "
                     "government information sharing rules"),
    "footer.offline": ("本站全部脚本、样式与地图均由平台自身提供，无需互联网",
                       "Every script, style and map is served by the platform itself: "
                       "no internet needed"),
    "footer.api": ("开放接口（OGC API）", "Open APIs (OGC API)"),
    "notfound.title": ("页面不存在", "Page not found"),
    "notfound.body": ("您访问的页面或数据集不存在，或未向社会开放。",
                      "The page or dataset you asked for does not exist or is not open "
                      "to the public."),
    "notfound.back": ("返回首页", "Back to the home page"),
}


def add_messages(messages: Mapping[str, tuple[str, str]]) -> None:
    """Register more messages (another page module's); a key already taken is an error,
    so two modules never silently fight over one text."""
    clash = sorted(set(messages) & set(MESSAGES))
    if clash:
        raise ValueError(f"message keys already defined: {', '.join(clash)}")
    MESSAGES.update(messages)


def language(request: Request) -> str:
    """The page's language: ``?lang=``, else the cookie, else Chinese."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    kept = request.cookies.get(COOKIE)
    return kept if kept in LANGS else "zh"


def translator(lang: str):
    """``t(key, **values)`` for templates: the message in ``lang`` (an unknown key is
    shown as itself, so a missing text is visible rather than blank)."""
    index = LANGS.index(lang)

    def t(key: str, **values: object) -> str:
        pair = MESSAGES.get(key)
        text = pair[index] if pair else key
        return text.format(**values) if values else text
    return t


def pick(lang: str, zh: str | None, en: str | None) -> str:
    """One of a value's two spellings (e.g. a vocabulary label), Chinese when the English
    is missing."""
    return (en or zh or "") if lang == "en" else (zh or en or "")
