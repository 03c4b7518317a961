"""The claim check: result payloads (file, memory, Azure Blob) and the result store of job runs.

``payloads`` is the interface and key layout, ``files`` / ``memory`` two payload stores (the Blob
one lives with the Blob backend, ``dq_stores.blob.payloads``), ``store`` the ``ResultStore`` a
``JobRunStore`` delegates ``put_result`` ... ``gc_payloads`` to.
"""

from dq_stores.results.payloads import DEFAULT_OFFLOAD_THRESHOLD as DEFAULT_OFFLOAD_THRESHOLD
from dq_stores.results.payloads import PayloadInfo as PayloadInfo
from dq_stores.results.payloads import PayloadListing as PayloadListing
from dq_stores.results.payloads import PayloadStore as PayloadStore
from dq_stores.results.store import PurgedRun as PurgedRun
from dq_stores.results.store import ResultStore as ResultStore
