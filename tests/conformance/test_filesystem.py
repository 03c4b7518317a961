"""The conformance suite against the filesystem backend, one folder per test."""

import pytest

from dq_stores.filesystem import open_filesystem_stores
from dq_stores.testing import StoreConformance


class TestFilesystemStores(StoreConformance):
    @pytest.fixture
    def stores(self, tmp_path):
        with open_filesystem_stores(f"file://{tmp_path}") as s:
            yield s

    @pytest.fixture
    def stores_location(self, tmp_path):
        return f"file://{tmp_path}", {}
