"""``dq-stores import``: check everything, then write (a run's result first)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from dq_stores.cli.app import (
    CliError,
    Settings,
    _one_line,
    _planned_results_url,
    _report_problems,
    cli,
    pass_settings,
    url_option,
)
from dq_stores.config import StoresConfig
from dq_stores.errors import StoreNotFoundError
from dq_stores.stores import Stores, open_stores

# -- import -------------------------------------------------------------------------------------


@cli.command("import", short_help="Validate and import JSON / YAML artifact files.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@url_option
@click.option(
    "--dry-run", is_flag=True, help="Check everything and show what would change; write (and create) nothing."
)
@click.option("--tenant", "odcs_tenant", metavar="TENANT", help="Tenant of ODCS contracts that state none.")
@click.option("--env", "odcs_env", metavar="ENV", help="Environment of ODCS contracts (ODCS has none).")
@pass_settings
def import_(
    settings: Settings,
    paths: tuple[Path, ...],
    url: str | None,
    dry_run: bool,
    odcs_tenant: str | None,
    odcs_env: str | None,
) -> None:
    """Import artifacts from JSON / YAML files or folders (searched recursively), and the result
    payloads of job runs exported by `dq-stores export`.

    A file holds one document or a list of them (YAML: also several --- documents). The kind is
    told by the id field: contract_id, job_definition_id, action_profile_id or job_id. Everything
    that can be checked is checked before anything is written (every document; every exported
    result payload's presence, size and sha256; that the store has a results location for results
    that need one): if anything is wrong, each problem is printed (file and field) and nothing is
    written. A run is written result first, record second. --dry-run runs the same checks and
    reports exactly what the import would do. Importing the same files again writes nothing.

    ODCS v3.0.x / v3.1.0 data contracts (kind: DataContract, apiVersion: v3.*) are imported too,
    checked against the standard's schema and mapped to native contracts (README "ODCS"); they
    need --env, and --tenant when they state no tenant.
    """
    from dq_stores.transfer import load_artifacts, plan_import, reference_note

    artifacts, problems = load_artifacts(paths, odcs_tenant=odcs_tenant, odcs_environment=odcs_env)
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
