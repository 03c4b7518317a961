"""``dq-stores copy``: copy scopes between two stores, each run whole or not at all."""

from __future__ import annotations

from typing import Any

import click

from dq_stores.cli.app import (
    CliError,
    Settings,
    _one_line,
    _resolve_scopes,
    cli,
    describe_error,
    pass_settings,
    scope_options,
)
from dq_stores.config import StoresConfig
from dq_stores.errors import BackendUnavailableError, StoreNotFoundError

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
