"""The former home of the payload stores: kept so that existing imports keep working.

The claim check lives in ``dq_stores.results`` now: the interface and key layout in
``dq_stores.results.payloads``, the file store in ``dq_stores.results.files``, and opening one from
a URL in ``dq_stores.stores.open_payload_store``.
"""

from dq_stores.results.files import FilePayloadStore as FilePayloadStore
from dq_stores.results.payloads import CHUNK_SIZE as CHUNK_SIZE
from dq_stores.results.payloads import DEFAULT_OFFLOAD_THRESHOLD as DEFAULT_OFFLOAD_THRESHOLD
from dq_stores.results.payloads import PayloadInfo as PayloadInfo
from dq_stores.results.payloads import PayloadListing as PayloadListing
from dq_stores.results.payloads import PayloadStore as PayloadStore
from dq_stores.results.payloads import iter_chunks as iter_chunks
from dq_stores.results.payloads import parse_result_key as parse_result_key
from dq_stores.results.payloads import result_key as result_key
from dq_stores.stores import open_payload_store as open_payload_store
