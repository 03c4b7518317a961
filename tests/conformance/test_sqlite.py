"""The conformance suite against SQLite, one database file per test."""

import pytest

from dq_stores.registry import open_stores
from dq_stores.testing import StoreConformance


class TestSqliteStores(StoreConformance):
    @pytest.fixture
    def stores(self, tmp_path):
        with open_stores(f"sqlite:///{tmp_path}/dq.db") as s:
            yield s

    @pytest.fixture
    def stores_location(self, tmp_path):
        return f"sqlite:///{tmp_path}/dq.db", {}
