"""The conformance suite against the in-memory backend (``memory://``)."""

import pytest

from dq_stores.registry import open_stores
from dq_stores.testing import StoreConformance


class TestMemoryStores(StoreConformance):
    @pytest.fixture
    def stores(self):
        with open_stores("memory://", results_url="memory://") as s:
            yield s
