"""Dagster integration of dq_stores: ``DataQualityComponent`` (dg), store resources, the JobRun
IO manager, actions and triggers, the DQ engine.

This package imports dq_stores; dq_stores never imports it. The plain parts (``engine``, the pure
cores of ``actions`` and ``triggers``, ``discovery``) import no Dagster, so they can be used and
tested without it: the names below are re-exported lazily (PEP 562) so that
``import dq_dagster.engine`` stays Dagster-free. ``dg list components`` finds the component through
the ``dagster_dg_cli.registry_modules`` entry point naming this package (``__dir__`` lists it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dq_dagster.component import DataQualityComponent as DataQualityComponent
    from dq_dagster.io_manager import JobRunIOManager as JobRunIOManager
    from dq_dagster.resources import (
        ActionProfileStoreResource as ActionProfileStoreResource,
    )
    from dq_dagster.resources import (
        ContractStoreResource as ContractStoreResource,
    )
    from dq_dagster.resources import (
        DQStoresResource as DQStoresResource,
    )
    from dq_dagster.resources import (
        JobDefinitionStoreResource as JobDefinitionStoreResource,
    )
    from dq_dagster.resources import (
        JobRunStoreResource as JobRunStoreResource,
    )
    from dq_stores.scoped import (
        ScopedActionProfileStore as ScopedActionProfileStore,
    )
    from dq_stores.scoped import (
        ScopedContractStore as ScopedContractStore,
    )
    from dq_stores.scoped import (
        ScopedJobDefinitionStore as ScopedJobDefinitionStore,
    )
    from dq_stores.scoped import (
        ScopedJobRunStore as ScopedJobRunStore,
    )
    from dq_stores.scoped import (
        TenantNotAllowedError as TenantNotAllowedError,
    )
    from dq_stores.scoped import (
        TenantPolicy as TenantPolicy,
    )
    from dq_stores.writer import JobRunWriter as JobRunWriter
    from dq_stores.writer import OutputOrigin as OutputOrigin

_EXPORTS = {
    "DataQualityComponent": "dq_dagster.component",
    "JobRunIOManager": "dq_dagster.io_manager",
    "ActionProfileStoreResource": "dq_dagster.resources",
    "ContractStoreResource": "dq_dagster.resources",
    "DQStoresResource": "dq_dagster.resources",
    "JobDefinitionStoreResource": "dq_dagster.resources",
    "JobRunStoreResource": "dq_dagster.resources",
    "ScopedActionProfileStore": "dq_stores.scoped",
    "ScopedContractStore": "dq_stores.scoped",
    "ScopedJobDefinitionStore": "dq_stores.scoped",
    "ScopedJobRunStore": "dq_stores.scoped",
    "TenantNotAllowedError": "dq_stores.scoped",
    "TenantPolicy": "dq_stores.scoped",
    "JobRunWriter": "dq_stores.writer",
    "OutputOrigin": "dq_stores.writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_dagster' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
