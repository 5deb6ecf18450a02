"""The audit chain's HMAC keys (审计密钥), kept outside the database.

The chain (:mod:`layers.audit`) is keyed: each row's hash is HMAC-SHA256 under the key
its ``key_id`` names, so whoever can write the table — the database administrator, a
superuser with the append-only trigger switched off — still cannot make a row that
verifies without this file. The file (``JMGEO_AUDIT_KEY_FILE``, default
``var/audit/keys.json``, mode 0600, owned by the user the platform runs as) holds every
key ever used, newest last: rotating (``jmgeo audit rotate-key``) adds a key and makes
it current; old keys stay to verify old rows and checkpoints.

A key's id is derived from the key itself (``sha256("jmgeo-audit-key" + key)``, 12 hex
digits): a lost or replaced file shows up as "unknown key id", not as a wrong hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jmgeo.errors import UserError
from jmgeo.settings import get_settings


class AuditKeyError(UserError):
    """The key file is unreadable, malformed or too open."""


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"jmgeo-audit-key" + secret).hexdigest()[:12]


@dataclass(frozen=True)
class Keyring:
    """Every key by id, and the current one (the last added)."""

    keys: dict[str, bytes]
    current: str
    path: Path

    def mac(self, kid: str, message: str) -> str:
        """HMAC-SHA256 of ``message`` under key ``kid`` (KeyError when unknown)."""
        return hmac.new(self.keys[kid], message.encode("utf-8"), hashlib.sha256).hexdigest()


def _path(path: Path | None) -> Path:
    return Path(path) if path is not None else get_settings().audit_key_path


def _serialise(entries: list[dict]) -> str:
    return json.dumps({"keys": entries}, indent=1) + "\n"


def _write_new(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` to ``path`` mode 0600 atomically; without ``replace``, only when no
    file is there yet (another process may have made it first: False)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic "create if absent"
            return True
        except FileExistsError:
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def _new_entry() -> dict:
    secret = secrets.token_bytes(32)
    return {"id": key_id(secret), "secret": secret.hex(),
            "created": datetime.now(UTC).isoformat(timespec="seconds")}


def _entries(path: Path) -> list[dict]:
    try:
        mode = path.stat().st_mode & 0o777
        data = json.loads(path.read_text())
        entries = list(data["keys"])
        for e in entries:
            if key_id(bytes.fromhex(e["secret"])) != e["id"]:
                raise ValueError(f"key {e['id']} does not match its secret")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditKeyError(
            f"审计密钥文件 {path} 无法读取或格式错误 / the audit key file {path} cannot be "
            f"read or is malformed ({exc}): restore it from the backup — without it the "
            "audit chain cannot be verified") from exc
    if mode & 0o077:
        raise AuditKeyError(
            f"审计密钥文件 {path} 权限过宽（{oct(mode)}）/ the audit key file {path} is "
            f"readable by others (mode {oct(mode)}): run `chmod 600 {path}`")
    if not entries:
        raise AuditKeyError(f"审计密钥文件 {path} 没有密钥 / {path} holds no key: restore it")
    return entries


def exists(path: Path | None = None) -> bool:
    return _path(path).exists()


def ensure(path: Path | None = None) -> Path:
    """Create the key file with a first key when there is none (provisioning does; so
    does the first audit row); never touches an existing file."""
    path = _path(path)
    if not path.exists():
        _write_new(path, _serialise([_new_entry()]), replace=False)
    return path


_CACHE: dict[Path, tuple[float, int, Keyring]] = {}


def load(path: Path | None = None, *, create: bool = True) -> Keyring:
    """The keyring (created first when absent and ``create``); re-read when the file
    changed (a rotation by another process)."""
    path = _path(path)
    if create:
        ensure(path)
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise AuditKeyError(
            f"审计密钥文件 {path} 不存在 / the audit key file {path} does not exist: restore "
            "it from the backup (JMGEO_AUDIT_KEY_FILE names another place)") from exc
    cached = _CACHE.get(path)
    if cached and cached[0] == st.st_mtime and cached[1] == st.st_size:
        return cached[2]
    entries = _entries(path)
    ring = Keyring({e["id"]: bytes.fromhex(e["secret"]) for e in entries},
                   entries[-1]["id"], path)
    _CACHE[path] = (st.st_mtime, st.st_size, ring)
    return ring


def rotate(path: Path | None = None) -> str:
    """Add a new key and make it current; the old ones stay. Returns the new key's id."""
    path = ensure(_path(path))
    entries = _entries(path)
    entry = _new_entry()
    _write_new(path, _serialise([*entries, entry]), replace=True)
    _CACHE.pop(path, None)
    return entry["id"]
