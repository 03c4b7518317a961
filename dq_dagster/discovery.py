"""Which tenants the stores hold, and which of them have a contract for a dataset type.

``tenants_in(stores, environment)``: every tenant with any artifact or run in the environment
(``Stores.list_scopes``: one indexed query on SQL, a prefix listing on Blob).
``contracts_by_tenant(stores, environment, dataset_types)``: for each dataset type, the latest
contract of each tenant that has one: one ``get_latest_for_dataset`` per tenant and dataset type
(an index lookup each), never a query per rule. This is what the component's state is built from
when the code location loads. No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dq_stores.errors import InvalidArtifactError
from dq_stores.models import DataContract
from dq_stores.registry import Stores
from dq_stores.scope import validate_id

__all__ = ["contracts_by_tenant", "tenants_in"]


def tenants_in(stores: Stores, environment: str) -> list[str]:
    """The tenants holding anything in ``environment``, sorted."""
    validate_id(environment, "environment")
    list_scopes = getattr(stores, "list_scopes", None)
    if callable(list_scopes):
        return sorted({scope.tenant for scope in list_scopes(environment=environment)})
    return _tenants_fallback(stores, environment)


def _tenants_fallback(stores: Stores, environment: str) -> list[str]:
    # Until ``Stores.list_scopes`` (issue 10) is on main: the SQL backends answer from the contract
    # index directly; other backends need an explicit tenant list.
    import sqlalchemy as sa

    db = getattr(stores.contracts, "_db", None)
    if db is None:
        raise InvalidArtifactError(
            f"this store ({stores.url}) cannot list its tenants yet: give the tenants explicitly",
            field="tenants",
        )
    from dq_stores.sql.schema import contract_datasets

    query = (
        sa.select(contract_datasets.c.tenant).where(contract_datasets.c.environment == environment).distinct()
    )
    with db.read() as conn:
        return sorted(str(row[0]) for row in conn.execute(query))


def contracts_by_tenant(
    stores: Stores,
    environment: str,
    dataset_types: Sequence[str],
    tenants: Iterable[str] | None = None,
) -> dict[str, dict[str, DataContract]]:
    """Dataset type -> tenant -> its latest non-retired contract holding that dataset type.

    ``tenants``: the tenants to look at (default: every tenant of the environment). Tenants without
    a contract for a dataset type are left out of that dataset type's map.
    """
    chosen = list(tenants) if tenants is not None else tenants_in(stores, environment)
    found: dict[str, dict[str, DataContract]] = {d: {} for d in dataset_types}
    for tenant in chosen:
        for dataset_type in dataset_types:
            contract = stores.contracts.get_latest_for_dataset(tenant, environment, dataset_type)
            if contract is not None:
                found[dataset_type][tenant] = contract
    return found
