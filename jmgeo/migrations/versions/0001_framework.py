"""The spatial framework: regions, departments, layer registry, versions, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SHARING = "('open', 'unconditional', 'conditional', 'not_shared')"
CYCLES = ("('realtime', 'daily', 'weekly', 'monthly', 'quarterly', 'halfyearly', "
          "'yearly', 'other')")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE SCHEMA IF NOT EXISTS layer_data")

    op.create_table(
        "region",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("parent_code", sa.String(12)),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("source", sa.Text),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4490, spatial_index=False)),
        sa.UniqueConstraint("code", "valid_from", name="uq_region_code"),
    )
    op.create_index("ix_region_code", "region", ["code"])
    op.create_index("ix_region_geom", "region", ["geom"], postgresql_using="gist")

    op.create_table(
        "region_part",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("region_id", sa.Integer, sa.ForeignKey("region.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("geom", Geometry("POLYGON", srid=4490, spatial_index=False), nullable=False),
    )
    op.create_index("ix_region_part_region_id", "region_part", ["region_id"])
    op.create_index("ix_region_part_code", "region_part", ["code"])
    op.create_index("ix_region_part_geom", "region_part", ["geom"], postgresql_using="gist")

    op.create_table(
        "department",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("uscc", sa.String(18), unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )

    op.create_table(
        "layer",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("owner_dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("theme", sa.String(32), nullable=False),
        sa.Column("sharing_class", sa.String(16), nullable=False),
        sa.Column("legal_basis", sa.Text),
        sa.Column("update_cycle", sa.String(16), nullable=False, server_default="other"),
        sa.Column("kind", sa.String(8), nullable=False, server_default="vector"),
        sa.Column("geometry_type", sa.String(32)),
        sa.Column("source_crs", sa.Text),
        sa.Column("source_encoding", sa.String(32)),
        sa.Column("key_field", sa.Text),
        sa.Column("current_version", sa.Integer),
        sa.Column("sensitive_fields", JSONB, nullable=False, server_default="{}"),
        sa.Column("field_labels", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint(f"sharing_class IN {SHARING}", name="ck_layer_sharing_class"),
        sa.CheckConstraint(
            "sharing_class <> 'not_shared' OR coalesce(btrim(legal_basis), '') <> ''",
            name="ck_layer_not_shared_needs_legal_basis"),
        sa.CheckConstraint(f"update_cycle IN {CYCLES}", name="ck_layer_update_cycle"),
        sa.CheckConstraint("kind IN ('vector', 'raster')", name="ck_layer_kind"),
        sa.CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,62}$'", name="ck_layer_name_identifier"),
    )

    op.create_table(
        "layer_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("loaded_by", sa.Text),
        sa.Column("source_name", sa.Text),
        sa.Column("feature_count", sa.BigInteger),
        sa.Column("report", JSONB, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="published"),
        sa.UniqueConstraint("layer_id", "version", name="uq_layer_version_layer_id"),
    )

    op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint("id = 1", name="ck_registry_state_single_row"),
    )
    op.execute("INSERT INTO registry_state (id, epoch) VALUES (1, 0)")

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("caller", sa.Text),
        sa.Column("dept_code", sa.String(32)),
        sa.Column("layer", sa.Text),
        sa.Column("grant_id", sa.Integer),
        sa.Column("purpose", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("request", JSONB),
        sa.Column("rows", sa.Integer),
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    for table in ("audit_log", "registry_state", "layer_version", "layer", "department",
                  "region_part", "region"):
        op.drop_table(table)
    op.execute("DROP SCHEMA IF EXISTS layer_data CASCADE")
