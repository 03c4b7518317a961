"""The demo code location: the ``defs/`` folder of ``dq_dagster.examples.demo``, loaded with
Dagster's component loader. ``workspace.yaml`` (what ``make ui`` serves) points here.

``dq_dagster/examples/demo/defs/billing/defs.yaml`` configures one ``DataQualityComponent`` on the
billing dataset (tenants, rules and schema from the DQ stores); ``defs/sources/raw_billing.py``
generates each tenant's raw delivery. Configuration: ``DQ_STORES_URL``, ``DQ_STORES_RESULTS_URL``,
``DQ_STORES_SCHEMA`` (read through ``EnvVar`` when set), else the embedded SQLite store under
``$DAGSTER_HOME/dq`` or ``.dq/``.
"""

from functools import cache
from pathlib import Path
from typing import Any

from dagster import Definitions
from dagster.components import load_defs

import dq_dagster.examples.demo.defs as demo_defs

__all__ = ["ARTIFACTS_DIR", "DATASET_TYPE", "ENVIRONMENT", "PROJECT_ROOT", "build_definitions"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "examples" / "artifacts"
"""The bundled example artifacts (``dq-stores import`` loads them; so does ``make demo``)."""
PROJECT_ROOT = Path(__file__).resolve().parent / "examples" / "demo"
DATASET_TYPE = "billing"
ENVIRONMENT = "prod"


def build_definitions() -> Definitions:
    """The demo's definitions, read from the stores now (a fresh load)."""
    return load_defs(demo_defs, project_root=PROJECT_ROOT)


@cache
def _defs() -> Definitions:
    return build_definitions()


def __getattr__(name: str) -> Any:
    # ``defs`` is built on first access, not at import: importing this module (e.g. for
    # ``ARTIFACTS_DIR``) must not read the stores before the caller has seeded them.
    if name == "defs":
        return _defs()
    raise AttributeError(f"module 'dq_dagster.definitions' has no attribute {name!r}")
