"""The government information resource catalog (政务信息资源目录).

Revision ID: 0010
Revises: 0002
Create Date: 2026-11-27

- ``catalog_entry``: one information resource with the national core metadata; its code
  ``前段码/后段码`` is unique, the 后段码 a sequence per 前段码. Sharing rules of DESIGN §6 as
  CHECKs: 有条件 needs its condition, 不予 its legal basis, 开放 only with 无条件.
  ``layer_name`` links a spatial layer's entry (kept in sync by ``catalog.sync``).
- ``catalog_item``: the data items (信息项) with their own sharing type.
- ``catalog_history``: every change, who and when (an UPDATE is refused by trigger).
- ``catalog_state``: the registry epoch the catalog last synced layers at.
- Search: a bigram ``tsvector`` (GIN) built by ``catalog.search``; a pg_trgm GIN index
  on the name answers the fuzzy fallback (similar names when nothing matches exactly).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

revision = "0010"
down_revision = "0002"
branch_labels = None
depends_on = None

FORMATS = ("('electronic_file', 'spreadsheet', 'database', 'image', 'streaming', "
           "'self_describing', 'vector', 'raster', 'service')")
SHARING = "('unconditional', 'conditional', 'not_shared')"
METHODS = "('platform_database', 'platform_api', 'platform_file', 'email', 'media')"
CYCLES = ("('realtime', 'daily', 'weekly', 'monthly', 'quarterly', 'halfyearly', "
          "'yearly', 'other')")
STATUSES = "('draft', 'submitted', 'published', 'retired')"
TYPES = "('C', 'N', 'Y', 'D', 'T', 'L', 'M', 'G', 'B', 'I', 'F')"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "catalog_entry",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.Text, nullable=False, unique=True),
        sa.Column("code_prefix", sa.Text, nullable=False),
        sa.Column("code_seq", sa.Integer, nullable=False),
        sa.Column("class_code", sa.String(1), nullable=False),
        sa.Column("item_code", sa.String(2), nullable=False),
        sa.Column("item_name", sa.Text, nullable=False),
        sa.Column("category_code", sa.String(3), nullable=False),
        sa.Column("category_name", sa.Text, nullable=False),
        sa.Column("subcategory_code", sa.String(6)),
        sa.Column("subcategory_name", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("provider_dept_id", sa.Integer, sa.ForeignKey("department.id"),
                  nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("format", sa.String(24), nullable=False),
        sa.Column("sharing_type", sa.String(16), nullable=False),
        sa.Column("sharing_condition", sa.Text),
        sa.Column("sharing_method", sa.String(24), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("open_condition", sa.Text),
        sa.Column("update_cycle", sa.String(16), nullable=False),
        sa.Column("publish_date", sa.Date),
        sa.Column("related_codes", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("review_state", sa.String(16)),
        sa.Column("review_comment", sa.Text),
        sa.Column("reviewed_by", sa.Text),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("layer_name", sa.String(63), unique=True),
        sa.Column("layer_version", sa.Integer),
        sa.Column("data_updated_at", sa.DateTime(timezone=True)),
        sa.Column("extent", ARRAY(sa.Float)),
        sa.Column("search_text", sa.Text, nullable=False, server_default=""),
        sa.Column("search_vec", TSVECTOR, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("created_by", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_by", sa.Text),
        sa.UniqueConstraint("code_prefix", "code_seq", name="uq_catalog_entry_code_prefix"),
        sa.CheckConstraint("class_code IN ('1', '2', '3')", name="ck_catalog_entry_class"),
        sa.CheckConstraint(f"format IN {FORMATS}", name="ck_catalog_entry_format"),
        sa.CheckConstraint(f"sharing_type IN {SHARING}", name="ck_catalog_entry_sharing_type"),
        sa.CheckConstraint(f"sharing_method IN {METHODS}",
                           name="ck_catalog_entry_sharing_method"),
        sa.CheckConstraint(f"update_cycle IN {CYCLES}", name="ck_catalog_entry_update_cycle"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_catalog_entry_status"),
        sa.CheckConstraint("review_state IS NULL OR review_state IN ('approved', 'returned')",
                           name="ck_catalog_entry_review_state"),
        sa.CheckConstraint(
            "sharing_type = 'unconditional' OR coalesce(btrim(sharing_condition), '') <> ''",
            name="ck_catalog_entry_condition_required"),
        sa.CheckConstraint("NOT is_open OR sharing_type = 'unconditional'",
                           name="ck_catalog_entry_open_is_unconditional"),
        sa.CheckConstraint("code = code_prefix || '/' || lpad(code_seq::text, 6, '0')",
                           name="ck_catalog_entry_code_parts"),
    )
    op.create_index("uq_catalog_entry_provider_name", "catalog_entry",
                    ["provider_dept_id", "name"], unique=True,
                    postgresql_where=sa.text("status <> 'retired'"))
    for col in ("status", "class_code", "provider_dept_id", "sharing_type", "format",
                "update_cycle"):
        op.create_index(f"ix_catalog_entry_{col}", "catalog_entry", [col])
    op.create_index("ix_catalog_entry_search_vec", "catalog_entry", ["search_vec"],
                    postgresql_using="gin")
    op.execute("CREATE INDEX ix_catalog_entry_name_trgm ON catalog_entry "
               "USING gin (name gin_trgm_ops)")

    op.create_table(
        "catalog_item",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_id", sa.Integer,
                  sa.ForeignKey("catalog_entry.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("data_type", sa.String(1), nullable=False),
        sa.Column("length", sa.Text),
        sa.Column("sharing_type", sa.String(16), nullable=False),
        sa.Column("field", sa.Text),  # the data table column, for spatial layers
        sa.UniqueConstraint("entry_id", "position", name="uq_catalog_item_entry_id"),
        sa.UniqueConstraint("entry_id", "name", name="uq_catalog_item_entry_name"),
        sa.CheckConstraint(f"data_type IN {TYPES}", name="ck_catalog_item_data_type"),
        sa.CheckConstraint(f"sharing_type IN {SHARING}", name="ck_catalog_item_sharing_type"),
    )

    op.create_table(
        "catalog_history",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("entry_id", sa.Integer,
                  sa.ForeignKey("catalog_entry.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("dept_code", sa.String(32)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status_from", sa.String(16)),
        sa.Column("status_to", sa.String(16)),
        sa.Column("comment", sa.Text),
        sa.Column("changes", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("ix_catalog_history_entry_id", "catalog_history", ["entry_id", "at"])
    # history is written once: an UPDATE is refused (rows go only with their entry)
    op.execute("""
        CREATE FUNCTION catalog_history_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'catalog_history is append-only';
        END $$""")
    op.execute("CREATE TRIGGER catalog_history_no_update BEFORE UPDATE ON catalog_history "
               "FOR EACH ROW EXECUTE FUNCTION catalog_history_immutable()")

    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("synced_epoch", sa.BigInteger, nullable=False, server_default="-1"),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id = 1", name="ck_catalog_state_single_row"),
    )
    op.execute("INSERT INTO catalog_state (id, synced_epoch) VALUES (1, -1)")


def downgrade() -> None:
    for table in ("catalog_state", "catalog_history", "catalog_item", "catalog_entry"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS catalog_history_immutable()")
    # pg_trgm stays: other objects may use it, and keeping an extension is harmless
