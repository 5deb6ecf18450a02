"""The layer registry: one row per thematic layer, its versions, and the registry epoch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from jmgeo.models import Base
from layers.vocab import RESOURCE_KINDS, SHARING_CLASSES, UPDATE_CYCLES


class Layer(Base):
    """A registry entry — a *resource*: a department's thematic layer (专题图层, vector or
    raster) or a table (数据表: records without geometry, one key column). The SQL name
    stays ``layer`` (URLs, grants and audit rows refer to it)."""

    __tablename__ = "layer"
    __table_args__ = (
        CheckConstraint(f"sharing_class IN {SHARING_CLASSES!r}", name="sharing_class"),
        CheckConstraint(
            "sharing_class <> 'not_shared' OR coalesce(btrim(legal_basis), '') <> ''",
            name="not_shared_needs_legal_basis",
        ),
        CheckConstraint(f"update_cycle IN {UPDATE_CYCLES!r}", name="update_cycle"),
        CheckConstraint(f"kind IN {RESOURCE_KINDS!r}", name="kind"),
        CheckConstraint("kind <> 'table' OR (coalesce(btrim(key_field), '') <> '' "
                        "AND geometry_type IS NULL)", name="table_has_key"),
        CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,62}$'", name="name_identifier"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)  # collection id, ascii
    title: Mapped[str] = mapped_column(Text)  # 中文名称
    description: Mapped[str | None] = mapped_column(Text)
    owner_dept_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    theme: Mapped[str] = mapped_column(String(32))
    sharing_class: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str | None] = mapped_column(Text)  # 法律依据 (required for not_shared)
    update_cycle: Mapped[str] = mapped_column(String(16), server_default="other")
    kind: Mapped[str] = mapped_column(String(8), server_default="vector")
    geometry_type: Mapped[str | None] = mapped_column(String(32))
    source_crs: Mapped[str | None] = mapped_column(Text)
    source_encoding: Mapped[str | None] = mapped_column(String(32))
    key_field: Mapped[str | None] = mapped_column(Text)
    current_version: Mapped[int | None] = mapped_column(Integer)
    sensitive_fields: Mapped[dict] = mapped_column(JSONB, server_default="{}")  # field -> kind
    field_labels: Mapped[dict] = mapped_column(JSONB, server_default="{}")  # column -> 中文名
    # the owner's MapLibre style (version 8); NULL: the default by geometry (layers.styles)
    style: Mapped[dict | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LayerVersion(Base):
    """One published load of a layer; the data table of each version is kept for rollback."""

    __tablename__ = "layer_version"
    __table_args__ = (UniqueConstraint("layer_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layer.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    table_name: Mapped[str] = mapped_column(Text)  # schema-qualified data table
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    loaded_by: Mapped[str | None] = mapped_column(Text)
    source_name: Mapped[str | None] = mapped_column(Text)
    feature_count: Mapped[int | None] = mapped_column(BigInteger)
    report: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), server_default="published")


class RegistryState(Base):
    """A single counter moved by every committed registry change (triggers, migration 0017);
    API processes rebuild what they keep of the registry when it moves."""

    __tablename__ = "registry_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # the transaction that last moved the epoch: once per transaction (migration 0017)
    changed_xid: Mapped[str | None] = mapped_column(Text, nullable=True)
    # moved by every committed change of a grant or a region boundary (migration 0028)
    access_epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")
    access_changed_xid: Mapped[str | None] = mapped_column(Text, nullable=True)
