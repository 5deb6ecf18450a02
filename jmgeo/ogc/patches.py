"""The places we replace a pygeoapi internal, and why.

``transform_bbox``: pygeoapi 0.24's builds a new pyproj Transformer for every request
with a ``bbox`` (measured here: 0.27 s for CRS84 → EPSG:4490), which alone caps a worker
at ~4 requests/s. We swap in ``spatial.crs.transform_bbox``: same signature, same
semantics (authority axis order), cached transformer. tests/test_foundation.py checks
bbox behaviour end to end, so a change upstream shows.

``l10n.best_match``: pygeoapi's builds its answer as ``Locale(language, territory)``, and
babel has no locale ``zh_CN`` (only ``zh_Hans_CN``, which ``Locale.parse`` finds through
its aliases): every client whose language is not an exact match of a served one — fr-FR,
ja-JP, zh-TW, zh, ``*``, ``?lang=fr`` — got a 500 (``UnknownLocaleError: 'zh_CN'``).
:func:`best_match` answers with one of the *served* locales themselves (as parsed from the
configuration), never a constructed one, and skips any tag it cannot read. Both pygeoapi's
request negotiation and its ``translate`` go through ``l10n.best_match``
(tests/test_hardening.py sends every kind of tag).

``to_json`` (of ``pygeoapi.api`` and ``pygeoapi.api.itemtypes``): the same compact JSON
through orjson (:mod:`jmgeo.jsonfast`; the standard library for what orjson refuses):
encoding each items page was the largest Python cost of serving. The items page's body is
also mended here, just before it is encoded (:data:`ITEMS_BODY`), instead of being
decoded and encoded a second time after pygeoapi has written it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jmgeo.jsonfast import fast_to_json
from jmgeo.ogc.compat import core_api, json_serial, l10n
from jmgeo.ogc.compat import itemtypes_api as itemtypes
from spatial.crs import transform_bbox

_applied = False


def _parse(tag) -> l10n.Locale | None:
    """A Babel locale for a language tag or Locale; None for what is not one ('*', junk)."""
    if isinstance(tag, l10n.Locale):
        return tag
    if not isinstance(tag, str) or not tag.strip() or len(tag) > 64:
        return None
    try:
        return l10n.str2locale(tag, silent=True)
    except Exception:  # noqa: BLE001 — a tag babel cannot read is no preference
        return None


def best_match(accept_languages, available_locales) -> l10n.Locale:
    """The served locale that best fits the client's preference list (same contract as
    ``pygeoapi.l10n.best_match``): language and territory, else the language's generic
    locale, else the language in another territory (zh-TW → zh-CN), else the first
    served locale. Always one of ``available_locales`` as parsed, so it always exists."""
    served = [loc for loc in (_parse(a) for a in available_locales or ()) if loc]
    if not served:
        raise l10n.LocaleError("No available locales specified")
    if isinstance(accept_languages, (str, l10n.Locale)):
        accept_languages = [accept_languages]
    if not isinstance(accept_languages, list):
        accept_languages = []
    for tag in accept_languages:
        wanted = _parse(tag)
        if wanted is None:
            continue
        same = [loc for loc in served if loc.language == wanted.language]
        for loc in same:
            if loc.territory == wanted.territory:
                return loc
        for loc in same:
            if loc.territory is None:
                return loc
        if same:
            return same[0]
    return served[0]


_translated: OrderedDict[tuple[int, str], tuple[dict, dict]] = OrderedDict()
_translated_lock = threading.Lock()
_TRANSLATED_MAX = 256
_translate_struct = l10n.translate_struct


def translate_struct(struct, locale_, is_config: bool = False):
    """pygeoapi's ``translate_struct`` caches THE translated configuration per locale, for
    the whole process — right for one configuration, wrong for one per audience: an HTML
    page would be rendered with whichever audience's configuration was translated first
    (another caller's collections, or a 500 for a collection it lacks). Cached here per
    configuration object and locale instead (the entry keeps the object, so its id is not
    reused while cached)."""
    if not is_config or not struct or not locale_:
        return _translate_struct(struct, locale_, is_config)
    key = (id(struct), str(locale_))
    with _translated_lock:
        hit = _translated.get(key)
        if hit is not None and hit[0] is struct:
            _translated.move_to_end(key)
            return hit[1]
    with _translated_lock:  # pygeoapi's own per-locale slot emptied around its call
        l10n._cfg_cache.pop(locale_, None)
        result = _translate_struct(struct, locale_, True)
        l10n._cfg_cache.pop(locale_, None)
        _translated[key] = (struct, result)
        while len(_translated) > _TRANSLATED_MAX:
            _translated.popitem(last=False)
    return result


#: set by ``jmgeo.ogc.items`` around pygeoapi's items call (this thread's context):
#: what to change in the FeatureCollection before it is encoded
ITEMS_BODY: ContextVar[Callable[[dict], None] | None] = ContextVar("items_body",
                                                                   default=None)


def _mending(encode: Callable[..., str]) -> Callable[..., str]:
    def to_json(dict_: Any, pretty: bool = False) -> str:
        mend = ITEMS_BODY.get()
        if mend is not None and isinstance(dict_, dict) and \
                dict_.get("type") == "FeatureCollection":
            mend(dict_)
        return encode(dict_, pretty)

    return to_json


def apply() -> None:
    global _applied
    if not _applied:
        itemtypes.transform_bbox = transform_bbox
        itemtypes.to_json = _mending(fast_to_json(itemtypes.to_json, json_serial))
        core_api.to_json = fast_to_json(core_api.to_json, json_serial)
        l10n.best_match = best_match
        l10n.translate_struct = translate_struct
        _applied = True
