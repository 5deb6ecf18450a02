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
    # home and search
    "home.lead": ("查找、预览和下载江门市各部门向社会开放的地理空间数据与政务信息资源。",
                  "Find, preview and download the spatial data and government information "
                  "resources Jiangmen's departments open to the public."),
    "search.label": ("检索数据", "Search the catalogue"),
    "search.placeholder": ("输入关键词，如 河流、公交站点、水库", "Keywords, e.g. 河流 (rivers)"),
    "search.button": ("检索", "Search"),
    "home.figures": ("开放数据概况", "Open data at a glance"),
    "home.entries": ("信息资源", "resources"),
    "home.layers": ("图层", "layers"),
    "home.tables": ("数据表", "tables"),
    "home.themes": ("按主题浏览", "Browse by theme"),
    "home.latest": ("最近更新", "Recently updated"),
    "home.regions": ("按行政区划浏览", "Browse by region"),
    "home.all": ("浏览全部数据", "Browse all datasets"),
    "search.title": ("数据目录", "Datasets"),
    "search.results": ("共 {n} 条结果", "{n} results"),
    "search.fuzzy": ("未找到完全匹配的结果，以下是名称相近的资源。",
                     "No exact match: resources with similar names."),
    "search.none": ("没有符合条件的资源。", "No resources match."),
    "search.filters": ("筛选", "Filters"),
    "search.clear": ("清除筛选", "Clear filters"),
    "search.prev": ("上一页", "Previous"),
    "search.next": ("下一页", "Next"),
    "search.page": ("第 {page} / {pages} 页", "Page {page} of {pages}"),
    "facet.category": ("主题", "Theme"),
    "facet.dept": ("提供部门", "Department"),
    "facet.format": ("资源格式", "Format"),
    "facet.update_cycle": ("更新周期", "Update cycle"),
    "facet.kind": ("资源类型", "Resource kind"),
    # dataset page
    "ds.metadata": ("核心元数据", "Core metadata"),
    "ds.code": ("信息资源代码", "Resource code"),
    "ds.provider": ("信息资源提供方", "Provider"),
    "ds.classification": ("信息资源分类", "Classification"),
    "ds.format": ("信息资源格式", "Format"),
    "ds.sharing": ("共享属性", "Sharing"),
    "ds.open": ("开放属性", "Openness"),
    "ds.update_cycle": ("更新周期", "Update cycle"),
    "ds.publish_date": ("发布日期", "Published"),
    "ds.updated": ("数据更新时间", "Data updated"),
    "ds.related": ("关联资源代码", "Related resources"),
    "ds.abstract": ("信息资源摘要", "Abstract"),
    "ds.map": ("地图预览", "Map preview"),
    "ds.map_note": ("地图由平台自身的矢量切片绘制，底图为江门市行政区划。",
                    "Drawn from the platform's own vector tiles over the framework's "
                    "regions."),
    "ds.map_label": ("{name} 的地图预览", "Map preview of {name}"),
    "ds.preview": ("数据预览（前 {n} 行）", "Table preview (first {n} rows)"),
    "ds.fields": ("信息项（字段）", "Data items (fields)"),
    "ds.field_name": ("名称", "Name"),
    "ds.field_column": ("字段", "Column"),
    "ds.field_type": ("类型", "Type"),
    "ds.field_length": ("长度", "Length"),
    "ds.field_state": ("提供方式", "Provided"),
    "ds.state.clear": ("明文", "in clear"),
    "ds.state.masked": ("脱敏", "masked"),
    "ds.state.hidden": ("不提供", "not provided"),
    "ds.versions": ("版本历史", "Version history"),
    "ds.version": ("版本", "Version"),
    "ds.loaded_at": ("发布时间", "Published at"),
    "ds.features": ("记录数", "Records"),
    "ds.current": ("当前版本", "current"),
    "ds.quality": ("质量概况", "Quality summary"),
    "ds.score": ("质量评分", "Quality score"),
    "ds.q.completeness": ("完整性", "Completeness"),
    "ds.q.geometry_validity": ("几何有效性", "Geometry validity"),
    "ds.q.inside_extent": ("位于江门范围内", "Inside Jiangmen"),
    "ds.q.key_uniqueness": ("键唯一性", "Key uniqueness"),
    "ds.q.warnings": ("装载提示 {n} 条", "{n} load notes"),
    "ds.downloads": ("下载", "Download"),
    "ds.downloads_note": ("坐标系 CGCS2000（EPSG:4490，经度/纬度）。",
                          "Coordinates in CGCS2000 (EPSG:4490, longitude/latitude)."),
    "ds.no_data": ("该资源的数据不在本平台发布，或不向社会开放；可查看其目录信息。",
                   "This resource's data is not published on the platform or not open to "
                   "the public: its catalogue entry is shown."),
    "ds.developers": ("开发者接口", "For developers"),
    "ds.raster": ("栅格数据通过 OGC API Coverages 获取。",
                  "Raster data is served by OGC API Coverages."),
    "fresh.fresh": ("按期更新", "up to date"),
    "fresh.due": ("临近更新期限", "update due soon"),
    "fresh.overdue": ("逾期未更新", "overdue"),
    "fresh.delinquent": ("严重逾期", "seriously overdue"),
    "fresh.deadline": ("下次更新期限 {d}", "next update due {d}"),
    "fresh.late": ("应于 {d} 前更新，已逾期 {n} 个工作日", "was due {d}: {n} working days late"),
    "fresh.last": ("最近更新 {d}", "last updated {d}"),
    # regions
    "reg.title": ("行政区划", "Administrative regions"),
    "reg.lead": ("江门市辖 3 个区、4 个县级市。选择区县查看其范围内的开放图层与统计。",
                 "Jiangmen has 3 districts and 4 county-level cities. Choose one to see the "
                 "open layers within it and their figures."),
    "reg.towns": ("下辖镇街", "Towns and streets"),
    "reg.parent": ("上级区划", "Parent region"),
    "reg.layers": ("区域内的图层", "Layers in this region"),
    "reg.layer": ("图层", "Layer"),
    "reg.count": ("要素数", "Features"),
    "reg.area": ("面积（平方公里）", "Area (km²)"),
    "reg.length": ("长度（公里）", "Length (km)"),
    "reg.none": ("该区域内暂无开放图层的要素。", "No features of open layers in this region."),
    "reg.unbounded": ("该区划暂无界线数据，无法统计。",
                      "This region has no boundary loaded: no figures."),
    "reg.method": ("面积、长度按 CGCS2000 3 度带高斯-克吕格投影计算。",
                   "Areas and lengths are computed in CGCS2000 3-degree Gauss-Kruger "
                   "zones."),
    "reg.code": ("区划代码", "Region code"),
    # developers
    "dev.title": ("开发者", "Developers"),
    "dev.lead": ("平台按 OGC API 标准开放数据，QGIS、GDAL/OGR、OpenLayers、MapLibre 等可直接使用。",
                 "The platform serves its data by OGC API standards: QGIS, GDAL/OGR, "
                 "OpenLayers, MapLibre and others use it directly."),
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
