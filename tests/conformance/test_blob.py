"""The conformance suite against Azure Blob Storage (Azurite): one container per test class; the
suite isolates tests by unique tenant ids."""

import pytest

from dq_stores.registry import open_stores
from dq_stores.testing import StoreConformance

pytestmark = pytest.mark.azurite


class TestBlobStores(StoreConformance):
    @pytest.fixture(scope="class")
    def blob_location(self, azurite, class_blob_container):
        return class_blob_container.url("dq"), {"connection_string": azurite.connection_string}

    @pytest.fixture(scope="class")
    def class_stores(self, blob_location):
        url, options = blob_location
        with open_stores(url, **options) as s:
            yield s

    @pytest.fixture
    def stores(self, class_stores):
        return class_stores

    @pytest.fixture
    def stores_location(self, blob_location):
        return blob_location
