"""Conformance tests of the versioned stores (contracts, job definitions, action profiles).

Each test states one rule of ``dq_stores.base.VersionedStore`` / its subclasses and runs once per
kind through the ``versioned`` fixture of ``StoreConformance``. Tests of one kind's own filters
(dataset types, tags, trigger and action types) are at the end. This module holds tests only; the
fixtures they use (``stores``, ``tenant``, ``versioned``) are defined by ``StoreConformance``.

Why one module of ~720 lines: one conformance class per artifact family would repeat the
shared fixtures; the suite is read top to bottom as the behaviour every backend must show.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dq_stores.canonical import sha256_hex
from dq_stores.errors import ConflictError, InvalidArtifactError, NotFoundError
from dq_stores.inputs import MAX_PAGE_SIZE, encode_cursor
from dq_stores.models import ActionType, LifecycleStatus, TriggerType
from dq_stores.stores import Stores
from dq_stores.testing._cases import (
    VersionedCase,
    assert_invalid,
    canon,
    collect_pages,
    pager,
    require_capability,
)
from dq_stores.testing.builders import (
    load_fixture,
    make_action_profile,
    make_contract,
    make_job_definition,
    replace_fields,
)
from dq_stores.versions import version_key

ENV = "dev"


def _ids(items: Any) -> list[tuple[str, str]]:
    return [(a.artifact_id, a.version) for a in items]


def _expected_order(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(id asc, version key desc, version asc): the documented list order, by stable sorts."""
    out = sorted(pairs, key=lambda p: p[1])
    out.sort(key=lambda p: version_key(p[1]), reverse=True)
    out.sort(key=lambda p: p[0])
    return out


class VersionedArtifactTests:
    # -- round trip -----------------------------------------------------------------------------
    def test_fixture_round_trips_byte_identical(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        document = load_fixture(versioned.kind, tenant=tenant, environment="prod")
        expected = canon(document)
        aid, version = document[store.kind.id_field], document["version"]

        etag = store.put(document)

        latest = store.get(tenant, "prod", aid)
        assert latest is not None
        assert type(latest) is store.kind.model
        assert canon(latest) == expected
        exact = store.get(tenant, "prod", aid, version)
        assert exact is not None
        assert canon(exact) == expected
        entry = store.get_entry(tenant, "prod", aid, version)
        assert entry is not None
        assert entry.etag == etag
        assert entry.content_hash == sha256_hex(expected)
        assert canon(entry.artifact) == expected
        assert [canon(a) for a in store.list(tenant, "prod")] == [expected]
        if store.supports_history:
            revision = store.get_revision(tenant, "prod", aid, version, 1)
            assert revision is not None
            assert canon(revision) == expected
            [rev] = store.history(tenant, "prod", aid, version)
            assert (rev.artifact_id, rev.version, rev.revision) == (aid, version, 1)
            assert rev.etag == etag
            assert rev.content_hash == sha256_hex(expected)

    def test_model_and_mapping_puts_are_the_same_document(
        self, versioned: VersionedCase, tenant: str
    ) -> None:
        store = versioned.store
        document = load_fixture(versioned.kind, tenant=tenant, environment=ENV)
        etag = store.put(store.kind.model.model_validate(document))
        # Same content, other key order: still the same canonical document, so a no-op.
        assert store.put(dict(reversed(list(document.items())))) == etag

    def test_unusual_json_values_round_trip(self, versioned: VersionedCase, tenant: str) -> None:
        metadata = {
            "unicode": "Prüfung ✓ 日本語 𝄞",
            "escapes": 'quote " backslash \\ tab \t newline \n bell \u0007',
            "big_int": 2**70,
            "negative": -12.5,
            "float_integral": 2.0,
            "tiny": 1e-7,
            "e16": 1e16,
            "huge": 1.5e300,
            "zero": 0,
            "flags": [True, False, None],
            "empty_object": {},
            "empty_list": [],
            "nested": {"b": [1, {"z": None, "a": "x"}], "a": {"deep": {"deeper": [[]]}}},
        }
        artifact = versioned.make(tenant, ENV, "odd-values", name="Ünïcødé ✓ name", metadata=metadata)
        versioned.store.put(artifact)
        got = versioned.store.get(tenant, ENV, "odd-values")
        assert got is not None
        assert canon(got) == canon(artifact)
        assert got == artifact

    def test_nul_character_in_text_round_trips_or_is_refused_cleanly(
        self, versioned: VersionedCase, tenant: str
    ) -> None:
        # Canonical JSON can carry U+0000 ("\u0000"); a backend may refuse it, but only as bad
        # input, never as a driver error, and without storing anything.
        artifact = versioned.make(tenant, ENV, "nul-text", metadata={"note": "a\x00b"})
        try:
            versioned.store.put(artifact)
        except InvalidArtifactError:
            assert versioned.store.get(tenant, ENV, "nul-text") is None
        else:
            got = versioned.store.get(tenant, ENV, "nul-text")
            assert got is not None
            assert canon(got) == canon(artifact)

    def test_max_length_ids_round_trip(self, versioned: VersionedCase, tenant: str) -> None:
        long_tenant, long_env = (tenant + "x" * 128)[:128], "e" * 128
        artifact_id, version = "a" * 128, "1." + "0" * 126
        artifact = versioned.make(long_tenant, long_env, artifact_id, version)
        versioned.store.put(artifact)
        got = versioned.store.get(long_tenant, long_env, artifact_id, version)
        assert got is not None
        assert canon(got) == canon(artifact)
        assert versioned.store.versions(long_tenant, long_env, artifact_id) == [version]
        assert versioned.store.delete(long_tenant, long_env, artifact_id)

    def test_longest_versions_round_trip(self, versioned: VersionedCase, tenant: str) -> None:
        # Valid 127/128-character versions whose sort keys are long (many numeric pre-release
        # identifiers each widen to 11 characters): stored, ordered and read back like any other.
        store = versioned.store
        many_idents = "1.0.0-" + ".".join(["1"] * 61)
        long_text = "1.0.0-" + "r" * 122
        for version in (many_idents, long_text, "1.0.0"):
            store.put(versioned.make(tenant, ENV, "art", version))
        assert store.versions(tenant, ENV, "art") == ["1.0.0", long_text, many_idents]
        got = store.get(tenant, ENV, "art", many_idents)
        assert got is not None
        assert got.version == many_idents

    # -- versions and latest --------------------------------------------------------------------
    def test_get_missing(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        assert store.get(tenant, ENV, "missing") is None
        assert store.get_entry(tenant, ENV, "missing") is None
        store.put(versioned.make(tenant, ENV, "present", "1.0.0"))
        assert store.get(tenant, ENV, "present", "9.9.9") is None
        with pytest.raises(NotFoundError):
            store.require(tenant, ENV, "missing")
        with pytest.raises(NotFoundError):
            store.require(tenant, ENV, "present", "9.9.9")
        assert store.require(tenant, ENV, "present").version == "1.0.0"

    def test_latest_is_numeric_aware(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        for version in ("1.9.0", "1.10.0", "1.2.0"):
            store.put(versioned.make(tenant, ENV, "art", version))
        latest = store.get(tenant, ENV, "art")
        assert latest is not None
        assert latest.version == "1.10.0"
        assert store.versions(tenant, ENV, "art") == ["1.10.0", "1.9.0", "1.2.0"]
        exact = store.get(tenant, ENV, "art", "1.9.0")
        assert exact is not None
        assert exact.version == "1.9.0"

    def test_prerelease_sorts_below_its_release(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        store.put(versioned.make(tenant, ENV, "art", "1.10.0"))
        store.put(versioned.make(tenant, ENV, "art", "2.0.0-rc.2"))
        assert store.require(tenant, ENV, "art").version == "2.0.0-rc.2"
        store.put(versioned.make(tenant, ENV, "art", "2.0.0-rc.10"))
        assert store.require(tenant, ENV, "art").version == "2.0.0-rc.10"
        store.put(versioned.make(tenant, ENV, "art", "2.0.0"))
        assert store.require(tenant, ENV, "art").version == "2.0.0"
        assert store.versions(tenant, ENV, "art") == ["2.0.0", "2.0.0-rc.10", "2.0.0-rc.2", "1.10.0"]

    def test_non_semantic_versions_sort_below_semantic_ones(
        self, versioned: VersionedCase, tenant: str
    ) -> None:
        store = versioned.store
        for version in ("main", "0.0.1", "alpha"):
            store.put(versioned.make(tenant, ENV, "art", version))
        assert store.require(tenant, ENV, "art").version == "0.0.1"
        assert store.versions(tenant, ENV, "art") == ["0.0.1", "main", "alpha"]

    def test_latest_skips_retired_versions(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        v1 = versioned.make(tenant, ENV, "art", "1.0.0")
        v2 = versioned.make(tenant, ENV, "art", "2.0.0", retired=True)
        store.put(v1)
        store.put(v2)
        assert store.require(tenant, ENV, "art").version == "1.0.0"
        # A retired version stays readable by its exact version.
        assert store.get(tenant, ENV, "art", "2.0.0") == v2
        # Retiring the last live version leaves no latest at all.
        store.put(versioned.set_retired(v1, True))
        assert store.get(tenant, ENV, "art") is None
        assert store.versions(tenant, ENV, "art") == ["2.0.0", "1.0.0"]
        # Un-retiring (a new revision) brings a version back.
        store.put(versioned.set_retired(v2, False))
        assert store.require(tenant, ENV, "art").version == "2.0.0"

    def test_latest_tie_goes_to_newest_revision(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        # "1.2" and "1.2.0" are the same version for ordering; the newest revision wins.
        first = versioned.make(tenant, ENV, "art", "1.2.0")
        store.put(first)
        time.sleep(0.005)
        store.put(versioned.make(tenant, ENV, "art", "1.2"))
        assert store.require(tenant, ENV, "art").version == "1.2"
        time.sleep(0.005)
        store.put(versioned.changed(first, "newer"))
        assert store.require(tenant, ENV, "art").version == "1.2.0"
        # Listing order within a tie is by version text.
        assert store.versions(tenant, ENV, "art") == ["1.2", "1.2.0"]

    # -- revisions and history ------------------------------------------------------------------
    def test_identical_put_is_a_no_op(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        artifact = versioned.make(tenant, ENV, "art")
        etag = store.put(artifact)
        assert store.put(artifact) == etag
        assert store.put(artifact.model_dump(mode="json", exclude_unset=True)) == etag
        entry = store.get_entry(tenant, ENV, "art", "1.0.0")
        assert entry is not None
        assert entry.etag == etag
        if store.supports_history:
            assert [r.revision for r in store.history(tenant, ENV, "art", "1.0.0")] == [1]

    def test_changed_put_appends_a_revision(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art")
        second = versioned.changed(first, 2)
        third = versioned.changed(first, 3)
        etags = [store.put(first), store.put(second), store.put(third)]
        assert len(set(etags)) == 3, "every revision gets its own etag"
        entry = store.get_entry(tenant, ENV, "art", "1.0.0")
        assert entry is not None
        assert entry.etag == etags[2]
        assert entry.artifact == third
        require_capability(store, "supports_history")
        history = store.history(tenant, ENV, "art", "1.0.0")
        assert [r.revision for r in history] == [1, 2, 3]
        assert [r.etag for r in history] == etags
        assert [r.content_hash for r in history] == [sha256_hex(canon(a)) for a in (first, second, third)]
        assert all((r.artifact_id, r.version) == ("art", "1.0.0") for r in history)
        assert all(r.recorded_at.tzinfo is not None for r in history)
        assert [r.recorded_at for r in history] == sorted(r.recorded_at for r in history)
        for number, artifact in enumerate((first, second, third), start=1):
            got = store.get_revision(tenant, ENV, "art", "1.0.0", number)
            assert got is not None
            assert canon(got) == canon(artifact)
        assert store.get_revision(tenant, ENV, "art", "1.0.0", 4) is None

    def test_reverting_content_appends_a_revision(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art")
        etags = [store.put(first), store.put(versioned.changed(first, "b")), store.put(first)]
        assert etags[2] != etags[1]
        assert store.require(tenant, ENV, "art") == first
        if store.supports_history:
            history = store.history(tenant, ENV, "art", "1.0.0")
            assert [r.revision for r in history] == [1, 2, 3]
            assert len({r.etag for r in history}) == 3, "an etag names one revision"
            assert history[0].content_hash == history[2].content_hash

    def test_history_of_missing_is_empty(self, versioned: VersionedCase, tenant: str) -> None:
        require_capability(versioned.store, "supports_history")
        store = versioned.store
        assert store.history(tenant, ENV, "missing", "1.0.0") == []
        assert store.get_revision(tenant, ENV, "missing", "1.0.0", 1) is None
        store.put(versioned.make(tenant, ENV, "art", "1.0.0"))
        assert store.history(tenant, ENV, "art", "2.0.0") == []
        assert store.get_revision(tenant, ENV, "art", "2.0.0", 1) is None

    def test_versions_have_separate_histories(self, versioned: VersionedCase, tenant: str) -> None:
        require_capability(versioned.store, "supports_history")
        store = versioned.store
        v1 = versioned.make(tenant, ENV, "art", "1.0.0")
        store.put(v1)
        store.put(versioned.changed(v1, 1))
        store.put(versioned.make(tenant, ENV, "art", "2.0.0"))
        assert len(store.history(tenant, ENV, "art", "1.0.0")) == 2
        assert [r.revision for r in store.history(tenant, ENV, "art", "2.0.0")] == [1]

    # -- optimistic concurrency -----------------------------------------------------------------
    def test_if_match_current_etag_succeeds(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art")
        etag = store.put(first)
        second = versioned.changed(first, "x")
        new_etag = store.put(second, if_match=etag)
        assert new_etag != etag
        assert store.require(tenant, ENV, "art") == second
        # An identical put with the current etag is still a no-op.
        assert store.put(second, if_match=new_etag) == new_etag

    def test_if_match_stale_etag_conflicts(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art")
        stale = store.put(first)
        current = store.put(versioned.changed(first, "winner"))
        with pytest.raises(ConflictError):
            store.put(versioned.changed(first, "loser"), if_match=stale)
        entry = store.get_entry(tenant, ENV, "art", "1.0.0")
        assert entry is not None
        assert entry.etag == current
        assert entry.artifact.metadata["marker"] == "winner"
        if store.supports_history:
            assert len(store.history(tenant, ENV, "art", "1.0.0")) == 2

    def test_if_match_on_missing_key_conflicts(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        existing = versioned.make(tenant, ENV, "art", "1.0.0")
        etag = store.put(existing)
        with pytest.raises(ConflictError):
            store.put(versioned.make(tenant, ENV, "never-stored"), if_match=etag)
        # Another version of an existing id is another key.
        with pytest.raises(ConflictError):
            store.put(versioned.make(tenant, ENV, "art", "2.0.0"), if_match=etag)
        with pytest.raises(ConflictError):
            store.put(versioned.make(tenant, ENV, "other"), if_match="not-an-etag-at-all")
        assert store.get(tenant, ENV, "never-stored") is None
        assert store.versions(tenant, ENV, "art") == ["1.0.0"]
        assert store.get(tenant, ENV, "other") is None

    def test_create_only(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art", "1.0.0")
        etag = store.put(first, create_only=True)
        with pytest.raises(ConflictError):
            store.put(first, create_only=True)
        with pytest.raises(ConflictError):
            store.put(versioned.changed(first, "x"), create_only=True)
        assert store.get_entry(tenant, ENV, "art", "1.0.0") is not None
        assert store.require(tenant, ENV, "art") == first
        # A new version of an existing id is a new key.
        store.put(versioned.make(tenant, ENV, "art", "1.1.0"), create_only=True)
        entry = store.get_entry(tenant, ENV, "art", "1.0.0")
        assert entry is not None
        assert entry.etag == etag

    def test_if_match_must_be_a_string(self, versioned: VersionedCase, tenant: str) -> None:
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.put(versioned.make(tenant, ENV, "art"), if_match=123)  # type: ignore[arg-type]
        assert_invalid(exc_info, "if_match")

    # -- delete ---------------------------------------------------------------------------------
    def test_delete_one_version(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        store.put(versioned.make(tenant, ENV, "art", "1.0.0"))
        v2 = versioned.make(tenant, ENV, "art", "2.0.0")
        store.put(v2)
        store.put(versioned.changed(v2, 1))
        assert store.delete(tenant, ENV, "art", "2.0.0") is True
        assert store.get(tenant, ENV, "art", "2.0.0") is None
        assert store.require(tenant, ENV, "art").version == "1.0.0"
        assert store.versions(tenant, ENV, "art") == ["1.0.0"]
        if store.supports_history:
            assert store.history(tenant, ENV, "art", "2.0.0") == []
            assert store.get_revision(tenant, ENV, "art", "2.0.0", 1) is None
        assert store.delete(tenant, ENV, "art", "2.0.0") is False

    def test_delete_all_versions_then_recreate(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        for version in ("1.0.0", "2.0.0"):
            artifact = versioned.make(tenant, ENV, "art", version)
            store.put(artifact)
            store.put(versioned.changed(artifact, version))
        store.put(versioned.make(tenant, ENV, "art-2", "1.0.0"))
        assert store.delete(tenant, ENV, "art") is True
        assert store.get(tenant, ENV, "art") is None
        assert store.get(tenant, ENV, "art", "1.0.0") is None
        assert store.versions(tenant, ENV, "art") == []
        assert _ids(store.list(tenant, ENV)) == [("art-2", "1.0.0")]
        assert store.delete(tenant, ENV, "art") is False
        # The key is free again, and its history starts over.
        store.put(versioned.make(tenant, ENV, "art", "1.0.0"), create_only=True)
        if store.supports_history:
            assert [r.revision for r in store.history(tenant, ENV, "art", "1.0.0")] == [1]

    def test_delete_if_match(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art", "1.0.0")
        stale = store.put(first)
        current = store.put(versioned.changed(first, 1))
        with pytest.raises(ConflictError):
            store.delete(tenant, ENV, "art", "1.0.0", if_match=stale)
        assert store.get(tenant, ENV, "art", "1.0.0") is not None
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.delete(tenant, ENV, "art", if_match=current)
        assert_invalid(exc_info, "if_match")
        assert store.get(tenant, ENV, "art", "1.0.0") is not None
        assert store.delete(tenant, ENV, "art", "1.0.0", if_match=current) is True
        assert store.get(tenant, ENV, "art", "1.0.0") is None

    def test_delete_if_match_on_missing_deletes_nothing(self, versioned: VersionedCase, tenant: str) -> None:
        # The API leaves open whether this is False or ConflictError; it must not delete anything.
        store = versioned.store
        etag = store.put(versioned.make(tenant, ENV, "art", "1.0.0"))
        try:
            result = store.delete(tenant, ENV, "art", "2.0.0", if_match=etag)
        except ConflictError:
            pass
        else:
            assert result is False
        assert store.versions(tenant, ENV, "art") == ["1.0.0"]

    # -- listing --------------------------------------------------------------------------------
    def test_list_order_and_pagination(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        # Byte order of ids ("B" < "a" < "a-b" < "a.b" < "a_b" < "ab" < "b") and numeric-aware
        # version order with a tie ("1.2" / "1.2.0") and a pre-release.
        pairs = [
            (aid, version)
            for aid in ("b", "a_b", "B", "ab", "a.b", "a", "a-b")
            for version in ("1.9.0", "1.2", "2.0.0-rc.1", "1.10.0", "1.2.0")
        ]
        for aid, version in pairs:
            store.put(versioned.make(tenant, ENV, aid, version))
        expected = _expected_order(pairs)

        for limit in (1, 4, 7, len(pairs), MAX_PAGE_SIZE):
            items, pages = collect_pages(pager(store, tenant, ENV, limit), limit=limit)
            assert _ids(items) == expected, f"limit={limit}"
            assert pages == -(-len(pairs) // limit), f"limit={limit}: {pages} pages"
        assert _ids(store.iter_all(tenant, ENV)) == expected
        assert store.list(tenant, "empty-env").items == []
        assert store.list(tenant, "empty-env").next_cursor is None

    def test_list_pagination_with_filter(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        pairs = [(f"id-{i:02d}", v) for i in range(6) for v in ("1.0.0", "1.1.0", "10.0.0")]
        for n, (aid, version) in enumerate(pairs):
            store.put(versioned.make(tenant, ENV, aid, version, retired=n % 3 == 1))
        retired = [p for n, p in enumerate(pairs) if n % 3 == 1]
        items, _ = collect_pages(pager(store, tenant, ENV, 2, status="retired"), limit=2)
        assert _ids(items) == _expected_order(retired)
        items, _ = collect_pages(pager(store, tenant, ENV, 2, artifact_id="id-03"), limit=2)
        assert _ids(items) == [("id-03", "10.0.0"), ("id-03", "1.1.0"), ("id-03", "1.0.0")]

    def test_list_returns_current_revision(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        first = versioned.make(tenant, ENV, "art")
        store.put(first)
        latest = versioned.changed(first, "latest")
        store.put(latest)
        assert [canon(a) for a in store.list(tenant, ENV)] == [canon(latest)]

    def test_artifact_id_filter_is_exact(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        for aid in ("a", "a-b", "ab", "A"):
            store.put(versioned.make(tenant, ENV, aid))
        assert _ids(store.list(tenant, ENV, artifact_id="a")) == [("a", "1.0.0")]
        assert store.versions(tenant, ENV, "A") == ["1.0.0"]

    @pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, True, 1.5, "10", None])
    def test_bad_limit_is_refused(self, versioned: VersionedCase, tenant: str, limit: Any) -> None:
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.list(tenant, ENV, limit=limit)
        assert_invalid(exc_info, "limit")

    @pytest.mark.parametrize(
        "cursor", ["", "not a cursor!", "%%%", "bm90IGpzb24", encode_cursor(["a"]), encode_cursor([])]
    )
    def test_bad_cursor_is_refused(self, versioned: VersionedCase, tenant: str, cursor: str) -> None:
        versioned.store.put(versioned.make(tenant, ENV, "art"))
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.list(tenant, ENV, cursor=cursor)
        assert_invalid(exc_info, "cursor")

    @pytest.mark.parametrize(
        "values",
        [[1, 2, 3], [None, None, None], [["a"], {"b": 1}, "c"], ["a" * 100_000, "k", "v"]],
        ids=["ints", "nulls", "containers", "oversized"],
    )
    def test_forged_cursor_is_refused(self, versioned: VersionedCase, tenant: str, values: list[Any]) -> None:
        # A cursor with the right arity but values this store never issues: bad input, not a
        # driver error and not a silently wrong page.
        versioned.store.put(versioned.make(tenant, ENV, "art"))
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.list(tenant, ENV, cursor=encode_cursor(values))
        assert_invalid(exc_info, "cursor")

    def test_unknown_filter_is_refused(self, versioned: VersionedCase, tenant: str) -> None:
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.list(tenant, ENV, colour="red")
        assert_invalid(exc_info, "colour")
        assert "colour" in str(exc_info.value)

    # -- bad documents --------------------------------------------------------------------------
    def test_unknown_top_level_field_is_refused(self, versioned: VersionedCase, tenant: str) -> None:
        document = load_fixture(versioned.kind, tenant=tenant, environment=ENV)
        document["bogus_field"] = 1
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.put(document)
        assert exc_info.value.field == "bogus_field"
        assert "bogus_field" in str(exc_info.value)
        assert ("bogus_field", "unknown field") in exc_info.value.errors
        assert versioned.store.list(tenant, ENV).items == []

    def test_unknown_nested_field_is_refused(self, versioned: VersionedCase, tenant: str) -> None:
        document = load_fixture(versioned.kind, tenant=tenant, environment=ENV)
        if versioned.kind == "contracts":
            document["datasets"][0]["columns"][0]["bogus_nested"] = True
            expected = "datasets.0.columns.0.bogus_nested"
        elif versioned.kind == "job_definitions":
            document["data_contract"]["bogus_nested"] = True
            expected = "data_contract.bogus_nested"
        else:
            document["actions"][1]["bogus_nested"] = True
            expected = "actions.1.bogus_nested"
        with pytest.raises(InvalidArtifactError) as exc_info:
            versioned.store.put(document)
        assert exc_info.value.field == expected
        assert expected in str(exc_info.value)
        assert versioned.store.list(tenant, ENV).items == []

    def test_nan_is_refused(self, versioned: VersionedCase, tenant: str) -> None:
        for bad in (float("nan"), float("inf"), -float("inf")):
            with pytest.raises(InvalidArtifactError):
                versioned.store.put(versioned.make(tenant, ENV, "art", metadata={"x": bad}))
        assert versioned.store.get(tenant, ENV, "art") is None

    def test_wrong_types_are_refused(self, versioned: VersionedCase, tenant: str) -> None:
        other = make_contract if versioned.kind != "contracts" else make_job_definition
        for bad in ("a string", 42, None, [1, 2], other(tenant, ENV)):
            with pytest.raises(InvalidArtifactError):
                versioned.store.put(bad)
        assert versioned.store.list(tenant, ENV).items == []

    # -- contracts ------------------------------------------------------------------------------
    def test_contract_filters(self, stores: Stores, tenant: str) -> None:
        store = stores.contracts
        store.put(make_contract(tenant, ENV, "c1", dataset_types=["Orders"], status="approved"))
        store.put(make_contract(tenant, ENV, "c2", dataset_types=["orders", "Billing"], status="draft"))
        store.put(make_contract(tenant, ENV, "c3", dataset_types=["billing"], status="retired"))
        # "ordersXx" would match a LIKE 'orders_x' pattern: filters must compare exactly.
        store.put(make_contract(tenant, ENV, "c4", dataset_types=["ordersXx"], status="approved"))
        store.put(make_contract(tenant, ENV, "c5", dataset_types=[], status="pending_approval"))
        store.put(make_contract(tenant, ENV, "c6", dataset_types=["orders_x"], status="approved"))

        def ids(**filters: Any) -> list[str]:
            return [c.contract_id for c in store.iter_all(tenant, ENV, **filters)]

        assert ids(dataset_type="ORDERS") == ["c1", "c2"]
        assert ids(dataset_type="billing") == ["c2", "c3"]
        assert ids(dataset_type="orders_x") == ["c6"]
        assert ids(dataset_type="ordersxx") == ["c4"]
        assert ids(dataset_type="nope") == []
        assert ids(status="approved") == ["c1", "c4", "c6"]
        assert ids(status=LifecycleStatus.DRAFT) == ["c2"]
        assert ids(status="pending_approval") == ["c5"]
        assert ids(dataset_type="Billing", status="retired") == ["c3"]
        assert ids(dataset_type="billing", status="approved") == []
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, dataset_type="")
        assert_invalid(exc_info, "dataset_type")
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, tags=["x"])
        assert_invalid(exc_info, "tags")

    def test_contract_dataset_filter_follows_current_revision(self, stores: Stores, tenant: str) -> None:
        store = stores.contracts
        contract = make_contract(tenant, ENV, "c1", dataset_types=["orders"])
        store.put(contract)
        moved = make_contract(tenant, ENV, "c1", dataset_types=["invoices"], name=contract.name)
        store.put(moved)
        assert list(store.iter_all(tenant, ENV, dataset_type="orders")) == []
        assert [c.contract_id for c in store.iter_all(tenant, ENV, dataset_type="invoices")] == ["c1"]

    def test_get_latest_for_dataset(self, stores: Stores, tenant: str) -> None:
        store = stores.contracts
        store.put(make_contract(tenant, ENV, "a", "1.0.0", dataset_types=["Billing"]))
        a_110 = make_contract(tenant, ENV, "a", "1.10.0", dataset_types=["billing", "orders"])
        store.put(a_110)
        store.put(make_contract(tenant, ENV, "a", "2.0.0", dataset_types=["billing"], status="retired"))
        store.put(make_contract(tenant, ENV, "c", "1.9.0", dataset_types=["billing"]))
        store.put(make_contract(tenant, ENV, "b", "5.0.0", dataset_types=["shipments"]))

        assert store.get_latest_for_dataset(tenant, ENV, "billing") == a_110
        assert store.get_latest_for_dataset(tenant, ENV, "BILLING") == a_110
        latest_orders = store.get_latest_for_dataset(tenant, ENV, "Orders")
        assert latest_orders is not None
        assert (latest_orders.contract_id, latest_orders.version) == ("a", "1.10.0")
        assert store.get_latest_for_dataset(tenant, ENV, "unknown") is None
        assert store.get_latest_for_dataset(tenant, "other-env", "billing") is None

        # A new revision of a.1.10.0 without the billing dataset: it no longer counts.
        store.put(make_contract(tenant, ENV, "a", "1.10.0", dataset_types=["orders"], name=a_110.name))
        fallback = store.get_latest_for_dataset(tenant, ENV, "billing")
        assert fallback is not None
        assert (fallback.contract_id, fallback.version) == ("c", "1.9.0")
        # Retiring it (a new revision) moves on; deleting the rest leaves none.
        store.put(make_contract(tenant, ENV, "c", "1.9.0", dataset_types=["billing"], status="retired"))
        fallback = store.get_latest_for_dataset(tenant, ENV, "billing")
        assert fallback is not None
        assert (fallback.contract_id, fallback.version) == ("a", "1.0.0")
        assert store.delete(tenant, ENV, "a", "1.0.0")
        assert store.get_latest_for_dataset(tenant, ENV, "billing") is None
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.get_latest_for_dataset(tenant, ENV, "")
        assert_invalid(exc_info, "dataset_type")

    def test_get_latest_for_dataset_tie_goes_to_newest_revision(self, stores: Stores, tenant: str) -> None:
        store = stores.contracts
        older = make_contract(tenant, ENV, "x", "1.2.0", dataset_types=["billing"])
        store.put(older)
        time.sleep(0.005)
        newer = make_contract(tenant, ENV, "y", "1.2", dataset_types=["billing"])
        store.put(newer)
        assert store.get_latest_for_dataset(tenant, ENV, "billing") == newer
        time.sleep(0.005)
        touched = replace_fields(older, description="touched")
        store.put(touched)
        assert store.get_latest_for_dataset(tenant, ENV, "billing") == touched

    # -- job definitions ------------------------------------------------------------------------
    def test_job_definition_filters(self, stores: Stores, tenant: str) -> None:
        store = stores.job_definitions
        put = store.put
        put(make_job_definition(tenant, ENV, "j1", tags=["prod", "billing"], trigger_type="SCHEDULED"))
        put(
            make_job_definition(
                tenant, ENV, "j1", "2.0.0", tags=["billing", "prod"], trigger_type="SCHEDULED"
            )
        )
        put(make_job_definition(tenant, ENV, "j2", tags=["prod"], status="draft"))
        put(
            make_job_definition(tenant, ENV, "j3", tags=["prod-eu", "billing"], trigger_type="EXTERNAL_EVENT")
        )
        put(make_job_definition(tenant, ENV, "j4", tags=["a_c"], status="retired"))
        put(make_job_definition(tenant, ENV, "j5", tags=["abc", "prod", "prod"]))
        put(make_job_definition(tenant, ENV, "j6", tags=['q"uote', "%", "Prod"]))
        put(make_job_definition(tenant, ENV, "j7"))

        def by_tags(*tags: str) -> list[tuple[str, str]]:
            return _ids(store.list_by_tags(tenant, ENV, list(tags)))

        assert by_tags("prod") == [("j1", "2.0.0"), ("j1", "1.0.0"), ("j2", "1.0.0"), ("j5", "1.0.0")]
        assert by_tags("prod", "billing") == [("j1", "2.0.0"), ("j1", "1.0.0")]
        assert by_tags("billing", "prod") == by_tags("prod", "billing")
        assert by_tags("billing") == [("j1", "2.0.0"), ("j1", "1.0.0"), ("j3", "1.0.0")]
        assert by_tags("a_c") == [("j4", "1.0.0")]
        assert by_tags("%") == [("j6", "1.0.0")]
        assert by_tags('q"uote') == [("j6", "1.0.0")]
        assert by_tags("Prod") == [("j6", "1.0.0")]
        assert by_tags("prod", "nope") == []
        assert len(by_tags()) == 8
        assert _ids(store.list_by_tags(tenant, ENV)) == by_tags()

        def ids(**filters: Any) -> list[str]:
            return [j.job_definition_id for j in store.iter_all(tenant, ENV, **filters)]

        assert ids(trigger_type="SCHEDULED") == ["j1", "j1"]
        assert ids(trigger_type=TriggerType.EXTERNAL_EVENT) == ["j3"]
        assert ids(trigger_type="MANUAL") == ["j2", "j4", "j5", "j6", "j7"]
        assert ids(status="draft") == ["j2"]
        assert ids(status="retired") == ["j4"]
        assert ids(tags=["prod"], status="active") == ["j1", "j1", "j5"]
        assert ids(tags=["billing"], trigger_type="EXTERNAL_EVENT") == ["j3"]
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, trigger_type="CRON")
        assert_invalid(exc_info, "trigger_type")
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, tags="prod")
        assert_invalid(exc_info, "tags")
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, dataset_type="billing")
        assert_invalid(exc_info, "dataset_type")

    def test_job_definition_tag_filter_follows_current_revision(self, stores: Stores, tenant: str) -> None:
        store = stores.job_definitions
        store.put(make_job_definition(tenant, ENV, "j1", tags=["old"], trigger_type="SCHEDULED"))
        store.put(make_job_definition(tenant, ENV, "j1", tags=["new"], trigger_type="MANUAL"))
        assert list(store.list_by_tags(tenant, ENV, ["old"])) == []
        assert [j.job_definition_id for j in store.list_by_tags(tenant, ENV, ["new"])] == ["j1"]
        assert list(store.iter_all(tenant, ENV, trigger_type="SCHEDULED")) == []

    # -- action profiles ------------------------------------------------------------------------
    def test_action_profile_filters(self, stores: Stores, tenant: str) -> None:
        store = stores.action_profiles
        store.put(
            make_action_profile(
                tenant, ENV, "p1", action_types=["SEND_NOTIFICATION", "EMIT_LINEAGE"], tags=["critical"]
            )
        )
        store.put(make_action_profile(tenant, ENV, "p2", action_types=["CALL_WEBHOOK"], tags=["critical-eu"]))
        store.put(make_action_profile(tenant, ENV, "p3", action_types=[]))
        store.put(
            make_action_profile(tenant, ENV, "p4", action_types=["SEND_NOTIFICATION"], status="retired")
        )

        def by_type(action_type: Any) -> list[str]:
            return [p.action_profile_id for p in store.list_by_type(tenant, ENV, action_type)]

        assert by_type("SEND_NOTIFICATION") == ["p1", "p4"]
        assert by_type(ActionType.EMIT_LINEAGE) == ["p1"]
        assert by_type(ActionType.CALL_WEBHOOK) == ["p2"]
        assert by_type("OPEN_TICKET") == []
        assert by_type(None) == ["p1", "p2", "p3", "p4"]
        assert [p.action_profile_id for p in store.iter_all(tenant, ENV, tags=["critical"])] == ["p1"]
        assert [p.action_profile_id for p in store.iter_all(tenant, ENV, status="retired")] == ["p4"]
        with pytest.raises(InvalidArtifactError) as exc_info:
            by_type("SEND_CARRIER_PIGEON")
        assert_invalid(exc_info, "action_type")
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.list(tenant, ENV, trigger_type="MANUAL")
        assert_invalid(exc_info, "trigger_type")
