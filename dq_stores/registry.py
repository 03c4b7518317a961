"""The former home of ``open_stores`` and ``Stores``: kept so that existing imports keep working.

Everything lives in ``dq_stores.stores`` now (the opening pipeline and its scheme tables).
"""

from dq_stores.stores import DEFAULT_URL as DEFAULT_URL
from dq_stores.stores import Backend as Backend
from dq_stores.stores import Stores as Stores
from dq_stores.stores import open_payload_store as open_payload_store
from dq_stores.stores import open_stores as open_stores
from dq_stores.stores import redact_url as redact_url
from dq_stores.stores import register_backend as register_backend
from dq_stores.stores import register_results as register_results
