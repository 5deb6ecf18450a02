"""The notification inbox (通知) of each department, and optional mail.

Every reminder, escalation and answer is a row of ``notification`` for the department it
concerns (read with ``jmgeo request inbox`` or ``GET /exchange/notifications``). When
``JMGEO_SMTP_HOST`` is set the same text is also mailed, through that internal server, to
``<dept code>@JMGEO_SMTP_DOMAIN``; a mail that fails is logged and left unmailed
(``mailed_at`` NULL) — the inbox row is the record, mail only a courtesy.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from psycopg.rows import dict_row

from exchange.errors import NotFound
from jmgeo.errors import bilingual
from jmgeo.settings import get_settings
from layers.policy import Caller

log = logging.getLogger(__name__)


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def notify(conn, dept_code: str | None, kind: str, message: str,
           request_id: int | None = None, now: datetime | None = None) -> int | None:
    """Put a notification in the department's inbox (and mail it when configured)."""
    if not dept_code:
        return None
    row = _q(conn, "INSERT INTO notification (dept_id, request_id, kind, message, created_at) "
                   "SELECT id, %s, %s, %s, %s FROM department WHERE code = %s RETURNING id",
             (request_id, kind, message, now or datetime.now(UTC), dept_code)).fetchone()
    if row is None:
        return None
    if send_mail(dept_code, kind, message):
        conn.execute("UPDATE notification SET mailed_at = now() WHERE id = %s", (row["id"],))
    return row["id"]


def send_mail(dept_code: str, kind: str, message: str) -> bool:
    """Mail one notification; False when no server is configured or the mail failed."""
    s = get_settings()
    if not s.smtp_host:
        return False
    mail = EmailMessage()
    mail["From"] = s.smtp_from
    mail["To"] = f"{dept_code}@{s.smtp_domain}"
    mail["Subject"] = f"[共享交换 / exchange] {kind}"
    mail.set_content(message)
    try:
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("notification mail to %s failed: %s", mail["To"], exc)
        return False
    return True


def notifications(conn, caller: Caller, *, unread_only: bool = False) -> list[dict[str, Any]]:
    """The caller's department's inbox, newest first (none for a caller without one)."""
    if caller.kind not in ("department", "admin") or not caller.dept_code:
        return []
    query = ("SELECT n.id, n.request_id, n.kind, n.message, n.created_at, n.read_at, "
             "n.mailed_at FROM notification n JOIN department d ON d.id = n.dept_id "
             "WHERE d.code = %s")
    if unread_only:
        query += " AND n.read_at IS NULL"
    return _q(conn, query + " ORDER BY n.id DESC", (caller.dept_code,)).fetchall()


def mark_read(conn, caller: Caller, notification_id: int) -> None:
    """Mark one of the caller's notifications read (another's is not found)."""
    row = _q(conn, "UPDATE notification n SET read_at = coalesce(read_at, now()) "
                   "FROM department d WHERE d.id = n.dept_id AND n.id = %s AND d.code = %s "
                   "AND %s RETURNING n.id",
             (notification_id, caller.dept_code,
              caller.kind in ("department", "admin"))).fetchone()
    if row is None:
        raise NotFound(bilingual(f"通知 {notification_id} 不存在", f"no notification "
                                 f"{notification_id} in your inbox"))
