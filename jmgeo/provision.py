"""Provision the database: a local PostGIS cluster when DATABASE_URL is unset.

With ``DATABASE_URL`` we use that database and never touch the system (no packages,
no clusters). Without it we install Debian's ``postgresql-15`` + ``postgresql-15-postgis-3``
when absent (root only), create a cluster under ``var/pgdata`` on its own port
(55432 by default), a superuser role ``jmgeo`` with a random password kept in
``var/`` (mode 0600) — the owner, who runs migrations — the ``jmgeo`` database and the
postgis extension, and write its DSN to ``var/database_url``; then the app role
``jmgeo_app`` (login, owns nothing, may only append to the audit log once migration
0024 granted it its rights) with its own password, its DSN in ``var/app_database_url``:
what the server and the workers connect as. Running it again starts the cluster if it is
stopped and changes nothing else. Either way the audit log's HMAC key file is created
when absent (``layers.audit_keys``).

The real-client tests (QGIS's OAPIF provider, MapLibre in Chromium) need Debian packages
that the platform itself does not: :data:`CLIENT_TEST_PACKAGES`, installed by
:func:`ensure_client_packages` (``jmgeo db client-packages``, run by ``make test``) with
the same apt-get mechanism, root only; anyone else is told what to install.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg

from jmgeo.settings import Settings

#: the role the API and the workers connect as (migration 0024 grants its rights)
APP_ROLE = "jmgeo_app"
DEB_PACKAGES = ["postgresql-{v}", "postgresql-{v}-postgis-3"]
#: Debian packages of the real-client tests: PyQGIS 3.22 (for /usr/bin/python3), the
#: browser Playwright drives, and CJK fonts so Chinese labels draw in its screenshots
CLIENT_TEST_PACKAGES = ["python3-qgis", "chromium", "fonts-noto-cjk"]
#: the supervision report (通报): WeasyPrint lays the PDF out with pango; the Chinese text
#: and charts use the Noto CJK fonts. Installed by ``jmgeo db ensure`` (never fatal)
REPORT_PACKAGES = ["libpango-1.0-0", "libpangoft2-1.0-0", "fonts-noto-cjk"]


def install_report_packages(log=print) -> None:
    """Install what the supervision report needs (root with apt-get); otherwise say what
    to install — the rest of the platform works without it, so this never fails."""
    missing = [p for p in REPORT_PACKAGES if not deb_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"the supervision report (PDF) needs: apt-get install {' '.join(missing)}")
        return
    log(f"installing {' '.join(missing)} (apt-get, for the supervision report) ...")
    try:
        _apt_install(missing, "通报所需软件包")
    except ProvisionError as exc:
        log(f"{exc} — the PDF report will not render until they are installed")


class ProvisionError(RuntimeError):
    """A failure a person can act on; the message says what to do."""


class ClientPackagesMissing(ProvisionError):
    """Client-test packages are absent and this user cannot install them (not root, or no
    apt-get): the tests that need them skip with this message."""


def _apt_install(pkgs: list[str], what: str) -> None:
    """``apt-get install`` (after an ``apt-get update`` when the first try fails)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise ProvisionError(
                f"安装{what}失败 / apt-get install {' '.join(pkgs)} failed:\n"
                f"{res.stderr[-2000:]}"
            )


def deb_installed(pkg: str) -> bool:
    """Whether Debian package ``pkg`` is installed (dpkg's status database)."""
    if not shutil.which("dpkg-query"):
        return False
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                         text=True)
    return res.returncode == 0 and res.stdout.strip().endswith(" installed")


def ensure_client_packages(pkgs: list[str] | None = None, log=print) -> list[str]:
    """Install the missing ones of ``pkgs`` (default :data:`CLIENT_TEST_PACKAGES`) and
    return what was installed. Root with apt-get installs (a failure raises
    :class:`ProvisionError`); anyone else gets :class:`ClientPackagesMissing` naming
    the command to run."""
    missing = [p for p in (pkgs or CLIENT_TEST_PACKAGES) if not deb_installed(p)]
    if not missing:
        return []
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClientPackagesMissing(
            f"未安装客户端测试所需的软件包 / client-test packages not installed: "
            f"{' '.join(missing)} — run `sudo apt-get install {' '.join(missing)}` (Debian 12) "
            "or `sudo jmgeo db client-packages`")
    log(f"installing {' '.join(missing)} (apt-get) ...")
    _apt_install(missing, "客户端测试软件包")
    return missing


@dataclass
class LocalCluster:
    settings: Settings

    @property
    def bindir(self) -> Path:
        return Path(f"/usr/lib/postgresql/{self.settings.pg_version}/bin")

    @cached_property
    def datadir(self) -> Path:
        """``var/pgdata``, unless we run as root and the ``postgres`` user cannot reach the
        project (a clone under /root, mode 0700): then the system's place for clusters,
        ``/var/lib/postgresql/jmgeo-<hash of the project path>``."""
        local = self.settings.var_dir / "pgdata"
        if not self.is_root or (local / "PG_VERSION").exists() or self._owner_can_reach():
            return local
        digest = hashlib.sha1(str(self.settings.var_dir.resolve()).encode()).hexdigest()[:10]
        return Path(f"/var/lib/postgresql/jmgeo-{digest}")

    def _owner_can_reach(self) -> bool:
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-x", str(self.settings.var_dir)],
            capture_output=True)
        return probe.returncode == 0

    @property
    def password_file(self) -> Path:
        return self.settings.var_dir / "pg_password"

    @property
    def app_password_file(self) -> Path:
        return self.settings.var_dir / "pg_app_password"

    @property
    def is_root(self) -> bool:
        return os.geteuid() == 0

    # -- packages -------------------------------------------------------------
    def postgis_installed(self) -> bool:
        share = Path(f"/usr/share/postgresql/{self.settings.pg_version}/extension")
        return (self.bindir / "initdb").exists() and (share / "postgis.control").exists()

    def install_packages(self, log) -> None:
        if self.postgis_installed():
            return
        pkgs = [p.format(v=self.settings.pg_version) for p in DEB_PACKAGES]
        if not self.is_root:
            raise ProvisionError(
                f"未安装 PostgreSQL/PostGIS，且当前用户不是 root / PostgreSQL+PostGIS are not "
                f"installed and you are not root. Install them (apt-get install {' '.join(pkgs)}) "
                "or set DATABASE_URL to an existing PostGIS database."
            )
        if not shutil.which("apt-get"):
            raise ProvisionError(
                "没有 apt-get，无法安装 PostGIS / apt-get not found: install "
                f"{' '.join(pkgs)} yourself or set DATABASE_URL."
            )
        log(f"installing {' '.join(pkgs)} (apt-get) ...")
        _apt_install(pkgs, " PostGIS ")

    # -- cluster --------------------------------------------------------------
    def _as_owner(self, args: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user."""
        if self.is_root:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args])
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")

    def running(self) -> bool:
        return self.datadir.exists() and self._pg_ctl("status").returncode == 0

    def init(self, log) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.settings.var_dir, 0o755)
        password = secrets.token_urlsafe(18)
        self.password_file.write_text(password)
        os.chmod(self.password_file, 0o600)
        self.datadir.mkdir(mode=0o700, parents=True)
        fd, tmp = tempfile.mkstemp(prefix="jmgeo-initdb-")  # readable by postgres, 0600
        pwfile = Path(tmp)
        with os.fdopen(fd, "w") as fh:
            fh.write(password)
        if self.is_root:
            pg = pwd.getpwnam("postgres")
            os.chown(self.datadir, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        log(f"initialising a PostgreSQL {self.settings.pg_version} cluster in {self.datadir}")
        res = subprocess.run(
            self._as_owner([
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "jmgeo",
                "--pwfile", str(pwfile), "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
            ]),
            capture_output=True, text=True, cwd="/",
        )
        pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise ProvisionError(f"initdb 失败 / initdb failed:\n{res.stderr[-2000:]}")

    @property
    def port_file(self) -> Path:
        return self.settings.var_dir / "pg_port"

    @cached_property
    def port(self) -> int:
        """The cluster's port: JMGEO_PG_PORT when set, else the one this cluster was given
        (var/pg_port), else the first free port from 55432 up — so a second clone on the
        same machine gets its own port instead of an error."""
        if "JMGEO_PG_PORT" in os.environ or self.settings.pg_port != 55432:
            return self.settings.pg_port
        if self.port_file.exists():
            return int(self.port_file.read_text().strip())
        pid_file = self.datadir / "postmaster.pid"  # a running cluster made before var/pg_port
        try:
            return int(pid_file.read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            pass
        for port in range(self.settings.pg_port, self.settings.pg_port + 50):
            if not _port_taken(port):
                return port
        return self.settings.pg_port

    def start(self, log) -> None:
        if self.running():
            return
        port = self.port
        if _port_taken(port):
            raise ProvisionError(
                f"端口 {port} 已被占用 / port {port} is taken by another program: stop it, "
                "or choose another port with JMGEO_PG_PORT=NNNNN (the data stays in var/)."
            )
        log(f"starting PostgreSQL on 127.0.0.1:{port}")
        opts = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp "
                "-c max_connections=200 -c shared_buffers=512MB -c jit=off")
        res = self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.datadir / "server.log"),
                           "-o", opts)
        if res.returncode == 0:
            self.port_file.write_text(f"{port}\n")
        if res.returncode != 0:
            logtail = ""
            logfile = self.datadir / "server.log"
            if logfile.exists():
                logtail = logfile.read_text(errors="replace")[-2000:]
            raise ProvisionError(
                f"PostgreSQL 启动失败 / PostgreSQL did not start:\n{res.stderr}{logtail}"
            )

    def stop(self) -> None:
        if self.running():
            self._pg_ctl("stop", "-m", "fast", "-w")

    def dsn(self, dbname: str = "jmgeo", role: str = "jmgeo") -> str:
        """The DSN of the owner (``jmgeo``) or of the app role (``APP_ROLE``)."""
        file = self.app_password_file if role == APP_ROLE else self.password_file
        password = file.read_text().strip()
        return (f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:"
                f"{self.port}/{dbname}")

    def ensure_app_role(self, owner_dsn: str) -> None:
        """The app's login role: created, or given back its password, LOGIN and no
        powers (it is not the owner of anything migrations make)."""
        if not self.app_password_file.exists():
            self.app_password_file.write_text(secrets.token_urlsafe(18))
            os.chmod(self.app_password_file, 0o600)
        password = self.app_password_file.read_text().strip()
        with _wait_connect(owner_dsn) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (APP_ROLE,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(psycopg.sql.SQL(
                verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                "PASSWORD {}").format(psycopg.sql.Identifier(APP_ROLE),
                                      psycopg.sql.Literal(password)))


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_connect(dsn: str, seconds: float = 30) -> psycopg.Connection:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ensure_database_exists(dsn: str) -> None:
    """Create the DSN's database (through the maintenance db) and postgis in it."""
    parts = urlsplit(dsn)
    dbname = parts.path.lstrip("/") or "postgres"
    admin = parts._replace(path="/postgres").geturl()
    with _wait_connect(admin) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    with _wait_connect(dsn) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def check_database(dsn: str) -> str:
    """Connect to an existing database and return its PostGIS version, or explain."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
            ).fetchone()
            if row is None:
                raise ProvisionError(
                    "数据库服务器未安装 PostGIS / the server behind DATABASE_URL has no PostGIS: "
                    "install postgis there (Debian: postgresql-15-postgis-3)."
                )
            return row[0]
    except psycopg.OperationalError as exc:
        raise ProvisionError(
            f"无法连接 DATABASE_URL / cannot connect to DATABASE_URL: {exc}".strip()
        ) from exc


def ensure(settings: Settings, log=print) -> str:
    """Make sure a database is reachable and return its DSN (see module docstring)."""
    install_report_packages(log)
    from layers import audit_keys

    audit_keys.ensure(settings.audit_key_path)
    if settings.database_url:
        version = check_database(settings.database_url)
        log(f"using DATABASE_URL (PostGIS {version} available); the system is left alone")
        return settings.database_url
    cluster = LocalCluster(settings)
    cluster.install_packages(log)
    cluster.init(log)
    cluster.start(log)
    dsn = cluster.dsn()
    ensure_database_exists(dsn)
    settings.local_url_file.write_text(dsn + "\n")
    os.chmod(settings.local_url_file, 0o600)
    cluster.ensure_app_role(dsn)
    settings.local_app_url_file.write_text(cluster.dsn(role=APP_ROLE) + "\n")
    os.chmod(settings.local_app_url_file, 0o600)
    log(f"local PostGIS ready: 127.0.0.1:{cluster.port} (owner DSN in "
        f"{settings.local_url_file}, the app's in {settings.local_app_url_file})")
    return dsn


def destroy(settings: Settings, log=print) -> None:
    """Stop the local cluster and delete its data (never touches DATABASE_URL)."""
    if settings.database_url:
        raise ProvisionError("DATABASE_URL is set: `db destroy` only removes the local cluster.")
    cluster = LocalCluster(settings)
    cluster.stop()
    shutil.rmtree(cluster.datadir, ignore_errors=True)
    cluster.password_file.unlink(missing_ok=True)
    cluster.port_file.unlink(missing_ok=True)
    cluster.app_password_file.unlink(missing_ok=True)
    settings.local_url_file.unlink(missing_ok=True)
    settings.local_app_url_file.unlink(missing_ok=True)
    # the checkpoints describe the audit log just removed: kept aside, not compared with
    # the next cluster's empty log (the keys stay: they verify nothing new, harm nothing)
    checkpoints = settings.audit_checkpoint_path
    if checkpoints.exists():
        checkpoints.rename(checkpoints.with_name(f"{checkpoints.name}.{int(time.time())}.old"))
    log(f"removed {cluster.datadir}")
