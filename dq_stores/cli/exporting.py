"""``dq-stores export``: every artifact, run and result payload of some scopes, as files."""

from __future__ import annotations

from pathlib import Path

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
    url_option,
)
from dq_stores.errors import StoreError

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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["native", "odcs"]),
    default="native",
    show_default=True,
    help="odcs: only the data contracts, as ODCS v3.1.0 YAML (DIR/TENANT/ENV/contracts/ID/VERSION.odcs.yaml).",
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
    fmt: str,
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

    if fmt == "odcs":
        _export_odcs(settings, directory, tenants, environments, all_scopes, url, overwrite)
        return
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


def _export_odcs(
    settings: Settings,
    directory: Path,
    tenants: tuple[str, ...],
    environments: tuple[str, ...],
    all_scopes: bool,
    url: str | None,
    overwrite: bool,
) -> None:
    from dq_stores.transfer import check_export_target
    from dq_stores.transfer.odcs import export_odcs_scope

    with settings.open(settings.config(url), create=False) as stores:
        scopes = _resolve_scopes(stores, tenants, environments, all_scopes)
        check_export_target(directory, scopes, overwrite=overwrite)
        total = 0
        for scope in scopes:
            with settings.progress(
                export_odcs_scope(stores, scope, directory), f"exporting {scope}"
            ) as files:
                total += sum(1 for _ in files)
        where = stores.describe()
    settings.say(f"exported {total} ODCS contract(s) of {len(scopes)} scope(s) from {where} to {directory}")
