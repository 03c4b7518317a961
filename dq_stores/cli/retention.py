"""``dq-stores purge-runs``: delete old job runs with their results; explicit units only."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dq_stores.canonical import format_timestamp
from dq_stores.cli.app import (
    Settings,
    cli,
    pass_settings,
    url_option,
)
from dq_stores.scope import Scope, validate_id

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
