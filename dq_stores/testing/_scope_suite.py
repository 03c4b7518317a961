"""Conformance tests of scope isolation and of id / scope validation.

Isolation: several scopes whose tenants and environments are prefixes or case variants of each
other hold the same ids; every read, filter, history, latest lookup, delete and conditional write
must see only its own scope. Validation: hostile ids and scopes (traversal, separators, control
characters, Unicode look-alikes, over-long) are refused with ``InvalidArtifactError`` by every
method, before a backend sees them. This module holds tests only; fixtures come from
``StoreConformance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dq_stores.errors import ConflictError, InvalidArtifactError
from dq_stores.stores import Stores
from dq_stores.testing._cases import BAD_IDS, VersionedCase, canon, versioned_case
from dq_stores.testing.builders import BASE_TIME, make_contract, make_run, replace_fields

ENV = "dev"


def _scopes(tenant: str) -> list[tuple[str, str]]:
    # Prefixes and case variants: what a LIKE, a blob prefix listing or a case-folding
    # collation would confuse.
    return [(tenant, "dev"), (tenant, "dev-eu"), (tenant + "-x", "dev"), (tenant.upper(), "dev")]


def _kind_specific(case: VersionedCase, tenant: str, environment: str) -> list[Any]:
    """What the kind's own lookup (seed API names) returns in the scope."""
    if case.kind == "contracts":
        found = case.store.get_latest_for_dataset(tenant, environment, "orders")  # type: ignore[attr-defined]
        return [found] if found is not None else []
    if case.kind == "job_definitions":
        return list(case.store.list_by_tags(tenant, environment, []))  # type: ignore[attr-defined]
    return list(case.store.list_by_type(tenant, environment, "SEND_NOTIFICATION"))  # type: ignore[attr-defined]


Call = tuple[str, Callable[[], Any], tuple[str, ...]]
"""(what, call, fields the refusal may name)"""


def _versioned_calls(case: VersionedCase, t: str, e: str, bad: Any) -> list[Call]:
    s, kind, id_field = case.store, case.kind, case.store.kind.id_field
    good = case.make(t, e, "good", "1.0.0").model_dump(mode="json", exclude_unset=True)
    return [
        (f"{kind}.get(tenant)", lambda: s.get(bad, e, "a"), ("tenant",)),
        (f"{kind}.get(environment)", lambda: s.get(t, bad, "a"), ("environment",)),
        (f"{kind}.get(id)", lambda: s.get(t, e, bad), (id_field,)),
        (f"{kind}.get(version)", lambda: s.get(t, e, "a", bad), ("version",)),
        (f"{kind}.get_entry(id)", lambda: s.get_entry(t, e, bad), (id_field,)),
        (f"{kind}.list(tenant)", lambda: s.list(bad, e), ("tenant",)),
        (f"{kind}.list(environment)", lambda: s.list(t, bad), ("environment",)),
        (f"{kind}.list(artifact_id=)", lambda: s.list(t, e, artifact_id=bad), (id_field, "artifact_id")),
        (f"{kind}.versions(id)", lambda: s.versions(t, e, bad), (id_field,)),
        (f"{kind}.delete(tenant)", lambda: s.delete(bad, e, "a"), ("tenant",)),
        (f"{kind}.delete(id)", lambda: s.delete(t, e, bad), (id_field,)),
        (f"{kind}.delete(version)", lambda: s.delete(t, e, "a", bad), ("version",)),
        (f"{kind}.history(environment)", lambda: s.history(t, bad, "a", "1.0.0"), ("environment",)),
        (f"{kind}.history(version)", lambda: s.history(t, e, "a", bad), ("version",)),
        (f"{kind}.get_revision(id)", lambda: s.get_revision(t, e, bad, "1.0.0", 1), (id_field,)),
        (f"{kind}.put(tenant_id)", lambda: s.put({**good, "tenant_id": bad}), ("tenant_id",)),
        (f"{kind}.put(environment)", lambda: s.put({**good, "environment": bad}), ("environment",)),
        (f"{kind}.put(id)", lambda: s.put({**good, id_field: bad}), (id_field,)),
        (f"{kind}.put(version)", lambda: s.put({**good, "version": bad}), ("version",)),
    ]


class ScopeTests:
    # -- isolation ------------------------------------------------------------------------------
    def test_scope_isolation_of_versioned_artifacts(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        scopes = _scopes(tenant)
        etags: list[str] = []
        for i, (t, e) in enumerate(scopes):
            v1 = versioned.make(t, e, "shared", "1.0.0", name=f"scope-{i}")
            etag = store.put(v1)
            for n in range(i):  # a different number of revisions per scope
                etag = store.put(versioned.changed(v1, n))
            etags.append(etag)
            store.put(versioned.make(t, e, "shared", "2.0.0", name=f"scope-{i}"))
            store.put(versioned.make(t, e, f"only-{i}", "1.0.0", name=f"scope-{i}"))

        for i, (t, e) in enumerate(scopes):
            where = f"scope {i} ({t}/{e})"
            latest = store.require(t, e, "shared")
            assert (latest.name, latest.version) == (f"scope-{i}", "2.0.0"), where
            entry = store.get_entry(t, e, "shared", "1.0.0")
            assert entry is not None
            assert (entry.artifact.tenant_id, entry.artifact.environment, entry.etag) == (t, e, etags[i]), (
                where
            )
            assert store.versions(t, e, "shared") == ["2.0.0", "1.0.0"], where
            listed = list(store.iter_all(t, e))
            assert [(a.artifact_id, a.version) for a in listed] == [
                (f"only-{i}", "1.0.0"),
                ("shared", "2.0.0"),
                ("shared", "1.0.0"),
            ], where
            assert {(a.tenant_id, a.environment, a.name) for a in listed} == {(t, e, f"scope-{i}")}, where
            assert len(list(store.iter_all(t, e, status=versioned.live_status))) == 3, where
            for j in range(len(scopes)):
                if j != i:
                    assert store.get(t, e, f"only-{j}") is None, where
                    assert list(store.iter_all(t, e, artifact_id=f"only-{j}")) == [], where
            kind_specific = _kind_specific(versioned, t, e)
            assert kind_specific, where
            assert {(a.tenant_id, a.environment, a.name) for a in kind_specific} == {(t, e, f"scope-{i}")}, (
                where
            )
            if store.supports_history:
                history = store.history(t, e, "shared", "1.0.0")
                assert [r.revision for r in history] == list(range(1, i + 2)), where
                assert store.get_revision(t, e, "shared", "1.0.0", i + 2) is None, where
                first = store.get_revision(t, e, "shared", "1.0.0", 1)
                assert first is not None
                assert (first.tenant_id, first.environment) == (t, e), where

        # Conditional writes and deletes never act on another scope's key.
        (t0, e0), (t1, e1) = scopes[0], scopes[1]
        with pytest.raises(ConflictError):
            store.put(versioned.changed(store.require(t1, e1, "shared", "1.0.0"), "x"), if_match=etags[0])
        with pytest.raises(ConflictError):
            store.delete(t1, e1, "shared", "1.0.0", if_match=etags[0])
        store.put(versioned.make(t1, e1, "only-0", "1.0.0"), create_only=True)
        assert store.delete(t0, e0, "shared") is True
        assert store.get(t0, e0, "shared") is None
        for t, e in scopes[1:]:
            assert store.versions(t, e, "shared") == ["2.0.0", "1.0.0"]
        assert store.get(t0, e0, "only-0") is not None

    def test_scope_isolation_of_job_runs(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        scopes = _scopes(tenant)
        etags: list[str] = []
        common: dict[str, Any] = {
            "job_type": "validation",
            "status": "succeeded",
            "job_definition_id": "jd",
            "dataset_type": "billing",
            "dagster_run_id": "dr",
            "asset_key": "billing/invoices",
            "partition_key": "p",
        }
        for i, (t, e) in enumerate(scopes):
            etags.append(
                store.put(make_run(t, e, "shared", submitted_at=BASE_TIME, message=f"scope-{i}", **common))
            )
            store.put(
                make_run(
                    t,
                    e,
                    f"only-{i}",
                    job_type="profiling",
                    status="pending",
                    submitted_at=BASE_TIME,
                    message=f"scope-{i}",
                )
            )

        filters: list[dict[str, Any]] = [{}] + [{k: v} for k, v in common.items()] + [{"since": BASE_TIME}]
        for i, (t, e) in enumerate(scopes):
            where = f"scope {i} ({t}/{e})"
            shared = store.get(t, e, "shared")
            assert shared is not None
            assert (shared.tenant_id, shared.environment, shared.message) == (t, e, f"scope-{i}"), where
            for f in filters:
                found = list(store.list(t, e, **f))
                assert {(r.tenant_id, r.environment, r.message) for r in found} == {(t, e, f"scope-{i}")}, (
                    where,
                    f,
                )
                assert len(found) == (2 if set(f) <= {"since"} else 1), (where, f)
            assert sorted(r.job_id for r in store.list_by_tenant(t, e)) == [f"only-{i}", "shared"], where
            for j in range(len(scopes)):
                if j != i:
                    assert store.get(t, e, f"only-{j}") is None, where
        # list_by_tenant(tenant) spans the tenant's environments and nothing else.
        assert sorted((r.environment, r.job_id) for r in store.list_by_tenant(tenant)) == [
            ("dev", "only-0"),
            ("dev", "shared"),
            ("dev-eu", "only-1"),
            ("dev-eu", "shared"),
        ]
        assert {r.tenant_id for r in store.list_by_tenant(tenant + "-x")} == {tenant + "-x"}
        assert {r.tenant_id for r in store.list_by_tenant(tenant.upper())} == {tenant.upper()}

        (t0, e0), (t1, e1) = scopes[0], scopes[1]
        other = store.get(t1, e1, "shared")
        assert other is not None
        with pytest.raises(ConflictError):
            store.put(replace_fields(other, message="lost"), if_match=etags[0])
        with pytest.raises(ConflictError):
            store.delete(t1, e1, "shared", if_match=etags[0])
        store.put(make_run(t1, e1, "only-0", status="pending"), create_only=True)
        assert store.delete(t0, e0, "shared") is True
        for t, e in scopes[1:]:
            assert store.get(t, e, "shared") is not None

    def test_same_document_in_two_scopes_has_independent_history(self, stores: Stores, tenant: str) -> None:
        store = stores.contracts
        a = make_contract(tenant, "dev", "c1")
        b = make_contract(tenant, "prod", "c1")
        store.put(a)
        store.put(b)
        store.put(replace_fields(a, description="changed in dev only"))
        assert store.require(tenant, "prod", "c1") == b
        assert canon(store.require(tenant, "dev", "c1")) != canon(b)

    # -- listing scopes -------------------------------------------------------------------------
    def test_list_scopes_names_every_scope_with_content_and_only_those(
        self, stores: Stores, tenant: str
    ) -> None:
        from dq_stores.scope import Scope
        from dq_stores.testing.builders import make_action_profile, make_job_definition

        other = tenant + "-x"
        assert stores.list_scopes(tenant=tenant) == []
        stores.contracts.put(make_contract(tenant, "dev", "c1"))
        stores.job_definitions.put(make_job_definition(tenant, "dev-eu", "j1"))
        stores.action_profiles.put(make_action_profile(tenant.upper(), "dev", "p1"))
        stores.job_runs.put(make_run(other, "prod", "r1", submitted_at=BASE_TIME))
        assert stores.list_scopes(tenant=tenant) == [Scope(tenant, "dev"), Scope(tenant, "dev-eu")]
        assert stores.list_scopes(tenant=tenant, environment="dev-eu") == [Scope(tenant, "dev-eu")]
        assert stores.list_scopes(tenant=other) == [Scope(other, "prod")]
        assert stores.list_scopes(tenant=tenant.upper()) == [Scope(tenant.upper(), "dev")]
        assert stores.list_scopes(tenant=tenant + "-nope") == []
        if stores.contracts.supports_listing_all_scopes:
            self._check_listing_all_scopes(stores, tenant, other)
        # Per kind: only scopes holding that kind.
        assert stores.contracts.list_scopes(tenant=tenant) == [Scope(tenant, "dev")]
        assert stores.job_definitions.list_scopes(tenant=tenant) == [Scope(tenant, "dev-eu")]
        assert stores.action_profiles.list_scopes(tenant=tenant) == []
        assert stores.job_runs.list_scopes(tenant=other) == [Scope(other, "prod")]
        assert stores.job_runs.list_scopes(tenant=tenant) == []
        with pytest.raises(InvalidArtifactError):
            stores.list_scopes(tenant="../etc")
        with pytest.raises(InvalidArtifactError):
            stores.contracts.list_scopes(environment="a/b")

    @staticmethod
    def _check_listing_all_scopes(stores: Stores, tenant: str, other: str) -> None:
        from dq_stores.scope import Scope

        everything = stores.list_scopes()
        assert {Scope(tenant, "dev"), Scope(tenant, "dev-eu"), Scope(other, "prod")} <= set(everything)
        assert everything == sorted(everything, key=lambda s: (s.tenant, s.environment))
        assert Scope(other, "prod") in stores.list_scopes(environment="prod")
        assert Scope(tenant, "dev") not in stores.list_scopes(environment="prod")

    # -- validation of ids and scopes -----------------------------------------------------------
    @pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
    def test_invalid_ids_and_scopes_are_refused(self, stores: Stores, tenant: str, bad: Any) -> None:
        calls: list[Call] = []
        t, e = tenant, ENV
        for kind in ("contracts", "job_definitions", "action_profiles"):
            calls += _versioned_calls(versioned_case(stores, kind), t, e, bad)
        c, j, p, r = stores.contracts, stores.job_definitions, stores.action_profiles, stores.job_runs
        run = make_run(t, e, "good").model_dump(mode="json", exclude_unset=True)
        calls += [
            (
                "contracts.get_latest_for_dataset(tenant)",
                lambda: c.get_latest_for_dataset(bad, e, "x"),
                ("tenant",),
            ),
            (
                "contracts.get_latest_for_dataset(env)",
                lambda: c.get_latest_for_dataset(t, bad, "x"),
                ("environment",),
            ),
            (
                "job_definitions.list_by_tags(tenant)",
                lambda: list(j.list_by_tags(bad, e, ["x"])),
                ("tenant",),
            ),
            ("action_profiles.list_by_type(env)", lambda: list(p.list_by_type(t, bad)), ("environment",)),
            ("job_runs.get(tenant)", lambda: r.get(bad, e, "a"), ("tenant",)),
            ("job_runs.get(environment)", lambda: r.get(t, bad, "a"), ("environment",)),
            ("job_runs.get(job_id)", lambda: r.get(t, e, bad), ("job_id",)),
            ("job_runs.get_entry(job_id)", lambda: r.get_entry(t, e, bad), ("job_id",)),
            ("job_runs.list(tenant)", lambda: r.list(bad, e), ("tenant",)),
            ("job_runs.list(environment)", lambda: r.list(t, bad), ("environment",)),
            (
                "job_runs.list(job_definition_id=)",
                lambda: r.list(t, e, job_definition_id=bad),
                ("job_definition_id",),
            ),
            ("job_runs.list_by_tenant(tenant)", lambda: list(r.list_by_tenant(bad)), ("tenant",)),
            (
                "job_runs.list_by_tenant(environment)",
                lambda: list(r.list_by_tenant(t, bad)),
                ("environment",),
            ),
            ("job_runs.delete(tenant)", lambda: r.delete(bad, e, "a"), ("tenant",)),
            ("job_runs.delete(job_id)", lambda: r.delete(t, e, bad), ("job_id",)),
            ("job_runs.put(tenant_id)", lambda: r.put({**run, "tenant_id": bad}), ("tenant_id",)),
            ("job_runs.put(environment)", lambda: r.put({**run, "environment": bad}), ("environment",)),
            ("job_runs.put(job_id)", lambda: r.put({**run, "job_id": bad}), ("job_id",)),
            (
                "job_runs.put(job_definition_id)",
                lambda: r.put({**run, "job_definition_id": bad}),
                ("job_definition_id",),
            ),
            (
                "job_runs.put(contract.contract_id)",
                lambda: r.put({**run, "contract": {"contract_id": bad}}),
                ("contract_id",),
            ),
        ]

        problems: list[str] = []
        for what, call, fields in calls:
            try:
                call()
            except InvalidArtifactError as exc:
                named = exc.field or ""
                if named not in fields and named.rsplit(".", 1)[-1] not in fields:
                    problems.append(f"{what}: refused, but names field {exc.field!r} (expected {fields})")
            except Exception as exc:  # any other error is exactly what this test reports
                problems.append(f"{what}: raised {type(exc).__name__}: {exc}")
            else:
                problems.append(f"{what}: accepted")
        assert not problems, f"{len(problems)} of {len(calls)} calls misbehaved:\n" + "\n".join(problems)
        # Nothing was stored by any refused put.
        for kind in ("contracts", "job_definitions", "action_profiles"):
            assert versioned_case(stores, kind).store.list(t, e).items == []
        assert r.list(t, e).items == []
