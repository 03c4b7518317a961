"""Moved to ``dq_stores.scoped`` (it imports no Dagster); this module keeps old imports working."""

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
    ScopedStores as ScopedStores,
)
from dq_stores.scoped import (
    ScopedVersionedStore as ScopedVersionedStore,
)
from dq_stores.scoped import (
    TenantNotAllowedError as TenantNotAllowedError,
)
from dq_stores.scoped import (
    TenantPolicy as TenantPolicy,
)

__all__ = [
    "ScopedActionProfileStore",
    "ScopedContractStore",
    "ScopedJobDefinitionStore",
    "ScopedJobRunStore",
    "ScopedStores",
    "ScopedVersionedStore",
    "TenantNotAllowedError",
    "TenantPolicy",
]
