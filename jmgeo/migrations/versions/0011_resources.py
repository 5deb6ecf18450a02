"""Resources, not only layers: the registry also holds tables (no geometry, one key).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

A registry entry (``layer`` row) is a *resource*: a vector layer, a raster layer, or a
``table`` — person, enterprise, licence or tax records without geometry, identified by
one declared key column (``key_field``: 统一社会信用代码, 身份证号, 宗地代码 …). The SQL name
of the registry stays ``layer`` so every existing URL, grant, audit row and catalog link
keeps working; the new rules are CHECKs:

- ``kind`` admits ``table``;
- a table has a key column and no geometry type; a vector layer has a geometry type.

Downgrade refuses while table resources exist (nothing is dropped silently): retire or
remove them first.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("ck_layer_kind", "layer", type_="check")
    op.create_check_constraint("ck_layer_kind", "layer",
                               "kind IN ('vector', 'raster', 'table')")
    op.create_check_constraint(
        "ck_layer_table_has_key", "layer",
        "kind <> 'table' OR (coalesce(btrim(key_field), '') <> '' AND geometry_type IS NULL)")
    op.alter_column("layer", "kind", type_=sa.String(8))


def downgrade() -> None:
    bind = op.get_bind()
    n = bind.execute(sa.text("SELECT count(*) FROM layer WHERE kind = 'table'")).scalar()
    if n:
        raise RuntimeError(
            f"仍有 {n} 个数据表资源，无法降级 / {n} table resources exist: cannot downgrade "
            "below 0011 without losing them — remove them first")
    op.drop_constraint("ck_layer_table_has_key", "layer", type_="check")
    op.drop_constraint("ck_layer_kind", "layer", type_="check")
    op.create_check_constraint("ck_layer_kind", "layer", "kind IN ('vector', 'raster')")
