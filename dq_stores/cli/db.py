"""``dq-stores db``: create / upgrade SQL schemas, show the revision, enable row-level security."""

from __future__ import annotations

import click

from dq_stores.cli.app import (
    _SQL_SCHEMES,
    CliError,
    Settings,
    _is_postgres,
    _scheme,
    cli,
    pass_settings,
    url_option,
)
from dq_stores.config import StoresConfig, is_postgres_url
from dq_stores.secrets import redact

# -- db -----------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """SQL schema (SQLite / PostgreSQL) migrations."""


def _sql_url(settings: Settings, url: str | None) -> str:
    resolved = settings.config(url).url
    if _scheme(resolved).split("+")[0] not in _SQL_SCHEMES:
        raise CliError(f"{redact(resolved)} is not a SQL store; db commands apply to SQLite and PostgreSQL")
    return resolved


def _schema_name(settings: Settings, url: str, schema: str | None) -> str | None:
    """The schema: the command's --schema, else the global one / DQ_STORES_SCHEMA, else ?schema=."""
    if schema is None and is_postgres_url(url):
        schema = StoresConfig.resolve(url, schema=settings.schema).schema
    if schema is not None or not _is_postgres(url):
        return schema
    from sqlalchemy.engine import make_url

    from dq_stores.sql.engine import normalise_url

    value = make_url(normalise_url(url)).query.get("schema")
    return value if isinstance(value, str) else None


@db.command("upgrade", short_help="Create or upgrade a SQL schema.")
@url_option
@click.option("--schema", metavar="NAME", default=None, help="PostgreSQL schema (created if missing).")
@pass_settings
def db_upgrade(settings: Settings, url: str | None, schema: str | None) -> None:
    """Create or upgrade the schema of a SQL store to this version's newest revision.

    PostgreSQL stores never upgrade by themselves: run this after installing a new dq-stores.
    """
    import sqlalchemy as sa

    from dq_stores.sql.engine import create_sql_engine
    from dq_stores.sql.migrate import current_revision, upgrade

    resolved = _sql_url(settings, url)
    schema = _schema_name(settings, resolved, schema)
    engine = create_sql_engine(resolved, schema=schema)
    try:
        if schema is not None and engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                found = conn.execute(
                    sa.text("select 1 from pg_namespace where nspname = :name"), {"name": schema}
                ).first()
                if found is None:
                    quoted = engine.dialect.identifier_preparer.quote_schema(schema)
                    conn.execute(sa.text(f"CREATE SCHEMA {quoted}"))
        with engine.connect() as conn:
            before = current_revision(conn)
        after = upgrade(engine)
    finally:
        engine.dispose()
    where = redact(resolved) + (f" (schema {schema})" if schema else "")
    if before == after:
        settings.say(f"{where}: already at revision {after}")
    else:
        settings.say(f"{where}: upgraded from {before or 'an empty database'} to revision {after}")


@db.command("enable-rls", short_help="Turn on Postgres row-level security for a store.")
@url_option
@click.option("--schema", metavar="NAME", default=None, help="PostgreSQL schema.")
@click.option(
    "--app-role", metavar="ROLE", required=True, help="The non-owner role the application connects as."
)
@click.option(
    "--create-role",
    is_flag=True,
    help="Create the role first (LOGIN, no BYPASSRLS); its password comes from DQ_APP_ROLE_PASSWORD.",
)
@pass_settings
def db_enable_rls(
    settings: Settings, url: str | None, schema: str | None, app_role: str, create_role: bool
) -> None:
    """Enable and force row-level security on every store table (run as the tables' owner).

    Afterwards the application connects as APP_ROLE and opens the stores with
    row_level_security=True: each transaction then sees and writes only its own tenant and
    environment, enforced by PostgreSQL itself.
    """
    import os

    from dq_stores.sql.engine import create_sql_engine
    from dq_stores.sql.rls import create_app_role, enable_row_level_security

    resolved = _sql_url(settings, url)
    schema = _schema_name(settings, resolved, schema)
    engine = create_sql_engine(resolved, schema=schema)
    try:
        if engine.dialect.name != "postgresql":
            raise click.UsageError("row-level security needs a PostgreSQL store")
        if create_role:
            create_app_role(engine, app_role, password=os.environ.get("DQ_APP_ROLE_PASSWORD"))
        enable_row_level_security(engine, app_role=app_role)
    finally:
        engine.dispose()
    settings.say(f"{redact(resolved)}: row-level security on; connect the application as {app_role}")


@db.command("current", short_help="Show the schema revision.")
@url_option
@click.option("--schema", metavar="NAME", default=None, help="PostgreSQL schema.")
@click.option("--check", is_flag=True, help="Exit with code 3 unless the schema is at the newest revision.")
@pass_settings
def db_current(settings: Settings, url: str | None, schema: str | None, check: bool) -> None:
    """Show the schema revision of a SQL store and the newest one this version knows."""
    from dq_stores.sql.engine import create_sql_engine
    from dq_stores.sql.migrate import current_revision, head_revision

    resolved = _sql_url(settings, url)
    engine = create_sql_engine(resolved, schema=_schema_name(settings, resolved, schema), create=False)
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "needs `dq-stores db upgrade`"
    schema_name = _schema_name(settings, resolved, schema)
    click.echo(f"store:   {redact(resolved)}" + (f" (schema {schema_name})" if schema_name else ""))
    click.echo(f"current: {current or '<none>'}")
    click.echo(f"head:    {head} ({state})")
    if check and current != head:
        raise click.exceptions.Exit(3)
