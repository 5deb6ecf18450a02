"""A primary and its streaming replica: two real PostgreSQL clusters of the test's own.

The primary is provisioned as ``jmgeo db ensure`` provisions the local cluster
(``jmgeo.provision``: owner and app role, PostGIS) in a temporary directory on a free
port, and migrated with the platform's migrations; the replica is ``pg_basebackup -R -X
stream`` of it, with a replication slot so that WAL written while it is stopped waits for
it. Nothing here touches the shared test cluster. As root, PostgreSQL's tools run as the
``postgres`` user (``LocalCluster._as_owner``), as provisioning does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

SLOT = "jmgeo_test_replica"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_port(dsn: str, port: int) -> str:
    """The same DSN (role, password, database) on another port of 127.0.0.1."""
    parts = urlsplit(dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}").geturl()


@dataclass
class StreamingPair:
    root: Path
    owner_dsn: str  # the primary, as the owner (a superuser: may pause replay, read slots)
    app_dsn: str  # the primary, as the app role (what the server and the CLI connect as)
    replica_port: int
    replica_dir: Path
    cluster: object = field(repr=False)  # jmgeo.provision.LocalCluster of the primary

    @property
    def replica_app_dsn(self) -> str:
        return on_port(self.app_dsn, self.replica_port)

    @property
    def replica_owner_dsn(self) -> str:
        return on_port(self.owner_dsn, self.replica_port)

    def _pg_ctl(self, datadir: Path, *args: str) -> subprocess.CompletedProcess:
        cmd = self.cluster._as_owner([str(self.cluster.bindir / "pg_ctl"), "-D", str(datadir),
                                      *args])
        return subprocess.run(cmd, capture_output=True, text=True, cwd="/")

    def start_replica(self) -> None:
        # max_connections: a standby needs at least the primary's (200, LocalCluster.start)
        res = self._pg_ctl(
            self.replica_dir, "start", "-w", "-t", "60",
            "-l", str(self.replica_dir / "server.log"),
            "-o", f"-p {self.replica_port} -c listen_addresses=127.0.0.1 "
                  "-c unix_socket_directories=/tmp -c max_connections=200 "
                  "-c shared_buffers=64MB -c hot_standby_feedback=on")
        if res.returncode != 0:
            log = (self.replica_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the replica did not start: {res.stderr}\n{log}")

    def stop_replica(self, mode: str = "fast") -> None:
        self._pg_ctl(self.replica_dir, "stop", "-m", mode, "-w")

    def replica_query(self, query: str, params=None):
        with psycopg.connect(self.replica_owner_dsn, autocommit=True,
                             connect_timeout=5) as conn:
            return conn.execute(query, params).fetchone()

    def primary_query(self, query: str, params=None):
        with psycopg.connect(self.owner_dsn, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchone()

    def wait_caught_up(self, timeout: float = 20) -> None:
        """Until the replica has replayed all the primary has written so far."""
        target = self.primary_query("SELECT pg_current_wal_lsn()")[0]
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.replica_query("SELECT pg_last_wal_replay_lsn() >= %s",
                                      (target,))[0]:
                    return
            except psycopg.OperationalError:
                pass  # starting up
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not catch up with {target}")
            time.sleep(0.05)

    def close(self) -> None:
        self.stop_replica("immediate")
        self.cluster.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_pair() -> StreamingPair:
    """A migrated primary (regions loaded) and a streaming replica of it, both running."""
    from conftest import migrate
    from jmgeo import provision
    from jmgeo.settings import Settings
    from spatial.regions import load_framework

    # readable by the postgres user, who must reach the data directories in it
    root = Path(tempfile.mkdtemp(prefix="jmgeo-replica-"))
    os.chmod(root, 0o755)
    settings = Settings(DATABASE_URL=None, var_dir=root / "primary", pg_port=free_port(),
                        audit_key_file=root / "audit" / "keys.json")
    cluster = provision.LocalCluster(settings)
    pair = None
    try:
        owner = provision.ensure(settings, log=lambda *a: None)
        app = settings.local_app_url_file.read_text().strip()
        migrate(owner)
        load_framework(app)
        replica_dir = root / "replica"
        replica_dir.mkdir(mode=0o700)
        if cluster.is_root:
            pg = pwd.getpwnam("postgres")
            os.chown(replica_dir, pg.pw_uid, pg.pw_gid)
        # -c fast: an immediate checkpoint (the default waits for a spread one, minutes);
        # -C -S: a slot, so the primary keeps the WAL a stopped replica has not received
        res = subprocess.run(cluster._as_owner([
            str(cluster.bindir / "pg_basebackup"), "-D", str(replica_dir), "-R", "-X",
            "stream", "-c", "fast", "-C", "-S", SLOT, "-d", owner]),
            capture_output=True, text=True, cwd="/")
        if res.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {res.stderr[-2000:]}")
        pair = StreamingPair(root=root, owner_dsn=owner, app_dsn=app,
                             replica_port=free_port(), replica_dir=replica_dir,
                             cluster=cluster)
        pair.start_replica()
        pair.wait_caught_up()
        return pair
    except BaseException:
        if pair is not None:
            pair.stop_replica("immediate")
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
