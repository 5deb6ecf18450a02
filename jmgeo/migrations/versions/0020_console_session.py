"""Console sessions (部门控制台会话): ``console_session``.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

A person signs in to the department console with an API key once; the browser then holds
a session cookie whose value is a random session id. The database keeps only
``sha256(id)`` (``token_hash``) — like API keys, the id is high-entropy, so a fast hash
is safe — the key the session stands for (``key_id``: a revoked, expired or disabled key
ends its sessions, checked on every request), the synchroniser CSRF token of the
session, and its clocks: ``expires_at`` (absolute, ``JMGEO_SESSION_HOURS`` after sign-in)
and ``last_seen`` (idle timeout, ``JMGEO_SESSION_IDLE_MINUTES``). Sign-out deletes the
row; so does deleting the key (cascade). See ``jmgeo.sessions``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.Integer,
                  sa.ForeignKey("api_key.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name="ck_console_session_token_hash_hex"),
    )
    op.create_index("ix_console_session_key_id", "console_session", ["key_id"])


def downgrade() -> None:
    op.drop_table("console_session")
