"""Alembic environment: the URL comes from jmgeo settings, models from the packages."""

from alembic import context
from sqlalchemy import create_engine, pool

import layers.models  # noqa: F401  (registers tables on the metadata)
import spatial.models  # noqa: F401
from jmgeo.models import Base
from jmgeo.settings import owner_database_url, sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):
    # per-layer data tables live in their own schema and are not migration-managed
    return not (type_ == "table" and getattr(obj, "schema", None) == "layer_data")


def run_migrations_online() -> None:
    # migrations run as the schema's owner, never as the app's role (migration 0021)
    url = config.attributes.get("url") or sqlalchemy_url(owner_database_url())
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
