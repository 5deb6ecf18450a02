"""The shape of the code, held by tests: who may import whom, module size, the pygeoapi
fence. See docs/architecture.md for the picture these rules draw."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOWER = ("spatial", "layers", "loaders", "catalog", "exchange", "supervision", "baselib")
# the only modules of the server package a lower package may import: they import
# nothing of the server themselves (settings, the connection pool, the error base, the
# ORM base class, the job queue app lower packages declare tasks on)
CORE = {"jmgeo", "jmgeo.settings", "jmgeo.db", "jmgeo.errors", "jmgeo.models",
        "jmgeo.queue"}
MAX_LINES = 520  # "no module over ~500 lines"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _product_modules():
    for pkg in ("jmgeo", *LOWER):
        yield from sorted((REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", LOWER)
def test_lower_packages_never_import_the_server_or_the_cli(pkg):
    bad = []
    for path in sorted((REPO / pkg).rglob("*.py")):
        for name in _imports(path):
            if (name == "jmgeo" or name.startswith("jmgeo.")) and name not in CORE:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
            if name.startswith("fastapi") or name.startswith("starlette"):
                bad.append(f"{path.relative_to(REPO)} imports {name} (HTTP belongs in jmgeo)")
    assert not bad, "\n".join(bad)


def test_lower_packages_form_no_cycle():
    """The lower packages import one another in one direction only (a package-level
    DAG): supervision may read baselib because baselib never reads supervision; a shared
    helper moves down (``layers.identifiers``) rather than making two packages lean on
    each other."""
    graph: dict[str, set[str]] = {p: set() for p in LOWER}
    for pkg in LOWER:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in LOWER and top != pkg:
                    graph[pkg].add(top)
    done: set[str] = set()

    def visit(pkg: str, trail: tuple[str, ...]) -> None:
        if pkg in trail:
            raise AssertionError("import cycle: " + " → ".join((*trail, pkg)))
        if pkg not in done:
            for dep in sorted(graph[pkg]):
                visit(dep, (*trail, pkg))
            done.add(pkg)

    for pkg in LOWER:
        visit(pkg, ())


def test_no_module_over_500_lines():
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in _product_modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


def test_pygeoapi_is_imported_only_by_the_compat_module():
    bad = [f"{p.relative_to(REPO)} imports {name}" for p in _product_modules()
           if p.name != "compat.py" for name in _imports(p)
           if name == "pygeoapi" or name.startswith("pygeoapi.")]
    assert not bad, "\n".join(bad)


def test_pygeoapi_is_a_version_the_platform_was_written_for():
    from jmgeo.ogc import compat

    assert compat.check().startswith(compat.SUPPORTED)


def test_compat_check_fails_loudly_on_another_version(monkeypatch):
    import pygeoapi

    from jmgeo.ogc import compat

    monkeypatch.setattr(pygeoapi, "__version__", "0.99.0")
    monkeypatch.delattr(compat.tiles_api, "tilematrixsets")
    with pytest.raises(compat.PygeoapiMismatch) as err:
        compat.check()
    assert "0.99.0" in str(err.value) and "tilematrixsets is missing" in str(err.value)


def test_settings_are_read_in_one_place():
    """Every environment variable is read in jmgeo.settings (no stray os.environ)."""
    bad = []
    for path in _product_modules():
        if path.relative_to(REPO).as_posix() in ("jmgeo/settings.py", "jmgeo/provision.py"):
            continue  # provision passes the environment on to apt-get and pg tools
        text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            if "os.environ" in line or "os.getenv" in line:
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
