"""A layer's own map style: ``layer.style``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02

``style`` is a MapLibre GL style (JSON, ``version`` 8) the layer's owner set with
``jmgeo layer style NAME FILE.json`` (or ``PUT /ogc/collections/{id}/styles/default``);
NULL means the platform's default style for the geometry type (``layers.styles``). It
is validated before it is stored, and every change is written to the audit log
(action ``layer.style``).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("layer", sa.Column("style", JSONB, nullable=True))
    op.create_check_constraint(
        "ck_layer_style_object", "layer",
        "style IS NULL OR (jsonb_typeof(style) = 'object' AND style->>'version' = '8')")


def downgrade() -> None:
    op.drop_column("layer", "style")  # its CHECK goes with it
