"""The demo as a dg project: ``dg check defs`` / ``dg list defs`` in this folder load the
``defs/`` folder through this module (``dq_dagster.definitions`` is what ``workspace.yaml`` loads).
"""

from pathlib import Path

from dagster import Definitions, definitions, load_from_defs_folder


@definitions
def defs() -> Definitions:
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
