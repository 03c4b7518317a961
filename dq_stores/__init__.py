"""Tenant + environment scoped stores for canonical data-quality artifacts.

No Dagster import anywhere in this package: ``dq_dagster`` builds on it, never the reverse.
"""

from dq_stores.base import (
    ActionProfileStore as ActionProfileStore,
)
from dq_stores.base import (
    ContractStore as ContractStore,
)
from dq_stores.base import (
    Entry as Entry,
)
from dq_stores.base import (
    JobDefinitionStore as JobDefinitionStore,
)
from dq_stores.base import (
    JobRunStore as JobRunStore,
)
from dq_stores.base import (
    Page as Page,
)
from dq_stores.base import (
    Revision as Revision,
)
from dq_stores.base import (
    Store as Store,
)
from dq_stores.canonical import canonical_json as canonical_json
from dq_stores.canonical import content_hash as content_hash
from dq_stores.errors import (
    BackendUnavailableError as BackendUnavailableError,
)
from dq_stores.errors import (
    ConflictError as ConflictError,
)
from dq_stores.errors import (
    InvalidArtifactError as InvalidArtifactError,
)
from dq_stores.errors import (
    NotFoundError as NotFoundError,
)
from dq_stores.errors import (
    PayloadIntegrityError as PayloadIntegrityError,
)
from dq_stores.errors import (
    SchemaVersionError as SchemaVersionError,
)
from dq_stores.errors import (
    ScopeViolationError as ScopeViolationError,
)
from dq_stores.errors import (
    StoreError as StoreError,
)
from dq_stores.scope import Scope as Scope
from dq_stores.stores import DEFAULT_URL as DEFAULT_URL
from dq_stores.stores import Stores as Stores
from dq_stores.stores import open_stores as open_stores

__version__ = "0.1.0"
