"""Hostile input, property-based, on every backend (memory, SQLite, filesystem, Postgres, Blob).

Tenants, environments, ids and versions are drawn from hostile strings (traversal, separators,
percent-escapes, NUL and control characters, SQL quoting, 10,000 characters, Unicode look-alikes)
mixed with valid ids, including near-neighbours of a victim scope's names (case variants, a
trailing dot). Every call either is refused with ``InvalidArtifactError`` / ``ScopeViolationError``
(``NotFoundError`` / ``ConflictError`` where the call's contract says so) or succeeds and then reads
back in its own scope only. Never another scope's data, never a file or blob outside the store's
root or prefix, never an unhandled exception. Free-text fields, filters, etags and result content
types get the same strings.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dq_stores.canonical import canonical_json
from dq_stores.errors import (
    ConflictError,
    InvalidArtifactError,
    NotFoundError,
    ScopeViolationError,
    StoreError,
)
from dq_stores.registry import Stores
from dq_stores.scope import validate_id
from dq_stores.testing.builders import make_contract, make_run
from tests.reliability.conftest import Location, make_location, tree_files

pytestmark = pytest.mark.reliability

VICTIM = ("victim", "prod")
SECRET = "s3cr3t-of-the-victim"

HOSTILE = [
    "",
    ".",
    "..",
    "...",
    "../victim",
    "..\\victim",
    "victim/../victim",
    "/",
    "\\",
    "/etc/passwd",
    "C:\\Windows",
    "a/b",
    "a\\b",
    "%2e%2e",
    "%2E",
    "%2e%2e%2fvictim",
    "..%2f",
    "%00",
    "\x00",
    "victim\x00",
    "a\x00b",
    "\n",
    "victim\n",
    "a\rb",
    "\t",
    "\x1b[31m",
    "\x7f",
    "'",
    "''",
    '"',
    "' OR '1'='1",
    "victim' --",
    "'; DROP TABLE dq_artifacts; --",
    "`",
    ";",
    "%",
    "_",
    "*",
    "?",
    "[a-z]",
    "a b",
    " victim",
    "$HOME",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "<script>",
    "~",
    "x" * 129,
    "x" * 10_000,
    "\uff56\uff49\uff43\uff54\uff49\uff4d",  # fullwidth "victim"
    "v\u0456ctim",  # Cyrillic i
    "victim\u200b",  # zero-width space
    "\u202evictim",  # right-to-left override
    "\uff0e\uff0e",  # fullwidth dots
    "\u2024\u2024",  # one-dot leaders
    "vi\u0301ctim",  # combining accent
    "K",  # Kelvin sign (casefolds to k)
    "ß",
    "\ufeffvictim",
    "\ud800",  # lone surrogate
    ".hidden",
    ".by-time",
    ".index.json",
]
VALID = [
    "victim",
    "prod",
    "Victim",
    "VICTIM",
    "victim.",
    "prod.",
    "victim-",
    "victim_",
    "-",
    "_",
    "a",
    "a" * 128,
    "1.0.0",
    "1.10.0",
    "json",
    "victim.json",
    "current",
    "history",
    "job_runs",
    "contracts",
    "secret",
    "secret-run",
    "result-0",
    "CON",
    "NUL",
    "--help",
]


def is_valid(*values: Any) -> bool:
    try:
        for value in values:
            validate_id(value, "id")
    except InvalidArtifactError:
        return False
    return True


_id_chars = st.text("abcXYZ019._-", min_size=1, max_size=12)
names = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(VALID),
    _id_chars,
    st.text(max_size=16),
    st.sampled_from(VALID).map(lambda v: v.upper()),
)
"""Values for tenants, environments, ids and versions: mostly strings; a few non-strings too."""
any_value = st.one_of(names, st.sampled_from([None, 0, 1.5, b"victim", ["victim"], {"a": 1}]))
valid_names = st.one_of(st.sampled_from(VALID), _id_chars.filter(lambda v: is_valid(v)))


@st.composite
def coordinates(draw: st.DrawFn) -> tuple[Any, Any, Any, Any]:
    """(tenant, environment, id, version): anything at all, or valid ones with exactly one
    hostile value among them (so the deeper paths, which need a valid scope, are reached)."""
    if draw(st.booleans()):
        return draw(any_value), draw(names), draw(names), draw(names)
    values: list[Any] = [draw(valid_names) for _ in range(4)]
    spot = draw(st.integers(-1, 3))
    if spot >= 0:
        values[spot] = draw(st.one_of(st.sampled_from(HOSTILE), any_value))
    return values[0], values[1], values[2], values[3]


ALLOWED = (InvalidArtifactError, ScopeViolationError)
EXAMPLES = {"memory": 300, "sqlite": 200, "filesystem": 200, "postgres": 100, "blob": 50}


def attempt(fn: Callable[[], Any], *also: type[StoreError]) -> tuple[bool, Any]:
    """(True, value) or (False, the refusing error); anything else fails the test."""
    refusals: tuple[type[Exception], ...] = (*ALLOWED, *also)
    try:
        return True, fn()
    except refusals as exc:
        return False, exc


class Harness:
    """One backend's stores with a victim scope holding a secret contract, run and result."""

    def __init__(self, location: Location, stores: Stores) -> None:
        self.location = location
        self.stores = stores
        self.stats: Counter[str] = Counter()
        tenant, env = VICTIM
        stores.contracts.put(make_contract(tenant, env, "secret", "1.0.0", metadata={"secret": SECRET}))
        stores.job_runs.put(make_run(tenant, env, "secret-run", metadata={"secret": SECRET}))
        stores.job_runs.put_result(tenant, env, "secret-run", {"secret": SECRET}, offload=True)
        self.victim_state = self.snapshot()

    def snapshot(self) -> tuple[bytes, bytes, bytes]:
        tenant, env = VICTIM
        contract = self.stores.contracts.require(tenant, env, "secret", "1.0.0")
        run = self.stores.job_runs.get(tenant, env, "secret-run")
        assert run is not None
        result = self.stores.job_runs.get_result(tenant, env, "secret-run")
        return canonical_json(contract), canonical_json(run), result

    def check_owned(self, items: Any, tenant: Any, env: Any) -> None:
        """Everything a read returned belongs to the scope it was asked for."""
        for item in items:
            assert (item.tenant_id, item.environment) == (tenant, env), "a read crossed scopes"
            if (tenant, env) != VICTIM:
                assert SECRET not in canonical_json(item).decode(), "the victim's secret leaked"


def contract_doc(tenant: Any, env: Any, cid: Any, version: Any, text: Any) -> dict[str, Any]:
    return {
        "contract_id": cid,
        "tenant_id": tenant,
        "environment": env,
        "version": version,
        "name": text,
        "datasets": [
            {
                "dataset_contract_id": "ds",
                "dataset_type": text,
                "tenant_id": tenant,
                "environment": env,
                "version": version,
                "columns": [{"column_id": "id", "data_type": "string"}],
            }
        ],
        "metadata": {"note": text, str(text)[:50]: [text]},
    }


def run_doc(tenant: Any, env: Any, job_id: Any, text: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "tenant_id": tenant,
        "environment": env,
        "job_type": "validation",
        "status": "running",
        "dataset_type": text,
        "message": text,
        "orchestrator": {"run_id": text, "asset_key": text, "partition_key": text},
        "tags": {"t": text},
    }


def as_document_value(value: Any) -> Any:
    # Pydantic reads bytes as UTF-8 text in a document (its lax mode), so a document with
    # tenant_id=b"t" is tenant "t"; the API arguments themselves must be str.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def exercise(h: Harness, tenant: Any, env: Any, cid: Any, version: Any, text: Any) -> None:
    s = h.stores
    scope_ok = is_valid(tenant, env)
    all_ok = is_valid(tenant, env, cid, version)
    if (as_document_value(tenant), as_document_value(env)) == VICTIM:
        # Reads only: writing there is legitimate (it is that scope) but would change the
        # victim's data this test watches.
        for read, ids in (
            (lambda: s.contracts.get(tenant, env, cid, version), (tenant, env, cid, version)),
            (lambda: s.job_runs.get(tenant, env, cid), (tenant, env, cid)),
        ):
            ok, value = attempt(read)
            assert ok == is_valid(*ids), (ids, value)
            if ok and value is not None:
                assert (value.tenant_id, value.environment, value.artifact_id) == (tenant, env, cid)
        return

    # -- versioned artifacts ---------------------------------------------------------------
    stored, etag = attempt(lambda: s.contracts.put(contract_doc(tenant, env, cid, version, text)))
    h.stats["contract stored" if stored else "contract refused"] += 1
    if stored:
        tenant, env, cid, version = map(as_document_value, (tenant, env, cid, version))
        assert is_valid(tenant, env, cid, version), (tenant, env, cid, version)
        scope_ok = all_ok = True
        got = s.contracts.get_entry(tenant, env, cid, version)
        assert got is not None and got.etag == etag
        assert canonical_json(got.artifact) == canonical_json(
            s.contracts._coerce(contract_doc(tenant, env, cid, version, text))
        )
        assert len(s.contracts.history(tenant, env, cid, version)) >= 1
        # An identical put is a no-op; a stale etag is a conflict, never a silent overwrite.
        assert s.contracts.put(contract_doc(tenant, env, cid, version, text)) == etag
        with pytest.raises(ConflictError):
            s.contracts.put(contract_doc(tenant, env, cid, version, text), create_only=True)
    elif all_ok and isinstance(etag, InvalidArtifactError):
        # Valid ids: only the free text can be at fault (e.g. NUL, which Postgres JSONB refuses).
        assert etag.field not in {"contract_id", "tenant_id", "environment", "version"}, etag

    reads: list[Callable[[], Any]] = [
        lambda: [s.contracts.get(tenant, env, cid, version)],
        lambda: [s.contracts.get(tenant, env, cid)],
        lambda: s.contracts.list(tenant, env).items,
        lambda: s.contracts.list(tenant, env, dataset_type=text).items,
        lambda: s.contracts.list(tenant, env, artifact_id=cid, status=text).items,
        lambda: [s.contracts.get_latest_for_dataset(tenant, env, text)],
        lambda: [s.contracts.get_revision(tenant, env, cid, version, 1)],
        lambda: list(s.job_definitions.list_by_tags(tenant, env, [text])),
        lambda: list(s.action_profiles.list_by_type(tenant, env, text)),
    ]
    for read in reads:
        ok, value = attempt(read)
        if ok:
            assert scope_ok, "a read with an invalid scope was not refused"
            h.check_owned([v for v in value if v is not None], tenant, env)
        else:
            assert not isinstance(value, ScopeViolationError) or not scope_ok, (
                f"a backend returned another scope's document: {value}"
            )
    ok, value = attempt(lambda: s.contracts.history(tenant, env, cid, version))
    assert ok == all_ok, value
    ok, value = attempt(lambda: s.contracts.delete(tenant, env, cid, version, if_match=text), ConflictError)
    assert all_ok or not ok, value

    # -- job runs and results ----------------------------------------------------------------
    stored, etag = attempt(lambda: s.job_runs.put(run_doc(tenant, env, cid, text)))
    h.stats["run stored" if stored else "run refused"] += 1
    if stored:
        tenant, env, cid = map(as_document_value, (tenant, env, cid))
        assert is_valid(tenant, env, cid), (tenant, env, cid)
        scope_ok = True
        got_run = s.job_runs.get_entry(tenant, env, cid)
        assert got_run is not None and got_run.etag == etag
        ok, _ = attempt(
            lambda: (
                s.job_runs.put_result(tenant, env, cid, text.encode("utf-8", "replace"), offload=True)
                if isinstance(text, str)
                else s.job_runs.put_result(tenant, env, cid, b"x", content_type=text)
            )
        )
        if ok:
            assert s.job_runs.get_result(tenant, env, cid) == (
                text.encode("utf-8", "replace") if isinstance(text, str) else b"x"
            )
        for content_type in (text, "text/plain\r\nX-Injected: 1"):
            ok, value = attempt(
                functools.partial(s.job_runs.put_result, tenant, env, cid, b"y", content_type=content_type)
            )
            if ok:
                assert s.job_runs.get_result(tenant, env, cid) == b"y"
        ok, value = attempt(
            lambda: s.job_runs.put(run_doc(tenant, env, cid, "z"), if_match=text), ConflictError
        )
        assert not ok or text == etag
    run_reads: list[Callable[[], Any]] = [
        lambda: [s.job_runs.get(tenant, env, cid)],
        lambda: s.job_runs.list(tenant, env).items,
        lambda: s.job_runs.list(tenant, env, asset_key=text, partition_key=text).items,
        lambda: s.job_runs.list(tenant, env, dataset_type=text, dagster_run_id=text).items,
        lambda: list(s.job_runs.list_by_tenant(tenant)),
        lambda: list(s.job_runs.list_by_tenant(tenant, env)),
    ]
    for read in run_reads:
        ok, value = attempt(read)
        if ok:
            assert is_valid(tenant), "a run read with an invalid tenant was not refused"
            items = [v for v in value if v is not None]
            for item in items:
                assert item.tenant_id == tenant, "a run read crossed tenants"
                if tenant != VICTIM[0]:
                    assert SECRET not in canonical_json(item).decode()
        else:
            assert not isinstance(value, ScopeViolationError) or not scope_ok, value
    ok, value = attempt(lambda: s.job_runs.get_result(tenant, env, cid), NotFoundError)
    if ok:
        assert (tenant, env, cid) != (*VICTIM, "secret-run") or value == h.victim_state[2]
        assert SECRET.encode() not in value or (tenant, env, cid) == (*VICTIM, "secret-run")
    ok, value = attempt(lambda: s.job_runs.gc_payloads(prefix=text, dry_run=True))
    assert not ok or value == [], "a dry-run gc found orphans where there are none"


def check_confined(h: Harness) -> None:
    """Nothing outside the root (file backends) or the blob prefix (Blob)."""
    loc = h.location
    if loc.root is not None:
        parent = Path(loc.root).parent
        assert set(os.listdir(parent)) <= {Path(loc.root).name}, "something was created beside the root"
        for rel in tree_files(loc.root) if os.path.isdir(loc.root) else []:
            full = os.path.realpath(os.path.join(loc.root, rel))
            assert full.startswith(os.path.realpath(loc.root) + os.sep), rel
            for segment in Path(rel).parts:
                assert segment not in {"..", "."} and "\\" not in segment and segment.isprintable(), rel
    if loc.backend == "blob":
        from azure.storage.blob import ContainerClient

        container = loc.url.removeprefix("azure-blob://").split("/")[0]
        with ContainerClient.from_connection_string(loc.options["connection_string"], container) as client:
            for blob in client.list_blobs():
                name = str(blob.name)
                assert name.startswith("dq/"), f"blob {name!r} outside the store prefix"
                for segment in name.split("/"):
                    assert segment not in {"", ".", ".."} and "\\" not in segment and segment.isprintable(), (
                        name
                    )


BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("filesystem"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("blob", marks=pytest.mark.azurite),
]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    location = make_location(request.param, request, tmp_path / "space")
    (tmp_path / "space").mkdir()
    with location.open() as stores:
        yield Harness(location, stores)


@pytest.mark.slow
def test_hostile_names_are_refused_or_confined_to_their_scope(harness: Harness) -> None:
    backend = harness.location.backend

    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(where=coordinates(), text=any_value)
    @example(where=("Victim", "prod", "secret", "1.0.0"), text="x")
    @example(where=("victim.", "prod", "secret", "1.0.0"), text="x")
    @example(where=("victim", "prod.", "secret-run", "1.0.0"), text="x")
    @example(where=("VICTIM", "PROD", "SECRET", "1.0.0"), text="\x00")
    @example(where=("victim", "prod", "secret", "1.0.0"), text="' OR '1'='1")
    @example(where=("t1", "prod", "../victim", "1.0.0"), text="x")
    @example(where=("t1", "prod", "c1", "1.0.0"), text="\ud800")
    @example(where=("t1", "prod", "c1", "1.0.0"), text="text/plain\r\nX-Injected: 1")
    @example(where=("t1", "prod", "c1", "x" * 10_000), text="x" * 10_000)
    @example(where=("..", "..", "..", ".."), text="../..")
    def prop(where: tuple[Any, Any, Any, Any], text: Any) -> None:
        exercise(harness, *where, text)

    prop()
    print(f"\n[{backend}] {dict(harness.stats)}")
    assert harness.snapshot() == harness.victim_state, "the victim's data changed"
    check_confined(harness)
