"""Region tables: the dated code table (GB/T 2260 + statistical codes) and polygons."""

from __future__ import annotations

from datetime import date

from geoalchemy2 import Geometry
from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jmgeo.models import Base


class Region(Base):
    """One administrative region over one validity period (codes change: 440782 → 440705)."""

    __tablename__ = "region"
    __table_args__ = (UniqueConstraint("code", "valid_from"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))  # city, district, county_city, street, town, ...
    parent_code: Mapped[str | None] = mapped_column(String(12))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)  # NULL: still in force
    source: Mapped[str | None] = mapped_column(Text)  # where the code / boundary came from
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4490, spatial_index=True), nullable=True)


class RegionPart(Base):
    """Region polygons cut into small pieces (ST_Subdivide) so point-in-region is index-fast."""

    __tablename__ = "region_part"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(12), index=True)
    geom = mapped_column(Geometry("POLYGON", srid=4490, spatial_index=True))
