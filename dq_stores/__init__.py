"""Tenant + environment scoped stores for canonical data-quality artifacts.

No Dagster import anywhere in this package: ``dq_dagster`` builds on it, never the reverse.
"""

from dq_stores.base import (
    ActionProfileStore as ActionProfileStore,
    ContractStore as ContractStore,
    Entry as Entry,
    JobDefinitionStore as JobDefinitionStore,
    JobRunStore as JobRunStore,
    Page as Page,
    Revision as Revision,
    Store as Store,
)
from dq_stores.canonical import canonical_json as canonical_json, content_hash as content_hash
from dq_stores.errors import (
    BackendUnavailableError as BackendUnavailableError,
    ConflictError as ConflictError,
    InvalidArtifactError as InvalidArtifactError,
    NotFoundError as NotFoundError,
    PayloadIntegrityError as PayloadIntegrityError,
    SchemaVersionError as SchemaVersionError,
    ScopeViolationError as ScopeViolationError,
    StoreError as StoreError,
)
from dq_stores.registry import DEFAULT_URL as DEFAULT_URL, Stores as Stores, open_stores as open_stores
from dq_stores.scope import Scope as Scope

__version__ = "0.1.0"
