"""The ``dq-stores`` command group: global options, settings, how errors print, and the helpers
the commands share (scope resolution, problem reports). The commands live in the sibling modules.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from dq_stores.config import StoresConfig, is_postgres_url
from dq_stores.errors import StoreError
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import DEFAULT_URL, Stores, open_stores
from dq_stores.transfer import Problem

__all__ = ["CliError", "Settings", "cli", "describe_error", "main"]

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
