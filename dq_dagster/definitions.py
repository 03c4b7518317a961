"""The demo code location: the ``defs/`` folder of ``dq_dagster.examples.demo``, loaded with
Dagster's component loader. ``workspace.yaml`` (what ``make ui`` serves) points here.

``dq_dagster/examples/demo/defs/billing/defs.yaml`` configures one ``DataQualityComponent`` on the
billing dataset (tenants, rules and schema from the DQ stores); ``defs/sources/raw_billing.py``
generates each tenant's raw delivery. Configuration: ``DQ_STORES_URL``, ``DQ_STORES_RESULTS_URL``,
``DQ_STORES_SCHEMA`` (read through ``EnvVar`` when set), else the embedded SQLite store under
``$DAGSTER_HOME/dq`` or ``.dq/``.
"""

import warnings
from functools import cache
from pathlib import Path
from typing import Any

from dagster import Definitions, StaticPartitionsDefinition
from dagster.components import load_defs

import dq_dagster.examples.demo.defs as demo_defs
from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes
from dq_dagster.examples.sources import raw_billing_asset
from dq_dagster.resources import DQStoresResource

__all__ = ["ARTIFACTS_DIR", "DATASET_TYPE", "ENVIRONMENT", "PROJECT_ROOT", "build_definitions"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "examples" / "artifacts"
"""The bundled example artifacts (``dq-stores import`` loads them; so does ``make demo``)."""
PROJECT_ROOT = Path(__file__).resolve().parent / "examples" / "demo"
DATASET_TYPE = "billing"
ENVIRONMENT = "prod"


def build_definitions(stores: DQStoresResource | None = None) -> Definitions:
    """The demo's definitions, read from the stores now (a fresh load). ``stores``: another
    backend than the environment's (its tenants, rules and resources are used instead).
    """
    if stores is None:
        # ``load_defs`` (deprecated in favour of ``load_from_defs_folder``) needs no dg project
        # file, so the demo also loads from an installed wheel; the repository's dg.toml serves `dg`.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*load_defs.*", category=DeprecationWarning)
            return load_defs(demo_defs, project_root=PROJECT_ROOT)
    # The same attributes as defs/billing/defs.yaml, on the given backend.
    component = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type=DATASET_TYPE, source=SourceAttributes(asset="raw_billing"))],
        environment=ENVIRONMENT,
    )
    state = component.read_state(stores)
    tenants = sorted(state.datasets[DATASET_TYPE].tenants)
    return Definitions.merge(
        component.build_defs_for_state(state, backend=stores),
        Definitions(assets=[raw_billing_asset(StaticPartitionsDefinition(tenants))]),
    )


@cache
def _defs() -> Definitions:
    return build_definitions()


def __getattr__(name: str) -> Any:
    # ``defs`` is built on first access, not at import: importing this module (e.g. for
    # ``ARTIFACTS_DIR``) must not read the stores before the caller has seeded them.
    if name == "defs":
        return _defs()
    raise AttributeError(f"module 'dq_dagster.definitions' has no attribute {name!r}")
