"""The delivery count in batches: ``exchange_delivery.deliveries``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

An online query (联机查询) is one small delivery, at hundreds a second; writing one row and
one commit for each halved the query throughput. Queries are now counted in batches
(``exchange.deliveries.QueryCounter``: per resource, department and share request, flushed
at least every second), one row per batch carrying how many deliveries it sums.
Every other mode keeps one row per delivery (``deliveries = 1``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchange_delivery", sa.Column("deliveries", sa.Integer, nullable=False,
                                                 server_default="1"))
    op.create_check_constraint("ck_exchange_delivery_deliveries", "exchange_delivery",
                               "deliveries >= 1")


def downgrade() -> None:
    op.drop_column("exchange_delivery", "deliveries")  # its CHECK goes with it
