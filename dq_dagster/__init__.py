"""Dagster integration of dq_stores: store resources, the JobRun IO manager, the DQ engine.

This package imports dq_stores; dq_stores never imports it. The plain parts (``writer``,
``scoped``, ``engine``) import no Dagster, so they can be used and tested without it: the names
below are re-exported lazily (PEP 562) so that ``import dq_dagster.engine`` stays Dagster-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from dq_dagster.scoped import (
        ScopedActionProfileStore as ScopedActionProfileStore,
    )
    from dq_dagster.scoped import (
        ScopedContractStore as ScopedContractStore,
    )
    from dq_dagster.scoped import (
        ScopedJobDefinitionStore as ScopedJobDefinitionStore,
    )
    from dq_dagster.scoped import (
        ScopedJobRunStore as ScopedJobRunStore,
    )
    from dq_dagster.scoped import (
        TenantNotAllowedError as TenantNotAllowedError,
    )
    from dq_dagster.scoped import (
        TenantPolicy as TenantPolicy,
    )
    from dq_dagster.writer import JobRunWriter as JobRunWriter
    from dq_dagster.writer import OutputOrigin as OutputOrigin

_EXPORTS = {
    "JobRunIOManager": "dq_dagster.io_manager",
    "ActionProfileStoreResource": "dq_dagster.resources",
    "ContractStoreResource": "dq_dagster.resources",
    "DQStoresResource": "dq_dagster.resources",
    "JobDefinitionStoreResource": "dq_dagster.resources",
    "JobRunStoreResource": "dq_dagster.resources",
    "ScopedActionProfileStore": "dq_dagster.scoped",
    "ScopedContractStore": "dq_dagster.scoped",
    "ScopedJobDefinitionStore": "dq_dagster.scoped",
    "ScopedJobRunStore": "dq_dagster.scoped",
    "TenantNotAllowedError": "dq_dagster.scoped",
    "TenantPolicy": "dq_dagster.scoped",
    "JobRunWriter": "dq_dagster.writer",
    "OutputOrigin": "dq_dagster.writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_dagster' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
