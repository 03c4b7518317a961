"""Alembic environment of dq_stores: runs on the connection handed over by dq_stores.sql.migrate,
or on ``sqlalchemy.url`` when alembic is run from the command line.
"""

from alembic import context
from sqlalchemy import create_engine

from dq_stores.sql.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
