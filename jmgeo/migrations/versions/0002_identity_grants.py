"""Identity (department users, machine clients, API keys), grants, append-only audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

- ``principal``: a department user or machine client (or the bureau admin / an auditor)
  that holds API keys. ``role`` is department | admin | auditor.
- ``api_key``: a key is ``jmk_<prefix>_<secret>``; only the short public ``prefix``
  (indexed, unique, for lookup) and ``key_hash`` = sha256(full token) hex are stored.
  The token carries >=192 bits of randomness, so a plain sha256 is adequate (no
  password-style stretching needed); the app compares with ``hmac.compare_digest``.
- ``layer_grant``: a conditional layer's data for one department, for one purpose
  (用途), limited to fields (NULL = all) and region codes (NULL = whole city), within
  [valid_from, valid_to), approved by someone, until revoked.
- ``audit_log`` becomes append-only at the database level: a trigger raises on UPDATE,
  DELETE and TRUNCATE. Where a separate application role ``jmgeo_app`` exists (a
  production deployment: migrations run as the owner, the app as ``jmgeo_app``), that
  role is granted SELECT/INSERT only. On the local dev cluster the app connects as
  the table owner, who is a superuser: the trigger still stops ordinary UPDATE/DELETE,
  but a superuser/owner can ``ALTER TABLE ... DISABLE TRIGGER`` — which is why the
  hash chain (``jmgeo audit verify``) exists as the tamper-evidence of last resort.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLES = "('department', 'admin', 'auditor')"


def upgrade() -> None:
    op.create_table(
        "principal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False, server_default="user"),
        sa.Column("role", sa.String(16), nullable=False, server_default="department"),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('user', 'client')", name="ck_principal_kind"),
        sa.CheckConstraint(f"role IN {ROLES}", name="ck_principal_role"),
        sa.CheckConstraint("role <> 'department' OR dept_id IS NOT NULL",
                           name="ck_principal_department_has_dept"),
    )

    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("principal_id", sa.Integer,
                  sa.ForeignKey("principal.id", ondelete="CASCADE"), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("key_hash ~ '^[0-9a-f]{64}$'", name="ck_api_key_hash_hex"),
    )

    op.create_table(
        "layer_grant",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layer_id", sa.Integer, sa.ForeignKey("layer.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("dept_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("fields", ARRAY(sa.Text)),
        sa.Column("regions", ARRAY(sa.Text)),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("approved_by", sa.Text, nullable=False),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.Text),
        sa.CheckConstraint("btrim(purpose) <> ''", name="ck_layer_grant_purpose"),
        sa.CheckConstraint("btrim(approved_by) <> ''", name="ck_layer_grant_approved_by"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from",
                           name="ck_layer_grant_period"),
    )
    op.create_index("ix_layer_grant_layer_dept", "layer_grant", ["layer_id", "dept_id"])

    op.create_index("ix_audit_log_dept_code", "audit_log", ["dept_code"])
    op.create_index("ix_audit_log_layer", "audit_log", ["layer"])

    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '审计日志只可追加 / audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("""
        CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""")
    op.execute("""
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC")
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jmgeo_app')
               AND (SELECT tableowner FROM pg_tables WHERE tablename = 'audit_log'
                    AND schemaname = current_schema()) <> 'jmgeo_app' THEN
                REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM jmgeo_app;
                GRANT SELECT, INSERT ON audit_log TO jmgeo_app;
                GRANT USAGE ON SEQUENCE audit_log_id_seq TO jmgeo_app;
            END IF;
        END $$""")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index("ix_audit_log_layer", table_name="audit_log")
    op.drop_index("ix_audit_log_dept_code", table_name="audit_log")
    op.drop_index("ix_layer_grant_layer_dept", table_name="layer_grant")
    for table in ("layer_grant", "api_key", "principal"):
        op.drop_table(table)
