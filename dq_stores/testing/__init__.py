"""Testing support shipped with dq_stores: the backend conformance suite and artifact builders.

Third-party backends run ``StoreConformance`` against their stores (see
``dq_stores.testing.conformance``); any test may use the builders and the canonical fixture
documents. Importing this package needs pytest; the rest of dq_stores never imports it.
"""

from dq_stores.testing.builders import (
    BASE_TIME,
    FIXTURE_FILES,
    load_fixture,
    make_action_profile,
    make_contract,
    make_job_definition,
    make_run,
    replace_fields,
    run_times,
    unique_id,
)
from dq_stores.testing.conformance import StoreConformance, StoresLocation

__all__ = [
    "BASE_TIME",
    "FIXTURE_FILES",
    "StoreConformance",
    "StoresLocation",
    "load_fixture",
    "make_action_profile",
    "make_contract",
    "make_job_definition",
    "make_run",
    "replace_fields",
    "run_times",
    "unique_id",
]
