"""Package data is found with importlib.resources, so an installed (even zipped) package
works as a source checkout does: the region code table and boundaries (spatial/data),
pygeoapi's static configuration (jmgeo/ogc/pygeoapi-config.yml) and the migrations
(jmgeo/migrations, for `jmgeo db upgrade`)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_FILES = ["spatial/data/jiangmen_regions.csv", "spatial/data/jiangmen_boundaries.geojson",
              "jmgeo/ogc/pygeoapi-config.yml", "jmgeo/migrations/env.py",
              "jmgeo/migrations/script.py.mako",
              *sorted(p.relative_to(REPO).as_posix()
                      for p in (REPO / "jmgeo/migrations/versions").glob("*.py"))]


def test_pyproject_ships_the_data_files():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]
    for rel in DATA_FILES:
        assert (REPO / rel).is_file(), rel
        pkg, _, rest = rel.partition("/")
        assert any(fnmatch.fnmatch(rest, g) for g in globs.get(pkg, [])), \
            f"{rel} is not in [tool.setuptools.package-data] {pkg}"


def test_data_is_read_from_a_zipped_package(tmp_path):
    """Import the packages from a zip (no files on disk, no source tree on the path):
    anything that found its data by ``__file__`` or PROJECT_ROOT would fail here."""
    archive = tmp_path / "jmgeo-packages.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for pkg in ("spatial", "jmgeo"):
            for p in sorted((REPO / pkg).rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts:
                    zf.write(p, p.relative_to(REPO).as_posix())
    code = (
        "import spatial, jmgeo.ogc.config as c, spatial.regions as r\n"
        f"assert spatial.__file__.startswith({str(archive)!r}), spatial.__file__\n"
        "rows = r.read_codes()\n"
        "print(len(rows), rows[0]['code'], r.BOUNDARIES.is_file(),\n"
        "      c.static_config()['server']['limits']['max_items'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(archive), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    n, first, boundaries, max_items = out.stdout.split()
    assert int(n) > 80 and first == "440700" and boundaries == "True"
    assert max_items == "10000"


def test_migrations_need_no_alembic_ini():
    """`jmgeo db upgrade` builds alembic's configuration in code, pointing at the
    migrations inside the jmgeo package (an installed package has no alembic.ini)."""
    from alembic.script import ScriptDirectory

    import jmgeo
    from jmgeo.cli import alembic_config

    cfg = alembic_config()
    assert cfg.config_file_name is None
    script = ScriptDirectory.from_config(cfg)
    assert Path(script.dir).resolve() == Path(jmgeo.__file__).resolve().parent / "migrations"
    versions = sorted(p.stem.split("_")[0] for p in (REPO / "jmgeo/migrations/versions")
                      .glob("*.py"))
    assert script.get_current_head() == versions[-1]
