"""Registry resources (layers and tables) register themselves in the catalog and stay
in sync.

``sync_layer(conn, name)`` reads the registry (``layer``, its current ``layer_version``
and the data table's columns) and creates or refreshes the layer's catalog entry:
format 矢量/栅格 (a table: 电子表格 or 数据库 by its source file), data items from the columns (type codes from PostgreSQL types, 中文
names from the layer's labels, per-item sharing: sensitive fields 有条件), update
cycle, last update, version and extent. The loader calls it after publish; every
catalog reader also calls :func:`ensure_synced`, which re-syncs all layers whenever the
registry epoch moved, so nothing depends on a caller remembering.

Sharing classes map exactly as DESIGN §6 says: ``open`` = 开放 是 + 无条件共享,
``unconditional`` = 无条件共享, ``conditional`` = 有条件共享 + 共享条件, ``not_shared`` =
不予共享 + its legal basis (in 共享条件).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from catalog import store, vocab
from layers import localday as clock
from layers import policy

SYNC_CALLER = policy.system("layer-sync")  # the platform registering its own layers
CONDITION_DEFAULT = "经提供方审批同意后共享，限于申请所述用途使用 / shared on the owner's approval, " \
                    "for the stated purpose only"
THEME_CATEGORIES = {  # layer theme → 目 under 1 基础 / 03 自然资源和空间地理
    "framework": ("001", "基础地理"), "land": ("002", "国土资源"),
    "planning": ("003", "城乡规划"), "water": ("004", "水利水务"),
    "transport": ("005", "交通运输"), "environment": ("006", "生态环境"),
    "civil_defence": ("007", "人民防空"),
}
OTHER_CATEGORY = ("099", "其他专题")
# a table resource's theme → its 项 under 1 基础 (the national base items); other tables
# stay under 03 with the layers of their theme
TABLE_ITEMS = {"population": "01", "person": "01", "enterprise": "02", "legal_person": "02",
               "organisation": "02", "credit": "04", "licence": "05", "license": "05"}
# source formats a table resource is 电子表格 for; anything else (DBF, a GeoPackage table,
# a database export) is 数据库
SPREADSHEET_SOURCES = ("csv", "xlsx")


def resource_format(layer: dict[str, Any]) -> str:
    """信息资源格式 of a registry resource: 矢量 / 栅格 for layers; 电子表格 or 数据库 for a
    table, by the file it was loaded from."""
    if layer["kind"] == "table":
        source = (layer.get("source_format") or "").lower()
        return "spreadsheet" if source in SPREADSHEET_SOURCES else "database"
    return "raster" if layer["kind"] == "raster" else "vector"


def _type_code(pg_type: str, udt: str, char_len, num_prec, num_scale) -> tuple[str, str | None]:
    t = pg_type.lower()
    if t in ("character varying", "character"):
        return "C", str(char_len or 255)
    if t == "text":
        return "C", "255"
    if t == "smallint":
        return "I", "5"
    if t == "integer":
        return "I", "10"
    if t == "bigint":
        return "I", "19"
    if t in ("double precision", "real"):
        return "F", "15" if t == "double precision" else "7"
    if t == "numeric":
        if num_prec:
            return "N", f"{num_prec},{num_scale or 0}"
        return "N", "38"
    if t == "boolean":
        return "L", "1"
    if t == "date":
        return "D", "8"
    if t.startswith("timestamp") or t.startswith("time"):
        return "T", "14"
    if t in ("json", "jsonb"):
        return "M", None
    if t == "bytea":
        return "B", None
    if t == "user-defined" and udt in ("geometry", "geography"):
        return "G", None
    return "C", "255"


def _layer(conn, name: str) -> dict[str, Any] | None:
    """The registry row of an in-service resource (a retired one is gone for the catalog:
    its entry is retired, and published again when it is unretired)."""
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT l.*, d.code AS owner_code, d.name AS owner_name, v.table_name, v.loaded_at, "
        "v.feature_count, v.report->'source'->>'format' AS source_format FROM layer l JOIN department d ON d.id = l.owner_dept_id "
        "LEFT JOIN layer_version v ON v.layer_id = l.id AND v.version = l.current_version "
        f"WHERE l.name = %s AND {policy.IN_SERVICE_SQL}", (name,)).fetchone()


def _columns(conn, table: str | None) -> list[dict[str, Any]] | None:
    if not table or "." not in table:
        return None
    schema, tbl = table.split(".", 1)
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT c.column_name, c.data_type, c.udt_name, c.character_maximum_length, "
        "c.numeric_precision, c.numeric_scale, "
        "col_description(format('%%I.%%I', c.table_schema, c.table_name)::regclass, "
        "c.ordinal_position) AS comment FROM information_schema.columns c "
        "WHERE c.table_schema = %s AND c.table_name = %s ORDER BY c.ordinal_position",
        (schema, tbl)).fetchall()
    return rows or None


def _extent(conn, table: str) -> list[float] | None:
    schema, tbl = table.split(".", 1)
    ident = sql.Identifier(schema, tbl)
    try:
        with conn.transaction():
            row = conn.cursor(row_factory=dict_row).execute(sql.SQL(
                "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, "
                "ST_YMax(e) AS y1 FROM (SELECT ST_Extent(geom) AS e FROM {}) s").format(
                    ident)).fetchone()
    except psycopg.Error:
        return None
    if not row or row["x0"] is None:
        return None
    return [round(float(row[k]), 7) for k in ("x0", "y0", "x1", "y1")]


def layer_content(conn, layer: dict[str, Any],
                  existing: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The catalog content of a registry layer (and the entry's layer columns)."""
    sharing_type, is_open = vocab.SHARING_CLASS_TO_CATALOG[layer["sharing_class"]]
    if layer["sharing_class"] == "not_shared":
        condition = layer.get("legal_basis")
    elif layer["sharing_class"] == "conditional":
        condition = (existing or {}).get("sharing_condition") or CONDITION_DEFAULT
    else:
        condition = None
    labels = dict(layer.get("field_labels") or {})
    sensitive = dict(layer.get("sensitive_fields") or {})
    items = []
    cols = _columns(conn, layer.get("table_name"))
    if cols is None:
        items.append({"name": "栅格数据" if layer["kind"] == "raster" else "数据",
                      "data_type": "B", "length": None, "sharing_type": sharing_type,
                      "field": None})
    else:
        used: set[str] = set()
        # attributes first, the geometry last, as catalogues list them
        cols = sorted(cols, key=lambda c: c["udt_name"] in ("geometry", "geography"))
        for c in cols:
            if c["column_name"] == "fid":
                continue
            code, length = _type_code(c["data_type"], c["udt_name"],
                                      c["character_maximum_length"], c["numeric_precision"],
                                      c["numeric_scale"])
            name = (labels.get(c["column_name"]) or c["comment"] or
                    ("几何图形" if c["column_name"] == "geom" else c["column_name"]))
            if name in used:
                name = f"{name}（{c['column_name']}）"
            used.add(name)
            item_sharing = sharing_type
            if c["column_name"] in sensitive and sharing_type == "unconditional":
                item_sharing = "conditional"  # masked unless a grant names the field
            items.append({"name": name, "data_type": code, "length": length,
                          "sharing_type": item_sharing, "field": c["column_name"]})
    theme = layer.get("theme") or ""
    is_table = layer["kind"] == "table"
    item_code = TABLE_ITEMS.get(theme, "03") if is_table else "03"
    cat_code, cat_name = (THEME_CATEGORIES.get(theme, OTHER_CATEGORY) if item_code == "03"
                          else OTHER_CATEGORY)
    loaded = layer.get("loaded_at")
    base = existing or {}
    if is_table:
        default_abstract = (f"{layer['owner_name']}的数据表“{layer['title']}”，以"
                            f"{labels.get(layer['key_field'], layer['key_field'])}为键，"
                            "通过共享平台接口（OGC API）和批量下载共享。")
    else:
        default_abstract = (f"{layer['owner_name']}的专题图层“{layer['title']}”，存储于江门市"
                            "地理空间框架（CGCS2000，EPSG:4490），通过 OGC API 共享。")
    description = layer.get("description") or base.get("abstract") or default_abstract
    content = {
        "class_code": base.get("class_code") or "1",
        "item_code": base.get("item_code") or item_code,
        "item_name": base.get("item_name") or vocab.BASE_ITEMS[item_code],
        "category_code": base.get("category_code") or cat_code,
        "category_name": base.get("category_name") or cat_name,
        "subcategory_code": base.get("subcategory_code"),
        "subcategory_name": base.get("subcategory_name"),
        "name": layer["title"],
        "provider_code": layer["owner_code"],
        "abstract": description,
        "format": resource_format(layer),
        "sharing_type": sharing_type,
        "sharing_condition": condition,
        "sharing_method": base.get("sharing_method") or "platform_api",
        "is_open": is_open,
        "open_condition": base.get("open_condition") if is_open else None,
        "update_cycle": layer.get("update_cycle") or "other",
        "publish_date": base.get("publish_date") or (clock.local_date(loaded) if loaded
                                                     else clock.today()),
        "related_codes": list(base.get("related_codes") or []),
        "code": base.get("code"),
        "items": items,
    }
    same_version = (existing is not None and existing.get("layer_name") == layer["name"]
                    and existing.get("layer_version") == layer.get("current_version")
                    and existing.get("extent"))
    if same_version:  # the extent scans the table: only once per version
        extent = list(existing["extent"])
    else:
        extent = _extent(conn, layer["table_name"]) if cols and not is_table else None
    extra = {"layer_name": layer["name"], "layer_version": layer.get("current_version"),
             "data_updated_at": loaded, "extent": extent}
    return content, extra


def sync_layer(conn: psycopg.Connection, layer_name: str) -> dict[str, Any]:
    """Create or refresh the catalog entry of one registry layer; retire it when the
    layer is gone. Returns {"entry_id", "code", "outcome"}. Call after publish."""
    with conn.transaction():
        layer = _layer(conn, layer_name)
        entry = store.get_entry(conn, layer_name=layer_name)
        if layer is None or layer.get("current_version") is None:
            if entry is not None and entry["status"] != "retired" and layer is None:
                conn.execute("UPDATE catalog_entry SET status = 'retired', updated_at = now(), "
                             "updated_by = %s WHERE id = %s",
                             (SYNC_CALLER.name, entry["id"]))
                store.record_history(conn, entry["id"], SYNC_CALLER, "retire", entry["status"],
                              "retired", "图层已删除 / the layer no longer exists")
                return {"entry_id": entry["id"], "code": entry["code"], "outcome": "retired"}
            return {"entry_id": entry and entry["id"], "code": entry and entry["code"],
                    "outcome": "skipped"}
        if entry is None:  # a department may have catalogued it by name already
            row = conn.cursor(row_factory=dict_row).execute(
                "SELECT e.id FROM catalog_entry e JOIN department d ON d.id = "
                "e.provider_dept_id WHERE d.code = %s AND e.name = %s AND e.layer_name IS NULL "
                "AND e.status <> 'retired'", (layer["owner_code"], layer["title"])).fetchone()
            if row:
                entry = store.get_entry(conn, row["id"])
        content, extra = layer_content(conn, layer, entry)
        entry_id, outcome = store.save(
            conn, content, SYNC_CALLER, entry_id=entry and entry["id"], status="published",
            action="sync", layer=extra)
        if outcome == "unchanged":
            conn.execute("UPDATE catalog_entry SET extent = %s, data_updated_at = %s "
                         "WHERE id = %s", (extra["extent"], extra["data_updated_at"], entry_id))
        code = store.get_entry(conn, entry_id)["code"]
    return {"entry_id": entry_id, "code": code, "outcome": outcome}


def sync_all_layers(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Sync every registry layer, and retire entries of layers that no longer exist."""
    names = [r[0] for r in conn.cursor(row_factory=tuple_row).execute("SELECT name FROM layer ORDER BY name")]
    gone = [r[0] for r in conn.cursor(row_factory=tuple_row).execute(
        "SELECT layer_name FROM catalog_entry WHERE layer_name IS NOT NULL AND status <> "
        "'retired' AND layer_name NOT IN (SELECT name FROM layer)")]
    return [sync_layer(conn, n) for n in [*names, *gone]]


def ensure_synced(conn: psycopg.Connection) -> bool:
    """Re-sync all layers when the registry epoch moved since the last sync (cheap when
    it did not: one query). Returns whether a sync ran."""
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT (SELECT epoch FROM registry_state WHERE id = 1), "
        "(SELECT synced_epoch FROM catalog_state WHERE id = 1)").fetchone()
    epoch, synced = row
    if epoch is None or epoch == synced:
        return False
    with conn.transaction():
        got = conn.cursor(row_factory=tuple_row).execute(
            "SELECT synced_epoch FROM catalog_state WHERE id = 1 FOR UPDATE "
            "SKIP LOCKED").fetchone()
        if got is None or got[0] == epoch:
            return False  # another worker is syncing, or just did
        sync_all_layers(conn)
        conn.execute("UPDATE catalog_state SET synced_epoch = %s, synced_at = now() "
                     "WHERE id = 1", (epoch,))
    return True
