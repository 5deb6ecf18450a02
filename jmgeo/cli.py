"""``jmgeo`` — the platform's one command line.

Each area registers its own subcommands (``register(subparsers)``) so this file only
lists them. Errors a person can fix are printed as one line (Chinese, then English)
with exit status 2; nothing prints a traceback unless ``JMGEO_DEBUG=1`` (settings.debug).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable

from jmgeo.errors import UserError
from jmgeo.settings import get_settings

__all__ = ["UserError", "build_parser", "main"]


def _db(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="数据库 / database: provision, migrate, reset",
                       description="Provision and migrate the platform database.")
    dsub = p.add_subparsers(dest="db_cmd", required=True)
    e = dsub.add_parser("ensure", help="provision a local PostGIS unless DATABASE_URL is set")
    e.set_defaults(func=_db_ensure)
    u = dsub.add_parser("upgrade", help="apply migrations (default: to head)")
    u.add_argument("revision", nargs="?", default="head")
    u.set_defaults(func=lambda a: _alembic("upgrade", a.revision))
    d = dsub.add_parser("downgrade", help="revert migrations (e.g. -1, or base)")
    d.add_argument("revision")
    d.set_defaults(func=lambda a: _alembic("downgrade", a.revision))
    c = dsub.add_parser("current", help="show the applied migration")
    c.set_defaults(func=lambda a: _alembic("current", None))
    x = dsub.add_parser("destroy", help="stop and delete the local cluster in var/ (all data!)")
    x.add_argument("--yes", action="store_true", help="really delete")
    x.set_defaults(func=_db_destroy)
    k = dsub.add_parser("client-packages",
                        help="install the Debian packages of the real-client tests "
                             "(python3-qgis, chromium, fonts-noto-cjk; root + apt-get)")
    k.add_argument("--optional", action="store_true",
                   help="when they cannot be installed, say so and succeed (those tests skip)")
    k.set_defaults(func=_db_client_packages)


def _db_ensure(args: argparse.Namespace) -> None:
    from jmgeo.provision import ProvisionError, ensure

    try:
        ensure(get_settings())
    except ProvisionError as exc:
        raise UserError(str(exc)) from exc


def _db_client_packages(args: argparse.Namespace) -> None:
    from jmgeo.provision import ClientPackagesMissing, ProvisionError, ensure_client_packages

    try:
        installed = ensure_client_packages()
    except ClientPackagesMissing as exc:
        if not args.optional:
            raise UserError(str(exc)) from exc
        print(f"{exc} (the real-client tests will skip)")
        return
    except ProvisionError as exc:
        raise UserError(str(exc)) from exc
    print(f"installed: {' '.join(installed)}" if installed else "client-test packages present")


def _db_destroy(args: argparse.Namespace) -> None:
    from jmgeo.provision import destroy

    if not args.yes:
        raise UserError("这会删除本地数据库的全部数据 / this deletes all local data: add --yes")
    destroy(get_settings())


def alembic_config():
    """Alembic's configuration, built here rather than read from alembic.ini: the
    migrations are package data of jmgeo (jmgeo/migrations), so an installed package
    runs ``jmgeo db upgrade`` as a source checkout does."""
    from importlib import resources

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("jmgeo") / "migrations"))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _alembic(action: str, revision: str | None) -> None:
    from alembic import command

    cfg = alembic_config()
    if action == "upgrade":
        command.upgrade(cfg, revision)
    elif action == "downgrade":
        command.downgrade(cfg, revision)
    else:
        command.current(cfg)


def _serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the platform (OGC APIs under /ogc)")
    s = get_settings()
    p.add_argument("--host", default=s.host)
    p.add_argument("--port", type=int, default=s.port)
    p.add_argument("--workers", type=int, default=s.workers)
    p.add_argument("--worker", action="store_true",
                   help="also run one job-queue worker (stopped with the server)")
    p.set_defaults(func=_serve_run)


def _serve_run(args: argparse.Namespace) -> None:
    import uvicorn

    from jmgeo.settings import export_for_workers

    export_for_workers(host=args.host, port=args.port)  # the app's base URL in every worker
    print(f"Jiangmen spatial data platform on http://{args.host}:{args.port}  "
          f"(OGC APIs: http://{args.host}:{args.port}/ogc)")
    # --worker: a `jmgeo worker` child; Ctrl-C reaches it too (same process group), and
    # it is stopped when the server stops however the server stops
    worker = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker"]) \
        if args.worker else None
    try:
        uvicorn.run("jmgeo.app:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="info")
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _subcommand_modules() -> list[Callable[[argparse._SubParsersAction], None]]:
    from jmgeo import demo, jobs, ogc
    from jmgeo.ogc import tileseed
    from layers import cli as layers_cli
    from spatial import regions

    return [_db, _serve, regions.register_cli, demo.register_cli, ogc.register_cli,
            tileseed.register_cli,
            layers_cli.register_cli,
            __import__("loaders.cli", fromlist=["register_cli"]).register_cli,
            __import__("catalog.cli", fromlist=["register_cli"]).register_cli,
            __import__("exchange.cli", fromlist=["register_cli"]).register_cli,
            __import__("exchange.deliveries", fromlist=["register_cli"]).register_cli,
            __import__("exchange.push_cli", fromlist=["register_cli"]).register_cli,
            __import__("exchange.fep_cli", fromlist=["register_cli"]).register_cli,
            __import__("supervision.cli", fromlist=["register_cli"]).register_cli,
            __import__("baselib.cli", fromlist=["register_cli"]).register_cli,
            jobs.register_cli]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jmgeo",
        description="江门市政务大数据平台 · 地理空间框架 — Jiangmen spatial data platform.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _subcommand_modules():
        register(sub)
    return parser


SIGPIPE_EXIT = 141  # what a shell reports for a command stopped by SIGPIPE (128 + 13)


def _flush_stdout() -> bool:
    """Flush stdout; False when its reader is gone (``jmgeo layer list | head``). Then
    stdout points at /dev/null, so the interpreter's own flush at exit fails no more."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return False


def main(argv: list[str] | None = None) -> int:
    """Run one command. A reader that stops early (``| head``) ends any command quietly,
    exit 141 like a shell's SIGPIPE — here, once for every command (not an internal
    error, no traceback)."""
    try:
        code = _main(argv)
    except BrokenPipeError:
        _flush_stdout()
        return SIGPIPE_EXIT
    except SystemExit:  # argparse's --help and usage errors: their text is written too
        if not _flush_stdout():
            return SIGPIPE_EXIT
        raise
    return code if _flush_stdout() else SIGPIPE_EXIT


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except BrokenPipeError:
        raise  # the reader is gone: main() ends quietly
    except UserError as exc:
        print(f"jmgeo: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last line of defence for the CLI
        if get_settings().debug:
            raise
        from jmgeo.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            print(f"jmgeo: 数据库不可用 / database unavailable: {exc}", file=sys.stderr)
            return 3
        print(f"jmgeo: 内部错误 / internal error: {type(exc).__name__}: {exc} "
              "(JMGEO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
