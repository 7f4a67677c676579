"""Alembic environment: the URL comes from the caller (hub.store.migrate) or KNOOPPUNT_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from hub.settings import Settings
from hub.store.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings().database_url
connectable = config.attributes.get("connection")


def run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif connectable is not None:
    run(connectable)
else:
    engine = create_engine(url)
    with engine.connect() as conn:
        run(conn)
        conn.commit()
    engine.dispose()
