"""Settings read from the environment (and ``var/database_url`` written by provisioning).

One place for every knob the app, the CLI, the tests and docker-compose agree on.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# an origin as browsers send it: scheme://host[:port], nothing after
_ORIGIN_RE = re.compile(r"^https?://[a-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


class Settings(BaseSettings):
    """Platform settings. Environment variables win; defaults suit a laptop or CI box."""

    model_config = SettingsConfigDict(env_prefix="JMGEO_", extra="ignore")

    # DATABASE_URL is unprefixed: it is what every PostgreSQL tool and docker-compose use.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # JMGEO_OWNER_DATABASE_URL: the role that owns the schema (migrations, provisioning);
    # the app (DATABASE_URL) connects as a role that owns nothing and may only append to
    # the audit log. Unset: the local cluster's owner (var/database_url), else DATABASE_URL
    # itself (one role for both: `jmgeo audit verify` warns)
    owner_database_url: str | None = None
    var_dir: Path = PROJECT_ROOT / "var"
    # the local cluster `jmgeo db ensure` provisions when DATABASE_URL is unset
    pg_port: int = 55432
    pg_version: str = "15"
    host: str = "127.0.0.1"
    port: int = 5000
    # public base URL (scheme://host:port) of every link the platform writes (OGC, DCAT,
    # downloads); defaults to http://host:port. Links never come from the request's Host
    public_url: str | None = None
    # JMGEO_ALLOWED_HOSTS: host[:port] names a request's Host may carry (comma-separated;
    # the public URL's host is always allowed); another host is refused (400 InvalidHost,
    # jmgeo.guard). Empty: any Host is accepted and ignored
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # seconds a request waits for a pooled connection before answering 503
    db_pool_timeout: float = 5.0
    db_pool_size: int = 16
    # read replicas (jmgeo.replicas): JMGEO_REPLICA_URLS, comma-separated DSNs of streaming
    # replicas of DATABASE_URL (same roles, same database). GET/HEAD requests read layers,
    # tiles and regions from one of them; every write (audit rows, loads, jobs, sessions)
    # goes to DATABASE_URL. A replica is used only while it is provably at most
    # JMGEO_REPLICA_MAX_LAG seconds behind the primary (measured every
    # JMGEO_REPLICA_CHECK_SECONDS against the primary's WAL position); otherwise, and when it
    # is down, reads go to the primary. Empty: one database, as before
    replica_urls: Annotated[tuple[str, ...], NoDecode] = ()
    replica_max_lag: float = Field(default=5.0, gt=0)
    replica_check_seconds: float = Field(default=1.0, gt=0)
    realworld_data: Path = PROJECT_ROOT.parent / "shared" / "data" / "realworld"
    # -- the server and the CLI (`jmgeo serve`, POST /layers/upload) --
    # uvicorn worker processes `jmgeo serve` starts (its --workers default)
    workers: int = Field(default=1, ge=1)
    # JMGEO_DEBUG=1: the CLI shows the traceback of an internal error
    debug: bool = False
    # audit rows of concurrent requests appended in one transaction (layers.audit_batch);
    # off: one transaction per row (JMGEO_AUDIT_GROUP_COMMIT=0)
    audit_group_commit: bool = True
    # the largest file POST /layers/upload accepts (bytes); bigger: `jmgeo load` on the server
    upload_max_bytes: int = Field(default=4 * 1024 ** 3, ge=1)
    # uploads bigger than this (or sent with async=true) are load jobs answered 202 at once
    # (JMGEO_UPLOAD_SYNC_MAX_BYTES); their files wait in JMGEO_UPLOAD_DIR for the worker
    upload_sync_max_bytes: int = Field(default=256 * 1024 ** 2, ge=0)
    upload_dir: Path | None = None

    @field_validator("debug", mode="before")
    @classmethod
    def _empty_is_off(cls, value):
        return False if value == "" else value  # JMGEO_DEBUG= (set but empty) means off

    @field_validator("replica_urls", mode="before")
    @classmethod
    def _replica_list(cls, value):
        items = value.split(",") if isinstance(value, str) else list(value or ())
        urls = tuple(dict.fromkeys(u.strip() for u in items if u.strip()))
        for url in urls:
            if not url.startswith(("postgresql://", "postgres://")):
                # the DSN itself is not echoed: it carries a password
                raise ValueError(
                    "JMGEO_REPLICA_URLS：每项应为 postgresql:// 连接串（以逗号分隔）/ each "
                    "item must be a postgresql:// URL, comma-separated")
        return urls

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value):
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return tuple(dict.fromkeys(h.strip().lower() for h in items if h.strip()))

    @property
    def allowed_host_names(self) -> frozenset[str]:
        """The Host values accepted (empty: no check): the configured ones and the public
        URL's host with and without its port."""
        if not self.allowed_hosts:
            return frozenset()
        from urllib.parse import urlsplit

        names = set(self.allowed_hosts)
        public = urlsplit(self.base_url)
        if public.hostname:
            names.update({public.hostname.lower(), public.netloc.lower()})
        return frozenset(names)

    # local datum shifts from the surveying bureau, "dx,dy,dz[,rx,ry,rz,s]" (PROJ
    # +towgs84): Xian 1980 / Beijing 1954 input is exact with them, approximate without
    # (read by spatial.inputcrs.load_local_datum_params)
    xian80_towgs84: str | None = None
    beijing54_towgs84: str | None = None
    # loaders: records per batch (memory vs speed), the largest attribute value accepted
    # (bigger is an export error: an image or a document in a field), and the most a zip
    # may expand to (zip bombs) — JMGEO_LOAD_BATCH, JMGEO_MAX_FIELD_BYTES, JMGEO_ZIP_MAX_BYTES
    # (10,000: the 1M-parcel load, region index included, peaks at 310–370 MB and is as
    # fast as 25,000's ~410 MB — smaller batches stay in the CPU caches; 5,000 is slower)
    load_batch: int = 10_000
    max_field_bytes: int = 1024 * 1024
    zip_max_bytes: int = 20 * 1024 ** 3
    # JMGEO_LOAD_BULK_DBF: Shapefile/DBF attributes decoded in bulk (loaders.dbf), the
    # values GDAL reads; 0: GDAL reads them feature by feature (the operator's switch)
    load_bulk_dbf: bool = True
    # resource limits of one load (issue 16; refused with a LoaderError naming the setting):
    # properties (attribute columns; a PostgreSQL table holds at most 1600 columns),
    # features, wall-clock seconds, memory (MB the process grew by since the load began),
    # raster width/height and total pixels (checked on the GeoTIFF's header, before a pixel
    # is read) — JMGEO_LOAD_MAX_PROPERTIES, JMGEO_LOAD_MAX_FEATURES, JMGEO_LOAD_MAX_SECONDS,
    # JMGEO_LOAD_MAX_MEMORY_MB, JMGEO_RASTER_MAX_SIDE, JMGEO_RASTER_MAX_PIXELS
    load_max_properties: int = Field(default=1000, ge=1, le=1590)
    load_max_features: int = Field(default=50_000_000, ge=1)
    load_max_seconds: float = Field(default=3600.0, gt=0)
    load_max_memory_mb: int = Field(default=2048, ge=1)
    raster_max_side: int = Field(default=100_000, ge=1)
    raster_max_pixels: int = Field(default=2_000_000_000, ge=1)
    # the job queue (jmgeo worker): seconds between a worker's heartbeats, and the silence
    # after which its running jobs count as stalled and are run again by another worker
    worker_heartbeat: float = Field(default=10.0, gt=0)
    worker_stalled_after: float = Field(default=30.0, gt=0)
    # seconds an idle worker waits before looking for jobs that became due (retries with
    # a backoff wake no one: they are found by this poll) — procrastinate's default 5
    worker_poll: float = Field(default=5.0, gt=0)

    # browsers on other origins (jmgeo.web): JMGEO_CORS_ORIGINS, a comma-separated list of
    # origins (``https://map.jiangmen.gov.cn,http://10.1.2.3:8080``) whose pages may send
    # an API key (credentials, Authorization / X-API-Key) and write; every other origin
    # may only make anonymous GETs (``Access-Control-Allow-Origin: *``), unless
    # JMGEO_CORS_ANONYMOUS=0. JMGEO_CORS_MAX_AGE: seconds a browser keeps a preflight
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    cors_anonymous: bool = True
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    # response compression (jmgeo.web.Compression): gzip level 1-9 (0: off), and the
    # smallest body worth compressing — JMGEO_GZIP_LEVEL, JMGEO_GZIP_MIN_BYTES
    gzip_level: int = Field(default=6, ge=0, le=9)
    gzip_min_bytes: int = Field(default=500, ge=0)
    # the portal's maps (jmgeo.portal): by default the basemap is the framework itself (the
    # regions as vector tiles, Chinese names in the browser's local CJK font). A deployment
    # with a self-hosted basemap (the surveying bureau's tiles behind a MapLibre style on
    # its own network) names the style URL and the attribution its licence requires, e.g.
    # JMGEO_PORTAL_BASEMAP_STYLE=/basemap/style.json
    # JMGEO_PORTAL_BASEMAP_ATTRIBUTION="审图号：粤S(2024)001号 © 江门市自然资源局"
    portal_basemap_style: str | None = None
    portal_basemap_attribution: str | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value):
        if isinstance(value, str):
            value = value.split(",")
        origins = []
        for item in value or ():
            origin = str(item).strip().rstrip("/").lower()
            if not origin:
                continue
            if not _ORIGIN_RE.match(origin):
                raise ValueError(
                    f"JMGEO_CORS_ORIGINS：{item!r} 不是来源（scheme://主机[:端口]）/ "
                    f"{item!r} is not an origin: write scheme://host[:port], e.g. "
                    "https://map.jiangmen.gov.cn (no path, no '*': any origin may "
                    "already make anonymous GETs)")
            origins.append(origin)
        return tuple(dict.fromkeys(origins))

    # OGC API Features pages (jmgeo.ogc.config): JMGEO_ITEMS_PAGE_SIZE items when a client
    # gives no `limit`, at most JMGEO_ITEMS_MAX_LIMIT when it does (more: a 400) — both
    # declared once in the OpenAPI document (components/parameters/limit), where QGIS and
    # GDAL read them
    items_page_size: int = Field(default=100, ge=1)
    items_max_limit: int = Field(default=10_000, ge=1)

    # webhook pushes (系统对接 subscriptions, exchange.push): the outbox is dispatched every
    # JMGEO_PUSH_DISPATCH_EVERY seconds (1-59: a cron with seconds; 60 and more: whole
    # minutes); a receiver gets JMGEO_PUSH_MAX_ATTEMPTS tries JMGEO_PUSH_RETRY_BASE *
    # 2**n seconds apart, then the delivery is a dead letter; each POST waits
    # JMGEO_PUSH_TIMEOUT seconds; a pushed change set carries at most
    # JMGEO_PUSH_MAX_CHANGES records (beyond: ``truncated`` and the pull link)
    push_dispatch_every: int = Field(default=10, ge=1, le=3600)
    push_max_attempts: int = Field(default=8, ge=1, le=50)
    push_retry_base: float = Field(default=30.0, gt=0)
    push_timeout: float = Field(default=10.0, gt=0)
    push_max_changes: int = Field(default=1000, ge=0)

    # 前置机 inbound (exchange.fep_inbound): the drop folders' root, ``<root>/<dept>/<resource>/``
    # (default var/fep/inbox), and how long a file must lie unchanged (mtime) before it is
    # harvested, so a file still being copied is never loaded half — JMGEO_FEP_INBOX,
    # JMGEO_FEP_SETTLE_SECONDS
    fep_inbox: Path | None = None
    fep_settle_seconds: float = Field(default=10.0, ge=0)

    # online query (联机查询, /exchange/query): a token bucket per API key (per client
    # address for anonymous callers) — JMGEO_QUERY_RATE requests per second refill, up to
    # JMGEO_QUERY_BURST at once. Kept in each server process: with N uvicorn workers a key
    # may get up to N times this (documented in jmgeo/query_api.py)
    query_rate: float = Field(default=20.0, gt=0)
    query_burst: int = Field(default=100, ge=1)
    # online queries are counted in batches written at least this often (seconds; 0:
    # one row per query) — see exchange.deliveries.QueryCounter
    query_count_every: float = Field(default=1.0, ge=0)

    # batch download (批量下载): a download of more rows than JMGEO_EXPORT_SYNC_MAX_ROWS is
    # an export job (202 + progress) whose file waits in JMGEO_EXPORT_DIR (default
    # var/exports; the server and every worker must see the same directory) for
    # JMGEO_EXPORT_TTL_HOURS after it is written
    export_sync_max_rows: int = Field(default=100_000, ge=0)
    export_ttl_hours: float = Field(default=24.0, gt=0)
    export_dir: Path | None = None
    # the download file cache (jmgeo.downloads.cache): each download of an unchanged
    # version is built once and kept in JMGEO_DOWNLOAD_CACHE_DIR (default
    # var/download-cache; shared by the server's workers), at most
    # JMGEO_DOWNLOAD_CACHE_MAX_MB in all (least recently used first out; 0: no cache)
    download_cache_dir: Path | None = None
    download_cache_max_mb: int = Field(default=2048, ge=0)

    # exchange notifications by mail (optional): with JMGEO_SMTP_HOST set, every inbox
    # notification is also mailed to <dept code>@JMGEO_SMTP_DOMAIN from JMGEO_SMTP_FROM
    # through that internal server (plain SMTP, no auth: a government intranet relay)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "jmgeo@localhost"
    smtp_domain: str = "localhost"

    # vector tiles of open layers are cached on disk (jmgeo.ogc.tilecache), shared by every
    # server worker and `jmgeo tiles seed`: in JMGEO_TILE_CACHE_DIR (default
    # var/tile-cache), at most JMGEO_TILE_CACHE_MB megabytes (least recently used tiles
    # go first; 0 turns the cache off)
    tile_cache_dir: Path | None = None
    tile_cache_mb: float = Field(default=512.0, ge=0)

    # the department console (jmgeo.sessions): a sign-in with an API key lasts at most
    # JMGEO_SESSION_HOURS, and ends after JMGEO_SESSION_IDLE_MINUTES without a request;
    # the cookie is Secure when the platform is served over https (JMGEO_PUBLIC_URL)
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    session_idle_minutes: float = Field(default=30.0, gt=0)

    # the audit log (layers.audit): the HMAC keys of its chain (JMGEO_AUDIT_KEY_FILE,
    # default var/audit/keys.json, mode 0600) and the signed checkpoints of its head
    # (JMGEO_AUDIT_CHECKPOINT_FILE, default var/audit/checkpoints.jsonl), both outside the
    # database; a worker writes a checkpoint every JMGEO_AUDIT_CHECKPOINT_MINUTES
    audit_key_file: Path | None = None
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_minutes: int = Field(default=5, ge=1, le=59)

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.var_dir / "audit" / "keys.json"

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.audit_checkpoint_file or self.var_dir / "audit" / "checkpoints.jsonl"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def https(self) -> bool:
        """Served over https (the public URL says so): session cookies are ``Secure``."""
        return self.base_url.lower().startswith("https://")

    @property
    def uploads_path(self) -> Path:
        return self.upload_dir or self.var_dir / "uploads"

    @property
    def exports_path(self) -> Path:
        return self.export_dir or self.var_dir / "exports"

    @property
    def tile_cache_path(self) -> Path:
        return self.tile_cache_dir or self.var_dir / "tile-cache"

    @property
    def download_cache_path(self) -> Path:
        return self.download_cache_dir or self.var_dir / "download-cache"

    @property
    def fep_inbox_root(self) -> Path:
        return self.fep_inbox or self.var_dir / "fep" / "inbox"

    @property
    def local_url_file(self) -> Path:
        """The local cluster's owner DSN (provisioning, migrations, the tests' server)."""
        return self.var_dir / "database_url"

    @property
    def local_app_url_file(self) -> Path:
        """The local cluster's app-role DSN (what the app and the workers connect as)."""
        return self.var_dir / "app_database_url"

    def resolved_owner_database_url(self) -> str:
        """The owner's DSN: JMGEO_OWNER_DATABASE_URL, else DATABASE_URL (one role for
        both), else the local cluster's owner."""
        if self.owner_database_url:
            return self.owner_database_url
        if self.database_url:
            return self.database_url
        if self.local_url_file.exists():
            return self.local_url_file.read_text().strip()
        return self.resolved_database_url()  # raises the "no database" message

    def resolved_database_url(self) -> str:
        """The DSN to use: DATABASE_URL, else the one provisioning wrote, else an error."""
        if self.database_url:
            return self.database_url
        cached = self.__dict__.get("_local_dsn")
        if cached:
            return cached
        # the app role's DSN; a cluster provisioned before the roles existed has only the
        # owner's (the app then connects as the owner: `jmgeo audit verify` warns)
        for file in (self.local_app_url_file, self.local_url_file):
            if file.exists():
                dsn = file.read_text().strip()
                self.__dict__["_local_dsn"] = dsn  # read once per process (hot path)
                return dsn
        raise RuntimeError(
            "没有数据库连接 / No database configured: set DATABASE_URL, "
            "or run `jmgeo db ensure` (make run does) to provision a local PostGIS."
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests switch DATABASE_URL between databases)."""
    get_settings.cache_clear()


def export_for_workers(**values: object) -> None:
    """Set settings as environment variables for processes started from this one (uvicorn's
    workers build the app from a factory and read their settings afresh), and here too."""
    for name, value in values.items():
        if name not in Settings.model_fields:
            raise KeyError(f"unknown setting {name!r}")
        os.environ[f"JMGEO_{name.upper()}"] = str(value)
    reset_settings()


def database_url() -> str:
    return get_settings().resolved_database_url()


def owner_database_url() -> str:
    return get_settings().resolved_owner_database_url()


def sqlalchemy_url(dsn: str | None = None) -> str:
    """The same DSN spelled for SQLAlchemy with the psycopg 3 driver."""
    dsn = dsn or database_url()
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


os.environ.setdefault("PGAPPNAME", "jmgeo")
