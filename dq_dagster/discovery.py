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

from dq_stores.models import DataContract
from dq_stores.scope import validate_id
from dq_stores.stores import Stores

__all__ = ["contracts_by_tenant", "tenants_in"]


def tenants_in(stores: Stores, environment: str) -> list[str]:
    """The tenants holding anything in ``environment``, sorted (``Stores.list_scopes``)."""
    validate_id(environment, "environment")
    return sorted({scope.tenant for scope in stores.list_scopes(environment=environment)})


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
