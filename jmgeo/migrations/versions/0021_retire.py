"""Retired layers and the data's own extents: ``layer.retired_*``, ``layer_version.extent``.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02

``retired_at`` (NULL: in service) hides a resource from every way out — the one place
that reads it is ``layers.policy`` (``LAYER_QUERY``) — while its versions, grants, change
log and audit rows stay: ``jmgeo layer retire NAME`` / ``unretire NAME`` (audited as
``layer.retire`` / ``layer.unretire``), with who (``retired_by``) and why
(``retired_reason``).

``extent`` is a version's own extent, computed from its data when it is published or
rolled back to (``layers.extents``): ``{"bbox": [minx, miny, maxx, maxy]}`` in CRS84
(lon/lat) and, when the layer has a date/time field, ``"temporal": {"field": …,
"interval": [start, end]}``; NULL until then (the collection then shows the city's box).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("layer", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("layer", sa.Column("retired_by", sa.Text, nullable=True))
    op.add_column("layer", sa.Column("retired_reason", sa.Text, nullable=True))
    op.add_column("layer_version", sa.Column("extent", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("layer_version", "extent")
    op.drop_column("layer", "retired_reason")
    op.drop_column("layer", "retired_by")
    op.drop_column("layer", "retired_at")
