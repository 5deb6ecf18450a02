"""The audit log survives its database administrator: a keyed chain, and an app role.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04

- ``audit_log.key_id``: the id of the HMAC key (kept outside the database,
  ``layers.audit_keys``) the row's hash was made with; NULL for rows written before
  (their plain sha256 chain still verifies, see ``layers.audit``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "key_id")
