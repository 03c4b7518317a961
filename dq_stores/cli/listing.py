"""``dq-stores ls``: list artifacts or job runs of one tenant and environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from dq_stores.canonical import canonical_json, format_timestamp
from dq_stores.cli.app import (
    Settings,
    _resolve_scopes,
    cli,
    pass_settings,
    url_option,
)
from dq_stores.kinds import ACTION_PROFILES, CONTRACTS, JOB_DEFINITIONS, ArtifactIndex, Kind

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
