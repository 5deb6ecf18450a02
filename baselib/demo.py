"""The base libraries' demo: source departments, fake source tables loaded as table
resources, the default authorities and mappings, both libraries integrated, the themes.

``load_demo_baselib`` is idempotent in effect: a second run loads no new source version
when the generated rows are the same (``publish_source`` compares a content hash) and the
integration then finds nothing changed (a new library version with the same records).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from baselib import fake, libraries
from baselib.integrate import integrate
from layers import registry
from layers.departments import ensure_departments
from layers.identifiers import make_uscc

DEPARTMENTS: list[dict[str, Any]] = [
    {"code": "gaj", "name": "江门市公安局", "uscc": make_uscc("11", "440700", "00702001")},
    {"code": "rsj", "name": "江门市人力资源和社会保障局",
     "uscc": make_uscc("11", "440700", "00702002")},
    {"code": "wjj", "name": "江门市卫生和计划生育局", "uscc": make_uscc("11", "440700", "00702003")},
    {"code": "bb", "name": "中共江门市委机构编制委员会办公室",
     "uscc": make_uscc("11", "440700", "00702004")},
    {"code": "mzj", "name": "江门市民政局", "uscc": make_uscc("11", "440700", "00702005")},
    {"code": "swj", "name": "国家税务总局江门市税务局", "uscc": make_uscc("11", "440700", "00702006")},
    {"code": "fgj", "name": "江门市发展和改革局", "uscc": make_uscc("11", "440700", "00702007")},
    {"code": "zwfw", "name": "江门市政务服务数据管理局", "uscc": make_uscc("11", "440700", "00702008")},
    {"code": "tjj", "name": "江门市统计局", "uscc": make_uscc("11", "440700", "00702009")},
]


def ensure_baselib_departments(conn) -> int:
    """The platform's demo departments and the base libraries' source departments."""
    from layers.departments import DEMO_DEPARTMENTS

    return ensure_departments(conn, DEMO_DEPARTMENTS + DEPARTMENTS)


def publish_source(conn, name: str, dept: str, rows: list[dict[str, Any]], key: str, *,
                   title: str | None = None, theme: str = "base",
                   sensitive: dict[str, str] | None = None, sharing: str = "conditional",
                   labels: dict[str, str] | None = None) -> int | None:
    """Publish ``rows`` (dicts of text) as the next version of the table resource
    ``name`` owned by ``dept`` (what ``jmgeo load FILE --kind table --key KEY`` makes);
    returns the version, or None when the content is the current version's already."""
    cols = list(rows[0]) if rows else [key]
    digest = hashlib.sha256(json.dumps([cols, rows], ensure_ascii=False, default=str)
                            .encode()).hexdigest()
    with conn.transaction():
        current = conn.execute(
            "SELECT v.report->>'content_hash' FROM layer l JOIN layer_version v ON "
            "v.layer_id = l.id AND v.version = l.current_version WHERE l.name = %s",
            (name,)).fetchone()
        if current and current[0] == digest:
            return None
        version = registry.next_version(conn, name)
        table = registry.create_data_table(
            conn, name, version, None,
            [registry.Column(c, "text", (labels or {}).get(c)) for c in cols], title=title)
        with conn.cursor().copy(sql.SQL("COPY {} (fid, {}) FROM STDIN").format(
                sql.Identifier(*table.split(".")),
                sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
            for i, r in enumerate(rows, 1):
                copy.write_row([i, *(None if r.get(c) is None else str(r[c]) for c in cols)])
        registry.index_key(conn, table, key)
        registry.finish_data_table(conn, table)
        registry.publish(conn, layer=name, version=version, table_name=table,
                         feature_count=len(rows), report={"content_hash": digest},
                         source_name=f"{name}.csv", loaded_by=f"demo-{dept}",
                         title=title or name, dept=dept, theme=theme, sharing_class=sharing,
                         kind="table", key_field=key, sensitive_fields=sensitive or {},
                         field_labels=labels or {}, update_cycle="monthly")
    return version


SOURCE_TITLES = {"gaj_hj": "户籍人口信息", "rsj_cb": "社会保险参保信息", "wjj_rk": "全员人口信息",
                 "scjg_sczt": "商事主体登记信息", "bb_jgsy": "机关事业单位登记信息",
                 "mzj_shtt": "社会团体登记信息", "swj_dj": "税务登记信息"}
PERSON_MASKS = {"sfzh": "id_number", "xm": "person_name", "lxdh": "phone", "zz": "full"}


def load_sources(conn, data: dict[str, list[dict[str, Any]]]) -> dict[str, int | None]:
    """Publish generated source rows and register each as a library source."""
    out = {}
    for name, rows in data.items():
        lib, dept, key, mapping = fake.MAPPINGS[name]
        masks = PERSON_MASKS if lib == "persons" else {"lxdh": "phone"}
        out[name] = publish_source(conn, name, dept, rows, key, title=SOURCE_TITLES[name],
                                   sensitive={c: k for c, k in masks.items() if c in rows[0]})
        libraries.add_source(conn, lib, name, key, mapping)
    return out


def load_demo_baselib(dsn: str, log: Callable[[str], None] = print, *, persons: int = 2000,
                      legal_persons: int = 600) -> dict[str, Any]:
    """The whole demo (see the module docstring); returns both integration reports."""
    from baselib import themes

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_baselib_departments(conn)
        for lib in libraries.LIBRARIES:
            libraries.ensure_default_authorities(conn, lib)
        load_sources(conn, fake.persons(persons))
        load_sources(conn, fake.legal_persons(legal_persons))
        reports = {lib: integrate(conn, lib, by="demo") for lib in libraries.LIBRARIES}
        for lib, r in reports.items():
            log(f"baselib {lib} v{r['version']}: {r['records']} records, "
                f"{r['disagreements']} disagreements, {r['tickets']['opened']} tickets opened, "
                f"{r['quarantined']} quarantined")
        reports["themes"] = themes.load_demo_themes(conn, log=log)
    return reports


def publish_person_streams(dsn: str, n: int, seed: int = 2017,
                           disagree: float = 0.1) -> dict[str, int]:
    """The three person sources of :func:`baselib.fake.iter_persons`, streamed: one
    connection and one ``COPY`` per source, rows written as they are generated, so a
    million persons never sit in memory (the benchmark). Returns name → version."""
    from contextlib import ExitStack

    names = ("gaj_hj", "rsj_cb", "wjj_rk")
    conns = [psycopg.connect(dsn) for _ in names]
    try:
        tables, versions, copies = [], [], []
        with ExitStack() as stack:
            for conn, name in zip(conns, names, strict=True):
                cols = list(next(fake.iter_persons(1))[names.index(name)])
                versions.append(registry.next_version(conn, name))
                table = registry.create_data_table(
                    conn, name, versions[-1], None, [registry.Column(c) for c in cols],
                    title=SOURCE_TITLES[name], with_index=False)
                tables.append((table, cols))
                copies.append(stack.enter_context(conn.cursor().copy(
                    sql.SQL("COPY {} (fid, {}) FROM STDIN").format(
                        sql.Identifier(*table.split(".")),
                        sql.SQL(", ").join(map(sql.Identifier, cols))))))
            for i, rows in enumerate(fake.iter_persons(n, seed, disagree), 1):
                for copy, row in zip(copies, rows, strict=True):
                    copy.write_row([i, *row.values()])
        for conn, name, (table, cols), version in zip(conns, names, tables, versions,
                                                      strict=True):
            lib, dept, key, _mapping = fake.MAPPINGS[name]
            registry.index_key(conn, table, key)
            registry.finish_data_table(conn, table)
            registry.publish(conn, layer=name, version=version, table_name=table,
                             feature_count=n, report={"generated": n, "seed": seed},
                             source_name=f"{name}.csv", loaded_by=f"bench-{dept}",
                             title=SOURCE_TITLES[name], dept=dept, theme="base",
                             sharing_class="conditional", kind="table", key_field=key,
                             sensitive_fields={c: k for c, k in PERSON_MASKS.items()
                                               if c in cols}, update_cycle="monthly")
            conn.commit()
    finally:
        for conn in conns:
            conn.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            lib, _dept, key, mapping = fake.MAPPINGS[name]
            libraries.add_source(conn, lib, name, key, mapping)
    return dict(zip(names, versions, strict=True))
