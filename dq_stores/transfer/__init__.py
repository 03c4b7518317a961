"""Import, export, copy and retention of store contents, as plain functions over ``Stores``.

This is the logic behind the ``dq-stores`` command (``dq_stores.cli``) and is usable without it:

* ``files``: ``load_artifacts`` reads JSON / YAML files (a folder is searched recursively), detects
  each document's kind from its id field and validates every document, collecting *every* problem;
* ``importing``: ``plan_import`` compares the valid ones with a store and checks everything that can
  be checked before anything is written; ``apply_import`` writes them (a run's result first);
* ``exporting``: ``export_scope`` writes one scope as canonical JSON files with each run's result
  payload beside it, so equal stores export byte-identically and an export imports whole;
* ``copying``: ``copy_scope`` copies every artifact and run (with its result) between any two
  backends, skipping what is already there with the same content, verifying every write;
* ``retention``: ``purge_runs`` deletes job runs older than a cutoff (record first, then payload);
* ``odcs``: ODCS v3 documents in (``from_odcs``, also through ``load_artifacts``) and out
  (``to_odcs``, ``export_odcs_scope``).

Nothing here prints, parses command-line options or knows about click; progress is reported by
yielding one outcome per item, so a caller can drive a progress bar. Nothing here reaches behind
the public Store API (no backend primitives).
"""

from dq_stores.scope import Scope
from dq_stores.stores import Stores
from dq_stores.transfer.common import VERSIONED_KINDS as VERSIONED_KINDS
from dq_stores.transfer.common import is_exported_result as is_exported_result
from dq_stores.transfer.copying import CopyOutcome as CopyOutcome
from dq_stores.transfer.copying import CopySummary as CopySummary
from dq_stores.transfer.copying import copy_scope as copy_scope
from dq_stores.transfer.exporting import ExportTargetError as ExportTargetError
from dq_stores.transfer.exporting import check_export_target as check_export_target
from dq_stores.transfer.exporting import export_path as export_path
from dq_stores.transfer.exporting import export_scope as export_scope
from dq_stores.transfer.exporting import portable_run as portable_run
from dq_stores.transfer.exporting import remove_stale_exports as remove_stale_exports
from dq_stores.transfer.exporting import unexportable_results as unexportable_results
from dq_stores.transfer.files import ARTIFACT_SUFFIXES as ARTIFACT_SUFFIXES
from dq_stores.transfer.files import MAX_JSON_FILE_BYTES as MAX_JSON_FILE_BYTES
from dq_stores.transfer.files import MAX_YAML_FILE_BYTES as MAX_YAML_FILE_BYTES
from dq_stores.transfer.files import MAX_YAML_VALUES as MAX_YAML_VALUES
from dq_stores.transfer.files import LoadedArtifact as LoadedArtifact
from dq_stores.transfer.files import Problem as Problem
from dq_stores.transfer.files import detect_kind as detect_kind
from dq_stores.transfer.files import find_artifact_files as find_artifact_files
from dq_stores.transfer.files import load_artifacts as load_artifacts
from dq_stores.transfer.files import read_documents as read_documents
from dq_stores.transfer.importing import ImportAction as ImportAction
from dq_stores.transfer.importing import ImportWriteError as ImportWriteError
from dq_stores.transfer.importing import apply_import as apply_import
from dq_stores.transfer.importing import plan_import as plan_import
from dq_stores.transfer.importing import reference_note as reference_note
from dq_stores.transfer.retention import PurgeOutcome as PurgeOutcome
from dq_stores.transfer.retention import parse_duration as parse_duration
from dq_stores.transfer.retention import purge_runs as purge_runs


def available_scopes(stores: Stores) -> list[Scope] | None:
    """Every (tenant, environment) the stores hold (``Stores.list_scopes``, which every backend
    implements); ``None`` only for a third-party ``Stores`` without it.
    """
    lister = getattr(stores, "list_scopes", None)
    if not callable(lister):
        return None
    return list(lister())
