"""The audit log against its own database administrator (issue 16 §4).

Every attack is done as the owner role — on the local cluster a PostgreSQL superuser —
with the append-only trigger switched off where it would stop it, and each must be found
by ``jmgeo audit verify`` (exit 1, a bilingual message naming the row or checkpoint).
The app's own role is refused UPDATE, DELETE and TRUNCATE outright. Each test puts the
table and the checkpoint file back as they were (as the superuser) afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re

import psycopg
import pytest
from psycopg.rows import dict_row

from jmgeo.cli import main
from jmgeo.settings import get_settings
from layers import audit, audit_checkpoint, audit_keys
from layers.policy import Caller

WHO = Caller("department", "gh", "tamper-test")
ROWS = 8


def bilingual(msg: str) -> bool:
    return " / " in msg and re.search(r"[\u4e00-\u9fff]", msg) is not None


@pytest.fixture(scope="module")
def app_conn(database_url):
    """A connection as the platform connects (the app role)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="module")
def su(owner_database_url):
    """The attacker: the owner role (on the local cluster a superuser)."""
    with psycopg.connect(owner_database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="module")
def chain(app_conn, su):
    """ROWS rows written by the platform and a checkpoint of them; the table copied
    aside (as the superuser) so each test can put it back."""
    ids = [audit.record(app_conn, action="ogc.items", caller=WHO, layer="tamper_layer",
                        request={"path": f"/ogc/collections/t/items/{i}", "query": "f=json"},
                        rows=i) for i in range(ROWS)]
    assert audit_checkpoint.write(app_conn) is not None
    su.execute("DROP TABLE IF EXISTS audit_tamper_copy")
    su.execute("CREATE TABLE audit_tamper_copy AS SELECT * FROM audit_log")
    yield ids
    su.execute("DROP TABLE IF EXISTS audit_tamper_copy")


@pytest.fixture
def restore(chain, su):
    """Put audit_log, the key file and the checkpoint file back after the attack."""
    cps = get_settings().audit_checkpoint_path
    keys = get_settings().audit_key_path
    saved_cps, saved_keys = cps.read_bytes(), keys.read_bytes()
    yield chain
    with su.transaction():
        su.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        su.execute("DELETE FROM audit_log")
        su.execute("INSERT INTO audit_log SELECT * FROM audit_tamper_copy")
        su.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    cps.write_bytes(saved_cps)
    keys.write_bytes(saved_keys)
    keys.chmod(0o600)


def verify(capsys) -> tuple[int, str]:
    code = main(["audit", "verify"])
    out = capsys.readouterr()
    return code, out.out + out.err


def as_superuser(su, *statements: str, params=None) -> None:
    """Run the attack with the append-only trigger switched off, as a DBA could."""
    with su.transaction():
        su.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for stmt in statements:
            su.execute(stmt, params)
        su.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def assert_detected(capsys, reason_words: str, name: str) -> str:
    code, text = verify(capsys)
    assert code == 1, text
    assert name in text and re.search(reason_words, text), text
    first = text.strip().splitlines()
    assert any(bilingual(line) for line in first), text
    assert "verified against" in text and "checkpoint #" in text, text
    return text


def test_intact_chain_names_its_checkpoint(restore, capsys):
    code, text = verify(capsys)
    assert code == 0, text
    assert "audit chain intact" in text and re.search(r"checkpoint #\d+", text), text


def test_update_with_trigger_disabled(restore, su, capsys):
    rid = restore[3]
    as_superuser(su, f"UPDATE audit_log SET rows = 100000 WHERE id = {rid}")
    assert_detected(capsys, "altered", f"row {rid}")


def test_recompute_hashes_without_the_key(restore, su, capsys):
    """Edit a row and rewrite every hash from it on as the old unkeyed sha256 chain
    (the DBA has the algorithm, not the key): the checkpoint's hash no longer matches."""
    rows = su.execute(f"SELECT {audit.COLUMNS} FROM audit_log ORDER BY id").fetchall()
    prev = None
    updates = []
    for r in rows:
        r["key_id"] = None
        if r["id"] == restore[2]:
            r["rows"] = 0
            r["caller"] = "someone-else"
        r["prev_hash"] = prev
        r["hash"] = hashlib.sha256(((prev or "") + audit.canonical(r)).encode()).hexdigest()
        prev = r["hash"]
        updates.append((r["caller"], r["rows"], r["prev_hash"], r["hash"], r["id"]))
    with su.transaction():
        su.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        su.cursor().executemany(
            "UPDATE audit_log SET key_id = NULL, caller = %s, rows = %s, prev_hash = %s, "
            "hash = %s WHERE id = %s", updates)
        su.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    assert audit.verify(su) is None  # without the checkpoints it is a valid old chain
    assert_detected(capsys, "rewritten|differs", f"row {restore[-1]}")


def test_recompute_keyed_rows_with_a_guessed_hash(restore, su, capsys):
    rid = restore[4]
    r = su.execute(f"SELECT {audit.COLUMNS} FROM audit_log WHERE id = {rid}").fetchone()
    r["rows"] = 0
    digest = hashlib.sha256(((r["prev_hash"] or "") + audit.canonical(r)).encode()).hexdigest()
    as_superuser(su, "UPDATE audit_log SET rows = 0, hash = %s WHERE id = %s",
                 params=(digest, rid))
    assert_detected(capsys, "altered", f"row {rid}")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_delete_one_row(restore, su, capsys, where):
    ids = restore
    victim = {"first": ids[0], "middle": ids[ROWS // 2], "last": ids[-1]}[where]
    first_id = su.execute("SELECT min(id) AS m FROM audit_log").fetchone()["m"]
    if where == "first":
        victim = first_id  # the table's first row (earlier tests of the session wrote some)
    as_superuser(su, f"DELETE FROM audit_log WHERE id = {victim}")
    if where == "first":
        nxt = su.execute("SELECT min(id) AS m FROM audit_log").fetchone()["m"]
        assert_detected(capsys, "removed", f"row {nxt}")
    elif where == "middle":
        nxt = su.execute(f"SELECT min(id) AS m FROM audit_log WHERE id > {victim}"
                         ).fetchone()["m"]
        assert_detected(capsys, "removed", f"row {nxt}")
    else:
        assert_detected(capsys, "truncated", f"row {victim}")


def test_truncate_the_tail(restore, su, capsys):
    as_superuser(su, f"DELETE FROM audit_log WHERE id >= {restore[-3]}")
    text = assert_detected(capsys, "truncated", f"row {restore[-1]}")
    assert f"{restore[-3] - 1}" in text or "ends at row" in text


def test_truncate_the_table(restore, su, capsys):
    as_superuser(su, "TRUNCATE audit_log")
    assert_detected(capsys, "truncated", "ends at row 0")


def test_forged_append_with_a_correct_unkeyed_hash(restore, su, capsys):
    head = su.execute(f"SELECT {audit.COLUMNS} FROM audit_log ORDER BY id DESC LIMIT 1"
                      ).fetchone()
    fid = su.execute("SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id"
                     ).fetchone()["id"]
    row = {"id": fid, "at": head["at"], "caller": "forger", "dept_code": "gh",
           "layer": "tamper_layer", "grant_id": None, "purpose": None, "action": "ogc.items",
           "request": None, "rows": 1, "prev_hash": head["hash"], "key_id": None}
    digest = audit.row_hash(head["hash"], row)  # key_id None: the old sha256, correct
    su.execute(f"INSERT INTO audit_log ({audit.COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, "
               "%s, %s, %s, %s, %s, %s)",
               (fid, row["at"], "forger", "gh", "tamper_layer", None, None, "ogc.items", None,
                1, head["hash"], None, digest))
    assert_detected(capsys, "forged", f"row {fid}")
    # the same with the current key's id written beside a plain sha256: a wrong hash
    as_superuser(su, "UPDATE audit_log SET key_id = %s, hash = %s WHERE id = %s",
                 params=(audit_keys.load().current,
                         audit.row_hash(head["hash"], row), fid))
    assert_detected(capsys, "altered", f"row {fid}")


def test_edited_checkpoint_file_is_detected(restore, capsys):
    path = get_settings().audit_checkpoint_path
    lines = path.read_text().splitlines()
    entry = json.loads(lines[-1])
    entry["count"] -= 1
    lines[-1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    code, text = verify(capsys)
    assert code == 1 and f"checkpoint file line {len(lines)}" in text, text
    assert bilingual(text.splitlines()[0]), text


def test_rotated_key_verifies_old_and_new_rows(restore, app_conn, capsys):
    old = audit_keys.load().current
    assert main(["audit", "rotate-key"]) == 0
    new = audit_keys.load().current
    assert new != old and set(audit_keys.load().keys) >= {old, new}
    audit.record(app_conn, action="ogc.item", caller=WHO, layer="tamper_layer", rows=1)
    kids = {r["key_id"] for r in app_conn.execute("SELECT DISTINCT key_id FROM audit_log")}
    assert {old, new} <= kids
    capsys.readouterr()
    code, text = verify(capsys)
    assert code == 0, text
    # a key file without the old key: the old rows no longer verify, and it says why
    path = get_settings().audit_key_path
    data = json.loads(path.read_text())
    data["keys"] = [k for k in data["keys"] if k["id"] != old]
    path.write_text(json.dumps(data))
    code, text = verify(capsys)
    assert code == 1 and f"key {old}" in text, text


def test_key_file_is_private(restore):
    path = get_settings().audit_key_path
    assert path.stat().st_mode & 0o077 == 0
    assert get_settings().audit_checkpoint_path.stat().st_mode & 0o077 == 0


def test_app_role_cannot_modify_the_audit_log(chain, app_conn, su):
    """The platform's own role: no UPDATE, DELETE, TRUNCATE, and not the owner (so it
    cannot switch the trigger off); verify warns only when connected as the owner."""
    for stmt in ("UPDATE audit_log SET rows = 0", "DELETE FROM audit_log",
                 "TRUNCATE audit_log",
                 "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete",
                 "DROP TABLE audit_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(stmt)
    assert audit_checkpoint.role_warning(app_conn) is None
    warning = audit_checkpoint.role_warning(su)
    assert warning is not None and bilingual(warning)
    owns = app_conn.execute(
        "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE')"
    ).fetchone()["n"]
    assert owns == 0


def test_verify_as_the_app_role_has_no_warning(restore, capsys):
    code, text = verify(capsys)
    assert code == 0 and "warning" not in text, text


def test_the_worker_checkpoints_every_few_minutes(restore, app_conn):
    """``audit.checkpoint`` is a periodic job of the platform queue; run as the worker
    runs it, it appends a checkpoint when the head moved and none when it did not."""
    from jmgeo.queue import app
    from layers.audit_tasks import checkpoint_job

    crons = {k[1]: v.cron for k, v in app.periodic_registry.periodic_tasks.items()}
    assert crons.get("audit_checkpoint") == "*/5 * * * *"
    rid = audit.record(app_conn, action="ogc.item", caller=WHO, layer="tamper_layer", rows=1)
    seq = checkpoint_job()
    assert seq is not None and checkpoint_job() is None
    good, fault = audit_checkpoint.read()
    assert fault is None and good[-1]["seq"] == seq and good[-1]["row_id"] == rid
