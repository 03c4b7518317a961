"""Where everything lives in a container, and what the index metadata holds: pure functions.

What lives here: ``BlobLayout`` (every blob name, built from ids validated by
``dq_stores.scope``), the descending encodings that make a plain prefix listing return the newest
run first, and the packing of the list index into blob metadata. What must not: I/O (see
``dq_stores.blob.backend``) or Azure SDK types. The layout (a tenant, environment or id that ends
with ``.`` is written with ``%2E`` in its place, because Azure advises against path segments
ending with a dot)::

    <prefix>/<tenant>/<env>/<kind>/current/<id>/<version>.json
        the current revision of a contract / job definition / action profile; its metadata holds
        the content hash, revision number, a generation id, the revision time and the list
        index (status, retired, tags, dataset types, action types, trigger type)
    <prefix>/<tenant>/<env>/<kind>/history/<id>/<version>/<generation>/rev-00000001.json
        earlier revisions, immutable; revision n is copied here by the put that writes n+1
    <prefix>/<tenant>/<env>/job_runs/<job_id>.json
        a job run (metadata: content hash, status, run time, first-recorded time, and the digest
        of its index fields)
    <prefix>/<tenant>/<env>/job_runs/.by-time/<inverted run time>-<inverted job id>~
        an empty index entry per run, named so that a plain prefix listing returns the newest run
        first; its metadata repeats the run's filter fields
    <prefix>/<tenant>/<env>/job_runs/<job_id>/result-<16 hex>.<ext>
        result payloads written beside the runs by older versions (read, never written)
    <prefix>/.dq-store.json
        the store's identity
    <prefix>/.results/<store id>/<tenant>/<env>/job_runs/<job_id>/result-<16 hex>.<ext>
        result payloads (``dq_stores.results.payloads.result_key``; a random name, the sha256 is in
        the run's result reference), the default results location
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from dq_stores.errors import InvalidArtifactError
from dq_stores.kinds import ArtifactIndex, RunIndex
from dq_stores.scope import Scope, validate_id
from dq_stores.versions import version_key

__all__ = [
    "MAX_INDEX_METADATA",
    "RESULTS_FOLDER",
    "STORE_BLOB",
    "BlobLayout",
    "descending_id",
    "descending_time",
    "id_from_descending",
    "time_from_descending",
]

MAX_INDEX_METADATA = 6000
"""Largest index metadata value written (Azure allows 8 KB of metadata per blob in total)."""
RESULTS_FOLDER = ".results"
"""Default results location of a Blob store: ``<prefix>/.results/`` in its own container (a
dot-folder: never taken for a tenant)."""
STORE_BLOB = ".dq-store.json"
"""The store's identity, at the prefix (a dot-name: never taken for a tenant)."""

# -- names ----------------------------------------------------------------------------------------

_ID_ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"  # ASCII order
_INVERT_ID = str.maketrans(_ID_ALPHABET, _ID_ALPHABET[::-1])
_INVERT_DIGITS = str.maketrans("0123456789", "9876543210")
_END = "~"  # sorts above every id character


def descending_id(value: str) -> str:
    """An encoding of a validated id whose byte order is the reverse of the id's (a proper prefix
    sorts after its extensions thanks to the ``~`` terminator), for newest-first listings.
    """
    return value.translate(_INVERT_ID) + _END


def id_from_descending(value: str) -> str:
    if not value.endswith(_END):
        raise ValueError("not a descending id")
    return value[:-1].translate(_INVERT_ID)


def descending_time(value: datetime) -> str:
    """20 digits whose order is the reverse of the (UTC, microsecond) time's."""
    t = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    digits = (
        f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}{t.microsecond:06d}"
    )
    return digits.translate(_INVERT_DIGITS)


def time_from_descending(token: str) -> datetime:
    digits = token.translate(_INVERT_DIGITS)
    if len(digits) != 20 or not digits.isdigit():
        raise ValueError("not a descending time")
    return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(microsecond=int(digits[14:]), tzinfo=UTC)


def seg(value: str) -> str:
    """A validated id as a path segment: a trailing ``.`` becomes ``%2E`` (ids never contain
    ``%``, so this is reversible by ``unseg``).
    """
    return value[:-1] + "%2E" if value.endswith(".") else value


def unseg(value: str) -> str:
    return value[:-3] + "." if value.endswith("%2E") else value


class BlobLayout:
    """Blob names of every kind under one prefix (``""`` or ``"<prefix>/"``). Pure functions."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def tenant(self, tenant: str) -> str:
        return f"{self.prefix}{seg(tenant)}/"

    def scope(self, scope: Scope) -> str:
        return f"{self.prefix}{seg(scope.tenant)}/{seg(scope.environment)}/"

    def current_prefix(self, scope: Scope, kind: str, artifact_id: str | None = None) -> str:
        base = f"{self.scope(scope)}{kind}/current/"
        return f"{base}{seg(artifact_id)}/" if artifact_id is not None else base

    def current(self, scope: Scope, kind: str, artifact_id: str, version: str) -> str:
        return f"{self.current_prefix(scope, kind, artifact_id)}{version}.json"

    def parse_current(self, name: str) -> tuple[str, str] | None:
        """(artifact id, version) of a current-revision blob name; ``None`` for anything else."""
        parts = name.rsplit("/", 2)
        if len(parts) != 3 or not parts[2].endswith(".json"):
            return None
        try:
            return validate_id(unseg(parts[1]), "id"), validate_id(parts[2][: -len(".json")], "version")
        except InvalidArtifactError:
            return None

    def history_prefix(self, scope: Scope, kind: str, artifact_id: str, version: str, generation: str) -> str:
        return f"{self.scope(scope)}{kind}/history/{seg(artifact_id)}/{seg(version)}/{generation}/"

    def revision(
        self, scope: Scope, kind: str, artifact_id: str, version: str, generation: str, revision: int
    ) -> str:
        return f"{self.history_prefix(scope, kind, artifact_id, version, generation)}rev-{revision:08d}.json"

    def run(self, scope: Scope, job_id: str) -> str:
        return f"{self.scope(scope)}job_runs/{job_id}.json"

    def run_index_prefix(self, scope: Scope) -> str:
        # '.by-time' can never be a job id (ids do not start with a dot), so neither a run nor a
        # result payload folder (job_runs/<job_id>/...) can land in it.
        return f"{self.scope(scope)}job_runs/.by-time/"

    @staticmethod
    def run_index_key(run_time: datetime, job_id: str) -> str:
        return f"{descending_time(run_time)}-{descending_id(job_id)}"

    def run_index(self, scope: Scope, run_time: datetime, job_id: str) -> str:
        return self.run_index_prefix(scope) + self.run_index_key(run_time, job_id)

    @staticmethod
    def parse_run_index_key(key: str) -> tuple[datetime, str] | None:
        if len(key) < 23 or key[20] != "-":
            return None
        try:
            return time_from_descending(key[:20]), validate_id(id_from_descending(key[21:]), "job_id")
        except (ValueError, InvalidArtifactError):
            return None


# -- metadata -------------------------------------------------------------------------------------


def _pack(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def pack_artifact_index(index: ArtifactIndex) -> str | None:
    packed = _pack(
        {
            "s": index.status,
            "r": index.retired,
            "t": index.tags,
            "d": index.dataset_types,
            "a": index.action_types,
            "g": index.trigger_type,
        }
    )
    return packed if len(packed) <= MAX_INDEX_METADATA else None


def unpack_artifact_index(artifact_id: str, version: str, metadata: dict[str, str]) -> ArtifactIndex | None:
    """The index in ``metadata``, or ``None`` when absent or unreadable: the item is then checked
    by downloading it, which is always correct.
    """
    try:
        data = _unpack(metadata["dqindex"])
        return ArtifactIndex(
            artifact_id=artifact_id,
            version=version,
            version_key=version_key(version),
            name="",
            status=data["s"],
            retired=bool(data["r"]),
            tags=list(data["t"]),
            dataset_types=list(data["d"]),
            action_types=list(data["a"]),
            trigger_type=data["g"],
        )
    except (KeyError, ValueError, TypeError):
        return None


RUN_FIELDS = (
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "contract_id",
    "contract_version",
    "dagster_run_id",
    "asset_key",
    "partition_key",
)


def pack_run_index(index: RunIndex) -> str | None:
    packed = _pack({f: getattr(index, f) for f in RUN_FIELDS})
    return packed if len(packed) <= MAX_INDEX_METADATA else None


def index_digest(packed: str) -> str:
    """A short digest of a packed index (``dqix`` in a run's metadata): equal digests, equal
    index fields.
    """
    return hashlib.sha256(packed.encode()).hexdigest()[:32]


def unpack_run_index(job_id: str, metadata: dict[str, str]) -> RunIndex | None:
    """Like ``unpack_artifact_index``, for the run index entries."""
    try:
        data = _unpack(metadata["dqindex"])
        return RunIndex(job_id=job_id, run_time=None, **{f: data[f] for f in RUN_FIELDS})
    except (KeyError, ValueError, TypeError):
        return None
