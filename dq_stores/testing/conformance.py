"""The backend conformance suite: one class of tests every ``dq_stores`` backend must pass.

Like Dagster's ``TestRunStorage``: ``StoreConformance`` holds the tests (written once, in the
``_*_suite`` modules, against the Store API of ``dq_stores.base``) and a ``stores`` fixture that a
backend's test module overrides. A backend is wired in with a three-line subclass::

    from dq_stores.stores import open_stores
    from dq_stores.testing import StoreConformance

    class TestSqliteStores(StoreConformance):
        @pytest.fixture
        def stores(self, tmp_path):
            with open_stores(f"sqlite:///{tmp_path}/dq.db") as s:
                yield s

The stores must have a results location (the backend's default, or ``results_url=``): the
claim-check tests offload to it. A subclass may also override ``stores_location`` (the URL and options another process can pass
to ``open_stores`` to reach the same data) to run the cross-process concurrency test. The suite
skips only what a store declares with its ``supports_*`` flags. Every test uses a fresh tenant id,
so a subclass may share one database (or schema) across tests. This module must not import any
backend: the suite knows only the public Store API.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from dq_stores.stores import Stores
from dq_stores.testing._artifacts_suite import VersionedArtifactTests
from dq_stores.testing._cases import VERSIONED_KINDS, VersionedCase, versioned_case
from dq_stores.testing._concurrency_suite import ConcurrencyTests
from dq_stores.testing._results_suite import ResultTests
from dq_stores.testing._runs_suite import JobRunTests
from dq_stores.testing._scope_suite import ScopeTests
from dq_stores.testing.builders import unique_id

__all__ = ["StoreConformance", "StoresLocation"]

StoresLocation = tuple[str, dict[str, Any]]
"""``(url, options)`` for ``open_stores(url, **options)`` in another process."""


class StoreConformance(VersionedArtifactTests, JobRunTests, ResultTests, ScopeTests, ConcurrencyTests):
    """Every rule of the Store API, for one backend. Subclass it and override ``stores``."""

    # Not collected itself; every subclass is (unless it sets ``__test__`` itself).
    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    @pytest.fixture
    def stores(self) -> Stores:
        """The four stores of the backend under test, empty or shared (tenants are unique), with a
        results location (the claim-check tests offload results to it).
        """
        pytest.fail(f"{type(self).__name__} must override the `stores` fixture", pytrace=False)

    @pytest.fixture
    def stores_location(self) -> StoresLocation | None:
        """Where another process can open the same stores; ``None`` skips cross-process tests."""
        return None

    @pytest.fixture
    def tenant(self) -> str:
        """A tenant id no other test uses."""
        return unique_id("t")

    @pytest.fixture(params=VERSIONED_KINDS)
    def versioned(self, request: pytest.FixtureRequest, stores: Stores) -> VersionedCase:
        """Each versioned store kind in turn (contracts, job definitions, action profiles)."""
        kind: str = request.param
        return versioned_case(stores, kind)
