"""What the registry said about a resource when each version was current:
``layer_version.registry``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

A rollback is a pointer move, but the registry row (``layer``) also describes the data:
its kind (vector / raster / table), geometry type, source CRS and encoding, key field,
field labels, sensitive fields and map style. Rolling back across a vector → raster
change used to keep the raster's description on the vector table. Each version now
keeps that description (``layers.version_state``): written at publish, refreshed when
the version stops being current (a style set meanwhile belongs to it), restored by
rollback. NULL (versions published before this migration): rollback derives what it can
from the version's load report.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("layer_version", sa.Column("registry", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("layer_version", "registry")
