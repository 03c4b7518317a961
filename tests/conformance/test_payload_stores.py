"""The payload-store conformance suite (``dq_stores.testing.payloads``) against the file, memory and
Azure Blob (Azurite) payload stores."""

import pytest

from dq_stores.results.files import FilePayloadStore
from dq_stores.results.memory import MemoryPayloadStore
from dq_stores.stores import open_payload_store
from dq_stores.testing.payloads import PayloadStoreConformance


class TestFilePayloads(PayloadStoreConformance):
    @pytest.fixture
    def payload_store(self, tmp_path):
        return FilePayloadStore(tmp_path / "results")


class TestMemoryPayloads(PayloadStoreConformance):
    @pytest.fixture
    def payload_store(self):
        return MemoryPayloadStore()


@pytest.mark.azurite
class TestBlobPayloads(PayloadStoreConformance):
    @pytest.fixture(scope="class")
    def class_payloads(self, azurite, class_blob_container):
        store = open_payload_store(
            class_blob_container.url("results"), connection_string=azurite.connection_string
        )
        yield store
        store.close()

    @pytest.fixture
    def payload_store(self, class_payloads):
        return class_payloads
