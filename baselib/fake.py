"""Fake source records for the base libraries (demo, tests, benchmark): valid check
digits, Jiangmen region codes (4407xx), Chinese names and the framework's town names in
addresses — and deliberate disagreements between the sources, a few invalid keys and
15-digit numbers, so that cross-checking and quarantine have something to do.

Deterministic for a seed. No faker library: the few lists below are enough and cost no
dependency (a name is a surname and one or two given characters).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any

from layers.identifiers import make_ric, make_uscc

SURNAMES = "陈李黄张梁林吴刘何谭周余甄赵关邓冯区伍胡司徒欧阳".replace("司徒", "").replace("欧阳", "")
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰志红文辉建国永健嘉欣家豪俊宇思颖"
ROADS = ["建设路", "港口路", "迎宾大道", "胜利路", "育德街", "江华路", "白石大道", "华园路", "侨兴路"]
INSURANCE = ["正常参保", "暂停缴费", "终止参保"]
ORG_TYPES = ["有限责任公司", "股份有限公司", "个人独资企业", "合伙企业"]
COUNTIES = ("440703", "440704", "440705", "440781", "440783", "440784", "440785")


def towns() -> list[tuple[str, str, str, str]]:
    """(town code, town name, county code, county name) of the framework's towns."""
    path = resources.files("spatial") / "data" / "jiangmen_regions.csv"
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = {r["code"]: r["name"] for r in rows}
    return [(r["code"], r["name"], r["parent_code"], names[r["parent_code"]]) for r in rows
            if r["kind"] in ("town", "street") and r["parent_code"] in names]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _address(rng: random.Random, town: tuple[str, str, str, str]) -> str:
    return f"江门市{town[3]}{town[1]}{rng.choice(ROADS)}{rng.randint(1, 399)}号"


@cache
def _employer(county: str, i: int) -> str:
    return make_uscc("91", county, f"MA{i:06d}")


def _typo(key: str) -> str:
    """The same key with its check character wrong (a keying error)."""
    last = key[-1]
    return key[:-1] + ("1" if last != "1" else "2")


def iter_persons(n: int, seed: int = 2017, disagree: float = 0.1, invalid: float = 0.01
                 ) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """One person at a time as its three source rows: 公安 (``gaj_hj``, the household
    register), 人社 (``rsj_cb``, insurance) and 卫计 (``wjj_rk``, the population register).
    ``disagree`` of the persons have a copy that differs from the authority on one
    attribute (人社's name, 卫计's address); ``invalid`` of the 卫计 rows carry a keying
    error (check character); one in 97 persons born before 2000 has a 15-digit number."""
    rng = random.Random(seed)
    all_towns = [t for t in towns() if t[2] in COUNTIES]
    used: set[str] = set()
    for i in range(n):
        town = all_towns[i % len(all_towns)]
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 65))
        gender = "男" if i % 2 else "女"
        seq = (i // len(all_towns)) % 1000
        key = make_ric(town[2], born, seq)
        while key in used:  # two persons of one county born on one day: next number
            seq = (seq + 1) % 1000
            key = make_ric(town[2], born, seq)
        used.add(key)
        name, address = _name(rng), _address(rng, town)
        phone = f"13{rng.randrange(10 ** 9):09d}"
        gaj = {"sfzh": key, "xm": name, "xb": gender, "csrq": born.isoformat(), "zz": address}
        r_name = name if rng.random() >= disagree / 2 else name[0] + rng.choice(GIVEN) * 2
        rsj = {"sfzh": key, "xm": r_name, "cbzt": rng.choice(INSURANCE),
               "dwxydm": _employer(town[2], i % 997), "lxdh": phone}
        w_addr = address if rng.random() >= disagree / 2 else _address(rng, town)
        w_key = key
        if rng.random() < invalid:
            w_key = _typo(key)
        elif i % 97 == 5 and born.year < 2000:  # a first-generation number, upgraded
            w_key = key[:6] + key[8:17]
        wjj = {"sfzh": w_key, "xm": name, "csrq": born.isoformat(), "zz": w_addr,
               "lxdh": phone}
        yield gaj, rsj, wjj


def persons(n: int, seed: int = 2017, disagree: float = 0.1,
            invalid: float = 0.01) -> dict[str, list[dict[str, Any]]]:
    """:func:`iter_persons` as three lists (demo and tests; the benchmark streams)."""
    out: dict[str, list[dict[str, Any]]] = {"gaj_hj": [], "rsj_cb": [], "wjj_rk": []}
    for gaj, rsj, wjj in iter_persons(n, seed, disagree, invalid):
        out["gaj_hj"].append(gaj)
        out["rsj_cb"].append(rsj)
        out["wjj_rk"].append(wjj)
    return out


def legal_persons(n: int, seed: int = 2018, disagree: float = 0.1
                  ) -> dict[str, list[dict[str, Any]]]:
    """Sources for ``legal_persons``: 市场监管 (``scjg_sczt``, 商事主体), 编办
    (``bb_jgsy``, 机关事业单位), 民政 (``mzj_shtt``, 社会团体) and 税务 (``swj_dj``, tax
    registration, a copy of names and addresses that sometimes disagrees)."""
    rng = random.Random(seed)
    all_towns = [t for t in towns() if t[2] in COUNTIES]
    out: dict[str, list[dict[str, Any]]] = {"scjg_sczt": [], "bb_jgsy": [], "mzj_shtt": [],
                                            "swj_dj": []}
    for i in range(n):
        town = all_towns[(i * 7) % len(all_towns)]
        kind = "bb_jgsy" if i % 20 == 0 else "mzj_shtt" if i % 20 == 1 else "scjg_sczt"
        prefix = {"bb_jgsy": "12", "mzj_shtt": "51", "scjg_sczt": "91"}[kind]
        code = make_uscc(prefix, town[2], f"{seed % 89:02d}{i:06d}")
        word = {"bb_jgsy": "中心", "mzj_shtt": "协会"}.get(kind, rng.choice(ORG_TYPES))
        name = f"江门市{town[1]}{rng.choice(ROADS)[:2]}{i}号{word}"
        address = _address(rng, town)
        row = {"tyshxydm": code, "mc": name, "fddbr": _name(rng), "zs": address,
               "lx": {"bb_jgsy": "事业单位", "mzj_shtt": "社会团体"}.get(kind, word),
               "clrq": (date(1990, 1, 1) + timedelta(days=rng.randrange(12000))).isoformat(),
               "zt": "存续" if rng.random() > 0.05 else "注销"}
        out[kind].append(row)
        if kind == "scjg_sczt":
            t_addr = address if rng.random() >= disagree else _address(rng, town)
            out["swj_dj"].append({"nsrsbh": code, "nsrmc": name, "scjydz": t_addr,
                                  "lxdh": f"0750{rng.randrange(10 ** 7):07d}"})
    return out


# the column mapping of each fake source: resource → (department, key column, mapping)
MAPPINGS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "gaj_hj": ("persons", "gaj", "sfzh", {"name": "xm", "gender": "xb", "birth_date": "csrq",
                                          "address": "zz"}),
    "rsj_cb": ("persons", "rsj", "sfzh", {"name": "xm", "insurance_status": "cbzt",
                                          "employer_uscc": "dwxydm", "phone": "lxdh"}),
    "wjj_rk": ("persons", "wjj", "sfzh", {"name": "xm", "birth_date": "csrq", "address": "zz",
                                          "phone": "lxdh"}),
    "scjg_sczt": ("legal_persons", "scjg", "tyshxydm", {
        "name": "mc", "legal_rep": "fddbr", "address": "zs", "org_type": "lx",
        "established": "clrq", "status": "zt"}),
    "bb_jgsy": ("legal_persons", "bb", "tyshxydm", {
        "name": "mc", "legal_rep": "fddbr", "address": "zs", "org_type": "lx",
        "established": "clrq", "status": "zt"}),
    "mzj_shtt": ("legal_persons", "mzj", "tyshxydm", {
        "name": "mc", "legal_rep": "fddbr", "address": "zs", "org_type": "lx",
        "established": "clrq", "status": "zt"}),
    "swj_dj": ("legal_persons", "swj", "nsrsbh", {"name": "nsrmc", "address": "scjydz",
                                                  "phone": "lxdh"}),
}
