"""The conformance suite against PostgreSQL.

One schema (migrated once) per test class, not per test: creating and migrating a schema for each
of the ~230 tests more than doubled the run time (13 s of 25 s was setup). The suite isolates
tests by unique tenant ids, so sharing the schema is sound.
"""

import pytest

from dq_stores.registry import open_stores
from dq_stores.testing import StoreConformance

pytestmark = pytest.mark.postgres


class TestPostgresStores(StoreConformance):
    @pytest.fixture(scope="class")
    def pg_location(self, pg_url, make_pg_schema, tmp_path_factory):
        results = tmp_path_factory.mktemp("pg-results").as_uri()
        return pg_url, {"schema": make_pg_schema(), "results_url": results}

    @pytest.fixture(scope="class")
    def class_stores(self, pg_location):
        url, options = pg_location
        with open_stores(url, **options) as s:
            yield s

    @pytest.fixture
    def stores(self, class_stores):
        return class_stores

    @pytest.fixture
    def stores_location(self, pg_location):
        return pg_location
