"""``dq-stores docs build``: the static data-docs site (``dq_stores.docs``) from the store."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dq_stores.cli.app import CliError, Settings, _known_tenants, cli, pass_settings, url_option
from dq_stores.scope import validate_id


def parse_since(text: str) -> datetime:
    """An ISO 8601 time (naive: UTC) or a duration back from now (``30d``, ``12h``, ``2w``)."""
    from dq_stores.transfer import parse_duration

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError as exc:
            raise CliError(f"--since {text!r} is neither an ISO time nor a duration: {exc}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@cli.group("docs", short_help="The static data-docs site.")
def docs_group() -> None:
    """The static data-docs site: HTML pages of every tenant, dataset and run in the store."""


@docs_group.command("build", short_help="Build or refresh the data-docs site in OUT.")
@click.argument("out", type=click.Path(file_okay=False, writable=True))
@click.option("--tenant", default=None, metavar="TENANT", help="Only this tenant (default: every tenant).")
@click.option("--env", "environment", default=None, metavar="ENV", help="Only this environment.")
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Only runs at or after TIME: ISO 8601 (2026-01-31, 2026-01-31T12:00Z) or a duration back from now (30d, 12h).",
)
@url_option
@pass_settings
def build_cmd(
    settings: Settings,
    out: str,
    tenant: str | None,
    environment: str | None,
    since: str | None,
    url: str | None,
) -> None:
    """Build the site in OUT, or refresh it: only pages whose runs changed are rewritten
    (OUT/_manifest.json records what each page was built from).

    Self-contained HTML: inline CSS and SVG charts, nothing fetched at view time; open
    OUT/index.html, or serve OUT from any static host (e.g. Azure Blob static websites).
    """
    from dq_stores.docs import build_site

    if tenant is not None:
        validate_id(tenant, "tenant")
    if environment is not None:
        validate_id(environment, "environment")
    cutoff = parse_since(since) if since is not None else None
    with settings.open(settings.config(url), create=False) as stores:
        if (tenant or environment) and not stores.list_scopes(tenant, environment):
            # A typo must not silently build nothing (as for export and copy).
            wanted = " / ".join(x for x in (tenant, environment) if x)
            raise CliError(
                f"{wanted} holds nothing in {stores.describe()}; tenants there: {_known_tenants(stores)}"
            )
        settings.note(f"building data docs from {stores.describe()} into {out}")
        result = build_site(stores, out, tenant=tenant, environment=environment, since=cutoff)
    settings.say(result.describe())
