"""The Azure Blob Storage backend: the four stores (the design note's ``AzureBlobJobRunStore``
and its siblings) on one shared ``ContainerClient``, and the Blob result-payload store.

Open with ``open_stores("azure-blob://...")`` (URL forms and options: ``dq_stores.blob.client``)
or ``AzureBlobJobRunStore.from_url(...)``. This module holds the opening (``open_blob_backend``,
the ``azure-blob`` entry of the metadata table in ``dq_stores.stores``) and the package's
exports; the rest is split by concern:

* ``client``: URLs, credentials, the container client; ``errors``: Azure errors translated;
* ``layout``: blob names and index metadata (pure);
* ``backend``: blob primitives (conditional writes, listings, parallel downloads);
* ``versioned``: contracts, job definitions, action profiles; ``runs``: job runs and their index;
* ``payloads``: result payloads (``BlobPayloadStore``, ``open_blob_payload_store``).

Concurrency: every write that replaces something is conditional on the etag read before it
(``If-Match``), every create is ``If-None-Match: *``; callers' ``if_match`` etags are the blob
etags of the current blob, so the etag a put returns works as ``if_match`` for the next one.

What each operation costs, in Blob requests (N = current (id, version) pairs of the kind in the
scope, one list request per 5,000 of them; lists download the returned items in parallel)::

    versioned put                new key: 2 (1 with create_only); changed: 3; identical: 1
    get(id, version)             1
    get(id) latest               1 list of that id's versions + 1
    get_latest_for_dataset       ceil(N/5000) lists + 1   (no artifact is downloaded to choose)
    list / iter_all / versions   ceil(N/5000) lists + 1 per returned item (filtered by metadata)
    history                      2;  get_revision: 1 (current) or 2
    delete(id, version)          2 + 1 list + 1 per revision;  delete(id): 1 list + that per version
    run put                      new or an indexed field changes: 4 (HEAD, index entry pending,
                                 run, index entry final), +2 when the run's time changes;
                                 no indexed field changes: 2 (HEAD, run); identical: 1;
                                 with if_match of a revision the store read or wrote: no HEAD
    run get                      1;  run delete: 4
    run list / list_by_tenant    1 list (+1 per 5,000 skipped entries) + 1 per returned run + 1
                                 look-ahead; all environments: +1 list + 1 list per environment
    put_many                     run puts, 8 in parallel

Index metadata over 6 KB (huge tag lists, long asset keys) is not written; such items are
downloaded to be filtered, which is correct but costs one request each.
"""

from __future__ import annotations

from typing import Any

from dq_stores.blob.backend import LIST_PAGE, BlobBackend
from dq_stores.blob.client import BlobConnection, connect_container
from dq_stores.blob.layout import (
    MAX_INDEX_METADATA,
    RESULTS_FOLDER,
    STORE_BLOB,
    BlobLayout,
    descending_id,
    descending_time,
    id_from_descending,
    time_from_descending,
)
from dq_stores.blob.payloads import BlobPayloadStore, open_blob_payload_store
from dq_stores.blob.runs import AzureBlobJobRunStore
from dq_stores.blob.versioned import (
    AzureBlobActionProfileStore,
    AzureBlobContractStore,
    AzureBlobJobDefinitionStore,
)
from dq_stores.secrets import redact
from dq_stores.stores import Backend, Stores

__all__ = [
    "LIST_PAGE",
    "MAX_INDEX_METADATA",
    "RESULTS_FOLDER",
    "STORE_BLOB",
    "AzureBlobActionProfileStore",
    "AzureBlobContractStore",
    "AzureBlobJobDefinitionStore",
    "AzureBlobJobRunStore",
    "BlobBackend",
    "BlobConnection",
    "BlobLayout",
    "BlobPayloadStore",
    "connect_container",
    "descending_id",
    "descending_time",
    "id_from_descending",
    "open_blob_backend",
    "open_blob_payload_store",
    "open_blob_stores",
    "time_from_descending",
]


def open_blob_backend(url: str, *, create: bool = True, **options: Any) -> Backend:
    """The four Blob stores on one shared container client: the metadata backend ``open_stores``
    uses for ``azure-blob://`` URLs (forms and options in ``dq_stores.blob.client``). The default
    results location is ``<prefix>/.results/`` in the same container, on the same client; payloads
    written beside the runs before store identities stay readable. A Blob store creates nothing
    when opened (``create`` is accepted for symmetry); a missing container is reported by the first
    call as ``StoreNotFoundError``.
    """
    del create
    connection = connect_container(url, **options)
    try:
        backend = BlobBackend(connection)
        default = BlobPayloadStore(connection, subfolder=RESULTS_FOLDER)
        return Backend(
            contracts=AzureBlobContractStore(backend),
            job_definitions=AzureBlobJobDefinitionStore(backend),
            action_profiles=AzureBlobActionProfileStore(backend),
            job_runs=AzureBlobJobRunStore(backend),
            url=redact(url),
            close=backend.close,
            list_scopes=lambda tenant, environment: backend.scopes(tenant, environment),
            default_results=lambda: default,
            legacy_results=[BlobPayloadStore(connection)],
        )
    except BaseException:
        connection.close()
        raise


def open_blob_stores(url: str, **options: Any) -> Stores:
    """``open_stores`` for an ``azure-blob://`` URL, ignoring the environment (kept for existing
    callers).
    """
    from dq_stores.stores import open_stores

    return open_stores(url, use_env=False, **options)
