"""The ``dq-stores`` command: schema upgrades, import, export, listing, copying and retention.

Every command opens the stores at ``--url`` (default: ``$DQ_STORES_URL``, then the embedded SQLite
store ``sqlite:///.dq/dq.db``). The work itself lives in ``dq_stores.transfer`` and the Store API;
this module parses options, prints, and turns every error into one line on stderr
(``dq-stores: error: ...``, non-zero exit, no traceback unless ``--debug``). Every URL or message it
prints goes through ``dq_stores.secrets.redact``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from dq_stores.canonical import canonical_json, format_timestamp
from dq_stores.config import StoresConfig, is_postgres_url
from dq_stores.errors import BackendUnavailableError, StoreError, StoreNotFoundError
from dq_stores.kinds import ACTION_PROFILES, CONTRACTS, JOB_DEFINITIONS, ArtifactIndex, Kind
from dq_stores.registry import DEFAULT_URL, Stores, open_stores
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.transfer import Problem

__all__ = ["cli", "main"]

X = TypeVar("X")
F = TypeVar("F", bound=Callable[..., Any])

_SQL_SCHEMES = {"sqlite", "memory", "postgresql", "postgres"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dq-stores")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, with any secret redacted."""
    if isinstance(exc, StoreError):
        return _one_line(str(exc) or type(exc).__name__)
    if type(exc).__module__.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None)
        first = (str(orig) if orig is not None else str(exc)).strip().splitlines()
        return _one_line(f"database error: {first[0] if first else type(exc).__name__}")
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return _one_line(f"{exc.strerror or exc}{where}")
    return _one_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")


class CliError(click.ClickException):
    """An error shown as one line: ``dq-stores: error: <message>``."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))

    def show(self, file: Any = None) -> None:
        click.echo(f"dq-stores: error: {self.format_message()}", err=True)


@dataclass
class Settings:
    """Global options, shared with every command through the click context."""

    url: str | None
    results_url: str | None
    schema: str | None
    quiet: bool
    debug: bool
    timeout: int = 10

    def config(self, url: str | None = None) -> StoresConfig:
        """The global store: unset options resolved like everywhere else (``dq_stores.config``:
        DQ_STORES_URL / DQ_STORES_SCHEMA / DQ_STORES_RESULTS_URL, default SQLite).
        """
        return StoresConfig.resolve(url or self.url, schema=self.schema, results_url=self.results_url)

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message)

    def note(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()

    @contextmanager
    def progress(self, items: Iterable[X], label: str, length: int | None = None) -> Iterator[Iterable[X]]:
        """``items`` behind a progress bar on stderr when it is a terminal (and not ``--quiet``)."""
        if not self.show_progress():
            yield items
            return
        with click.progressbar(
            items, length=length, label=label, file=sys.stderr, show_pos=True, show_eta=length is not None
        ) as bar:
            yield bar

    def open(self, config: StoresConfig, *, create: bool = True) -> Stores:
        """Open ``config``'s stores with this command line's time budget: an unreachable backend
        fails after about ``--timeout`` seconds, not after the SDK's minutes of retries.
        """
        options: dict[str, Any] = {}
        scheme = _scheme(config.url)
        if scheme == "azure-blob":
            options["retry_budget"] = self.timeout
        elif is_postgres_url(config.url):
            options["connect_args"] = {"connect_timeout": max(1, self.timeout)}
        if config.results_url is not None and _scheme(config.results_url) == "azure-blob":
            options["results_options"] = {"retry_budget": self.timeout}
        return open_stores(
            config.url,
            schema=config.schema,
            results_url=config.results_url,
            create=create,
            use_env=False,
            **options,
        )


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def _is_postgres(url: str) -> bool:
    return is_postgres_url(url)


def _planned_results_url(config: StoresConfig) -> str | None:
    """Where a store that does not exist yet would put large results once created."""
    if config.results_url is not None:
        return config.results_url
    scheme = _scheme(config.url)
    if scheme == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(config.url).database
        if database not in (None, "", ":memory:"):
            path = Path(str(database)).expanduser().resolve()
            return path.with_name(f"{path.stem}.results").as_uri()
    if scheme == "file":
        from dq_stores.filesystem import root_from_url

        return (Path(root_from_url(config.url)).resolve() / ".results").as_uri()
    return None


class _Cli(click.Group):
    """Turns every error into one line on stderr and a non-zero exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click reports these itself (a closed pipe, e.g. `| head`, exits quietly)
        except Exception as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings is not None and settings.debug:
                raise
            raise CliError(describe_error(exc)) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name or "dq-stores", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if not standalone_mode:
                raise
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _exit_with(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            if isinstance(exc, CliError):
                exc.show()
            else:
                click.echo(f"dq-stores: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            if not standalone_mode:
                raise
            _exit_with("interrupted", 130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _exit_with(message: str, code: int) -> None:
    click.echo(f"dq-stores: error: {_one_line(message)}", err=True)
    sys.exit(code)


pass_settings = click.make_pass_decorator(Settings)


def url_option(func: F) -> F:
    return click.option(
        "--url",
        "url",
        metavar="URL",
        default=None,
        help="Store URL for this command (overrides the global --url).",
    )(func)


def scope_options(func: F) -> F:
    func = click.option(
        "--all-scopes",
        is_flag=True,
        help="Every tenant and environment of the source; only for backends that can list them.",
    )(func)
    func = click.option(
        "--env",
        "environments",
        metavar="ENV",
        multiple=True,
        help="Environment (repeatable). Required unless the backend can list scopes.",
    )(func)
    return click.option("--tenant", "tenants", metavar="TENANT", multiple=True, help="Tenant (repeatable).")(
        func
    )


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", prog_name="dq-stores", message="%(prog)s %(version)s")
@click.option(
    "--url",
    envvar="DQ_STORES_URL",
    metavar="URL",
    default=None,
    help=f"Store URL (env DQ_STORES_URL; default $DAGSTER_HOME/dq/dq.db, else {DEFAULT_URL}): sqlite:///PATH, "
    "postgresql+psycopg://USER@HOST/DB[?schema=S], file:///PATH, azure-blob://..., memory://.",
)
@click.option(
    "--results-url",
    envvar="DQ_STORES_RESULTS_URL",
    metavar="URL",
    default=None,
    help="Where large job-run results live (file:///PATH or azure-blob://...); env DQ_STORES_RESULTS_URL.",
)
@click.option(
    "--schema",
    envvar="DQ_STORES_SCHEMA",
    metavar="NAME",
    default=None,
    help="PostgreSQL schema of the store (env DQ_STORES_SCHEMA; ignored for other backends when it "
    "comes from the environment).",
)
@click.option(
    "--timeout",
    envvar="DQ_STORES_TIMEOUT",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="SECONDS",
    help="Give up on an unreachable database or Azure account after about this long (env "
    "DQ_STORES_TIMEOUT; 0: no retries).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only: no progress, no summaries.")
@click.option("--debug", is_flag=True, help="Show the full traceback of an unexpected error.")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    results_url: str | None,
    schema: str | None,
    timeout: int,
    quiet: bool,
    debug: bool,
) -> None:
    """Manage dq-stores: data contracts, job definitions, action profiles and job runs.

    The store comes from --url / --schema / --results-url, else from DQ_STORES_URL /
    DQ_STORES_SCHEMA / DQ_STORES_RESULTS_URL exactly as the Dagster resource reads them, else the
    embedded default (SQLite at $DAGSTER_HOME/dq/dq.db, or .dq/dq.db). Every command names the
    store it used. Errors are printed as one line on stderr with a non-zero exit code; passwords,
    keys and tokens in URLs are never printed.
    """
    if schema is not None and ctx.get_parameter_source("schema") is ParameterSource.ENVIRONMENT:
        schema = None  # resolved with the URL (DQ_STORES_SCHEMA applies to Postgres URLs only)
    ctx.obj = Settings(
        url=url, results_url=results_url, schema=schema, quiet=quiet, debug=debug, timeout=timeout
    )


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="dq-stores")


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


# -- import -------------------------------------------------------------------------------------


@cli.command("import", short_help="Validate and import JSON / YAML artifact files.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@url_option
@click.option(
    "--dry-run", is_flag=True, help="Check everything and show what would change; write (and create) nothing."
)
@pass_settings
def import_(settings: Settings, paths: tuple[Path, ...], url: str | None, dry_run: bool) -> None:
    """Import artifacts from JSON / YAML files or folders (searched recursively), and the result
    payloads of job runs exported by `dq-stores export`.

    A file holds one document or a list of them (YAML: also several --- documents). The kind is
    told by the id field: contract_id, job_definition_id, action_profile_id or job_id. Everything
    that can be checked is checked before anything is written (every document; every exported
    result payload's presence, size and sha256; that the store has a results location for results
    that need one): if anything is wrong, each problem is printed (file and field) and nothing is
    written. A run is written result first, record second. --dry-run runs the same checks and
    reports exactly what the import would do. Importing the same files again writes nothing.
    """
    from dq_stores.transfer import load_artifacts, plan_import, reference_note

    artifacts, problems = load_artifacts(paths)
    if not problems and not artifacts:
        raise CliError("no artifact documents (*.json, *.yaml, *.yml) found")
    if problems:
        _report_problems(problems)
    config = settings.config(url)
    hint = "--results-url (or DQ_STORES_RESULTS_URL)"
    # Planned against the store as it is, and nothing is created until the plan has no problem:
    # a refused import leaves no new database, schema or tables behind.
    with _existing_or_planned(settings, config) as (stores, exists):
        actions, problems = plan_import(stores, artifacts, results_hint=hint)
        if problems:
            _report_problems(problems)
        for act in actions:
            if (note := reference_note(stores, act)) is not None:
                click.echo(f"dq-stores: warning: {_one_line(note)}", err=True)
        counts = _counts(actions)
        if dry_run:
            where = (
                stores.describe()
                if exists
                else f"{config.describe()} (does not exist yet: it would be created)"
            )
            for act in actions:
                if act.action != "unchanged":
                    settings.say(f"would {act.action} {act.artifact.describe()} ({act.artifact.where})")
            settings.say(
                f"dry run into {where}: {counts['create']} to create, {counts['update']} to update, "
                f"{counts['unchanged']} unchanged; nothing written"
            )
            return
        if exists:
            _apply(settings, stores, actions)
            where = stores.describe()
    if not exists:
        with settings.open(config) as created:
            actions, problems = plan_import(created, artifacts, results_hint=hint)
            if problems:  # the store appeared meanwhile, with content that conflicts
                _report_problems(problems)
            _apply(settings, created, actions)
            counts = _counts(actions)
            where = created.describe()
    settings.say(
        f"imported {len(actions)} document(s) into {where}: {counts['create']} created, "
        f"{counts['update']} updated, {counts['unchanged']} unchanged"
    )


def _counts(actions: Sequence[Any]) -> dict[str, int]:
    return {k: sum(1 for a in actions if a.action == k) for k in ("create", "update", "unchanged")}


def _apply(settings: Settings, stores: Stores, actions: Sequence[Any]) -> None:
    from dq_stores.transfer import apply_import

    with settings.progress(apply_import(stores, actions), "importing", length=len(actions)) as done:
        for _ in done:
            pass


@contextmanager
def _existing_or_planned(settings: Settings, config: StoresConfig) -> Iterator[tuple[Stores, bool]]:
    """The store as it is (opened without creating anything), and whether it exists; for a store
    that does not exist yet, an empty one with the results location it would get once created,
    so that a plan against it checks what the real import will meet.
    """
    try:
        stores = settings.open(config, create=False)
    except StoreNotFoundError:
        with open_stores("memory://", results_url=_planned_results_url(config), use_env=False) as empty:
            yield empty, False
        return
    with stores:
        yield stores, True


def _report_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        click.echo(f"dq-stores: invalid: {_one_line(str(problem))}", err=True)
    files = len({p.file for p in problems})
    raise CliError(f"{len(problems)} problem(s) in {files} file(s); nothing was written")


# -- scopes for export / copy ---------------------------------------------------------------------


def _resolve_scopes(
    stores: Stores, tenants: Sequence[str], environments: Sequence[str], all_scopes: bool
) -> list[Scope]:
    """The scopes a command works on; a tenant or environment holding nothing is an error that
    names what the store does hold (so a typo never silently copies or exports nothing).
    """
    if not tenants and not all_scopes:
        raise click.UsageError("give --tenant (and optionally --env), or --all-scopes")
    for value in (*tenants, *environments):
        validate_id(value, "tenant" if value in tenants else "environment")
    wanted_tenants = list(dict.fromkeys(tenants))
    if all_scopes and not wanted_tenants:
        listed = stores.list_scopes()
    else:
        listed = [scope for tenant in wanted_tenants for scope in stores.list_scopes(tenant=tenant)]
    held_tenants = {s.tenant for s in listed}
    missing = [t for t in wanted_tenants if t not in held_tenants]
    if missing:
        known = _known_tenants(stores)
        raise CliError(
            f"no tenant {', '.join(repr(t) for t in missing)} in {stores.describe()}; tenants there: {known}"
        )
    scopes = [s for s in listed if not environments or s.environment in environments]
    for environment in dict.fromkeys(environments):
        if not any(s.environment == environment for s in scopes):
            held = sorted({s.environment for s in listed}) or ["none"]
            raise CliError(
                f"environment {environment!r} holds nothing for {', '.join(sorted(held_tenants)) or 'any tenant'} "
                f"in {stores.describe()}; environments there: {', '.join(held)}"
            )
    if not scopes:
        raise CliError(f"{stores.describe()} holds nothing to work on")
    return scopes


def _known_tenants(stores: Stores) -> str:
    try:
        tenants = sorted({s.tenant for s in stores.list_scopes()})
    except StoreError:  # e.g. row-level security: one tenant at a time
        return "(cannot be listed here)"
    shown = ", ".join(tenants[:20]) + (f", ... ({len(tenants)} in all)" if len(tenants) > 20 else "")
    return shown or "none (the store is empty)"


# -- export -------------------------------------------------------------------------------------


@cli.command("export", short_help="Export scopes as canonical JSON files, with result payloads.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@scope_options
@url_option
@click.option("--overwrite", is_flag=True, help="Replace the files of the exported scopes if present.")
@click.option(
    "--allow-result-references",
    is_flag=True,
    help="A run whose result cannot be read here keeps its result reference only (no payload), with "
    "a warning, instead of failing.",
)
@pass_settings
def export(
    settings: Settings,
    directory: Path,
    tenants: tuple[str, ...],
    environments: tuple[str, ...],
    all_scopes: bool,
    url: str | None,
    overwrite: bool,
    allow_result_references: bool,
) -> None:
    """Export scopes as canonical JSON files: DIR/TENANT/ENV/KIND/ID/VERSION.json and
    DIR/TENANT/ENV/job_runs/JOB_ID.json, each run's result payload beside its record
    (JOB_ID.result.EXT, streamed and hash-checked).

    Every version of every artifact (its current revision), every job run and every result
    payload: an export holds all of them or fails. Before anything is written, every run's result
    is checked to be readable; a result kept at a location the store was not opened with is an
    error (give --results-url). Two exports of equal stores are byte-identical, and the folder can
    be imported again with `dq-stores import DIR` (results included). Reads only: nothing is
    created in the store.
    """
    from dq_stores.transfer import (
        check_export_target,
        export_scope,
        remove_stale_exports,
        unexportable_results,
    )

    with settings.open(settings.config(url), create=False) as stores:
        scopes = _resolve_scopes(stores, tenants, environments, all_scopes)
        check_export_target(directory, scopes, overwrite=overwrite)
        hint = "--results-url, or --allow-result-references"
        problems = [p for scope in scopes for p in unexportable_results(stores, scope, results_hint=hint)]
        if allow_result_references:
            for problem in problems:
                click.echo(
                    f"dq-stores: warning: exported with its reference only: {_one_line(problem)}", err=True
                )
            problems = []
        if problems:
            for problem in problems[:50]:
                click.echo(f"dq-stores: cannot export: {_one_line(problem)}", err=True)
            raise CliError(f"{len(problems)} result payload(s) cannot be read; nothing was exported")
        total = removed = 0
        for scope in scopes:
            written: set[Path] = set()
            try:
                exported = export_scope(stores, scope, directory, allow_references=allow_result_references)
                with settings.progress(exported, f"exporting {scope}") as files:
                    for path in files:
                        written.add(path)
            except StoreError as exc:
                raise CliError(
                    f"export INCOMPLETE ({total + len(written)} file(s) written to {directory}): {describe_error(exc)}"
                ) from exc
            total += len(written)
            if overwrite:
                removed += len(remove_stale_exports(directory, scope, written))
        where = stores.describe()
    stale = f"; removed {removed} stale file(s)" if removed else ""
    settings.say(f"exported {total} file(s) of {len(scopes)} scope(s) from {where} to {directory}{stale}")


# -- ls -----------------------------------------------------------------------------------------

_LS_KINDS: dict[str, Kind[Any] | None] = {
    "contracts": CONTRACTS,
    "job-definitions": JOB_DEFINITIONS,
    "action-profiles": ACTION_PROFILES,
    "runs": None,
}
_LS_FILTERS: dict[str, set[str]] = {
    "contracts": {"status", "dataset_type"},
    "job-definitions": {"status", "tags", "trigger_type"},
    "action-profiles": {"status", "tags", "action_type"},
    "runs": {"status", "dataset_type", "job_type"},
}


@cli.command("ls", short_help="List artifacts or job runs of a tenant and environment.")
@click.argument("what", type=click.Choice(list(_LS_KINDS)), metavar="|".join(_LS_KINDS))
@click.option("--tenant", required=True, metavar="TENANT")
@click.option("--env", "environment", required=True, metavar="ENV")
@url_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array of canonical documents.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="At most N items; 0: all."
)
@click.option("--status", default=None, help="Only this status.")
@click.option("--tag", "tags", multiple=True, help="Only items with this tag (repeatable: all of them).")
@click.option("--dataset-type", default=None, help="Contracts holding / runs of this dataset type.")
@click.option("--job-type", default=None, help="Runs of this type: validation, cleansing, profiling.")
@click.option("--action-type", default=None, help="Action profiles with an action of this type.")
@click.option("--trigger-type", default=None, help="Job definitions with this trigger type.")
@pass_settings
def ls(
    settings: Settings,
    what: str,
    tenant: str,
    environment: str,
    url: str | None,
    as_json: bool,
    limit: int,
    status: str | None,
    tags: tuple[str, ...],
    dataset_type: str | None,
    job_type: str | None,
    action_type: str | None,
    trigger_type: str | None,
) -> None:
    """List contracts, job definitions, action profiles (every id and version) or job runs
    (newest first) of one tenant and environment.
    """
    given = {
        "status": status,
        "tags": list(tags) or None,
        "dataset_type": dataset_type,
        "job_type": job_type,
        "action_type": action_type,
        "trigger_type": trigger_type,
    }
    filters: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    unsupported = sorted(set(filters) - _LS_FILTERS[what])
    if unsupported:
        names = ", ".join("--" + n.replace("_", "-").replace("tags", "tag") for n in unsupported)
        raise click.UsageError(f"{names} does not apply to {what}")
    kind = _LS_KINDS[what]
    with settings.open(settings.config(url), create=False) as stores:
        settings.note(f"store: {stores.describe()}")
        items: list[Any] = []
        more = False
        cursor: str | None = None
        while True:
            page_size = min(500, limit - len(items)) if limit else 500
            page: Any
            if kind is None:
                page = stores.job_runs.list(tenant, environment, limit=page_size, cursor=cursor, **filters)
            else:
                store = getattr(stores, kind.name)
                page = store.list(tenant, environment, limit=page_size, cursor=cursor, **filters)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
            if limit and len(items) >= limit:
                more = True
                break
        if not items:
            # An empty listing of a scope that holds nothing at all is most likely a typo.
            _resolve_scopes(stores, [tenant], [environment], False)
    if as_json:
        click.echo(b"[" + b",".join(canonical_json(m) for m in items) + b"]")
    else:
        rows = _run_rows(items) if kind is None else _artifact_rows(kind, items)
        if items:
            click.echo(_table(rows))
        else:
            settings.note(f"no {what} in {tenant}/{environment}")
    if more:
        settings.note(f"(more than {limit} {what}; use --limit 0 for all)")


def _artifact_rows(kind: Kind[Any], items: Sequence[Any]) -> list[list[str]]:
    if kind is CONTRACTS:
        header = ["ID", "VERSION", "STATUS", "DATASETS", "NAME"]
    elif kind is JOB_DEFINITIONS:
        header = ["ID", "VERSION", "STATUS", "TRIGGER", "TAGS", "NAME"]
    else:
        header = ["ID", "VERSION", "STATUS", "ACTIONS", "TAGS", "NAME"]
    rows = [header]
    for model in items:
        index = ArtifactIndex.of(model)
        row = [index.artifact_id, index.version, index.status]
        if kind is CONTRACTS:
            row.append(",".join(index.dataset_types) or "-")
        elif kind is JOB_DEFINITIONS:
            row += [index.trigger_type or "-", ",".join(index.tags) or "-"]
        else:
            row += [",".join(index.action_types) or "-", ",".join(index.tags) or "-"]
        rows.append([*row, index.name])
    return rows


def _run_rows(items: Sequence[Any]) -> list[list[str]]:
    rows = [["JOB_ID", "TYPE", "STATUS", "TIME", "DATASET", "PASS_RATE"]]
    for run in items:
        when = format_timestamp(run.sort_time) if run.sort_time else "-"
        rate = run.summary.pass_rate if run.summary is not None else None
        rows.append(
            [
                run.job_id,
                str(run.job_type.value),
                str(run.status.value),
                when,
                run.dataset_type or "-",
                f"{rate:.4f}" if rate is not None else "-",
            ]
        )
    return rows


def _table(rows: Sequence[Sequence[str]]) -> str:
    clean = [[" ".join(cell.split()) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in clean) for i in range(len(clean[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in clean
    )


# -- copy ---------------------------------------------------------------------------------------


@cli.command("copy", short_help="Copy artifacts and job runs (with their results) between two stores.")
@click.option("--from", "source_url", required=True, metavar="URL", help="Source store URL.")
@click.option("--to", "target_url", required=True, metavar="URL", help="Destination store URL.")
@click.option("--from-schema", default=None, metavar="NAME", help="PostgreSQL schema of the source.")
@click.option("--to-schema", default=None, metavar="NAME", help="PostgreSQL schema of the destination.")
@click.option("--from-results-url", default=None, metavar="URL", help="Results location of the source.")
@click.option("--to-results-url", default=None, metavar="URL", help="Results location of the destination.")
@scope_options
@click.option(
    "--allow-result-references",
    is_flag=True,
    help="A run whose result cannot be read here keeps its result reference only (no payload), with "
    "a warning, instead of failing.",
)
@pass_settings
def copy(
    settings: Settings,
    source_url: str,
    target_url: str,
    from_schema: str | None,
    to_schema: str | None,
    from_results_url: str | None,
    to_results_url: str | None,
    tenants: tuple[str, ...],
    environments: tuple[str, ...],
    all_scopes: bool,
    allow_result_references: bool,
) -> None:
    """Copy every artifact version and job run (with its result) between two stores.

    Both sides are given explicitly: DQ_STORES_* variables do not apply (a backend's default
    results location does). History is not replayed: for each (id, version) the source's current
    revision is copied and becomes one new revision at the destination. A run is copied result
    first, record second, into the destination's own results location; a run whose result cannot
    be read (give --from-results-url) or written (give --to-results-url) is not copied at all and
    counts as failed. Items already at the destination with the same content are skipped, so a
    second copy copies nothing; every written item is read back and its hash verified. Any
    failure means exit code 1. A missing or unreachable store stops the copy at once.
    """
    from dq_stores.transfer import CopySummary, copy_scope

    source_config = StoresConfig.resolve(
        source_url, schema=from_schema, results_url=from_results_url, use_env=False
    )
    target_config = StoresConfig.resolve(
        target_url, schema=to_schema, results_url=to_results_url, use_env=False
    )
    if source_config == target_config and not source_url.startswith("memory:"):
        raise click.UsageError("--from and --to are the same store")
    summary = CopySummary()
    with settings.open(source_config, create=False) as source:
        # Scopes first: a mistyped tenant is an error before the destination is even created.
        scopes = _resolve_scopes(source, tenants, environments, all_scopes)
        with settings.open(target_config) as target:
            try:
                for scope in scopes:
                    outcomes = copy_scope(
                        source,
                        target,
                        scope,
                        source_hint="--from-results-url (or --allow-result-references)",
                        target_hint="--to-results-url",
                        allow_references=allow_result_references,
                    )
                    with settings.progress(outcomes, f"copying {scope}") as items:
                        for outcome in items:
                            summary.add(outcome)
            except (StoreNotFoundError, BackendUnavailableError) as exc:
                _print_copy_outcomes(summary)
                raise CliError(
                    f"copy stopped after {summary.copied} copied, {summary.skipped} skipped, {summary.failed} "
                    f"failed: {describe_error(exc)}"
                ) from exc
            where = f"{source.describe()} -> {target.describe()}"
    _print_copy_outcomes(summary)
    settings.say(
        f"copied {summary.copied}, skipped {summary.skipped}, failed {summary.failed} "
        f"({len(scopes)} scope(s), {where})"
    )
    if summary.failed:
        raise CliError(f"{summary.failed} item(s) could not be copied (nothing of them was written)")


def _print_copy_outcomes(summary: Any) -> None:
    for outcome in summary.warnings:
        click.echo(f"dq-stores: warning: {_one_line(str(outcome))}", err=True)
    for outcome in summary.failures:
        click.echo(f"dq-stores: failed: {_one_line(str(outcome))}", err=True)


# -- purge-runs ---------------------------------------------------------------------------------


@cli.command("purge-runs", short_help="Delete job runs older than a duration, with their results.")
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="e.g. 365d, 12h, 90min, 2w, 1d12h (units w, d, h, min, s; 'm' is refused as ambiguous).",
)
@click.option("--tenant", required=True, metavar="TENANT")
@click.option(
    "--env",
    "environments",
    multiple=True,
    metavar="ENV",
    help="Environment (repeatable); default: every environment the tenant has runs in.",
)
@url_option
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@pass_settings
def purge_runs_cmd(
    settings: Settings,
    older_than: str,
    tenant: str,
    environments: tuple[str, ...],
    url: str | None,
    dry_run: bool,
) -> None:
    """Delete job runs whose run time (submitted, else started, else completed) is older than
    DURATION, with their result payloads (the record first, then the payload).

    Prints every run it deletes (or, with --dry-run, would delete). A payload this store did not
    write (another store's sharing the results location, or one written before store identities)
    is left in place, and the line says so.
    """
    from dq_stores.transfer import parse_duration, purge_runs

    cutoff = datetime.now(UTC) - parse_duration(older_than)
    count = 0
    with settings.open(settings.config(url), create=False) as stores:
        validate_id(tenant, "tenant")
        envs = list(dict.fromkeys(environments)) or [
            s.environment for s in stores.job_runs.list_scopes(tenant=tenant)
        ]
        settings.note(
            f"{'dry run: ' if dry_run else ''}deleting job runs of {tenant} ({', '.join(envs) or 'no environment'}) "
            f"older than {format_timestamp(cutoff)} from {stores.describe()}"
        )
        for environment in envs:
            for outcome in purge_runs(stores.job_runs, Scope(tenant, environment), cutoff, dry_run=dry_run):
                count += 1
                settings.say(str(outcome))
    verb = "would delete" if dry_run else "deleted"
    settings.say(f"{verb} {count} job run(s) of {tenant} older than {format_timestamp(cutoff)}")
