"""Every OpenLineage event ``EMIT_LINEAGE`` posts validates against the OpenLineage JSON schemas.

The events come from real DQ runs: the engine validates, cleanses and profiles the billing
generator's data under the bundled billing contract, the writer records the job runs in a SQLite
store, ``run_actions`` posts the event to an HTTP server on 127.0.0.1, and the body received is
what is validated. The schemas are the OpenLineage spec files in ``data/openlineage_spec`` (the
client wheel ships only classes generated from them; see ``SOURCE.md`` there), resolved locally
with ``referencing`` (no network): the event against its ``schemaURL``, every facet against its
own ``_schemaURL``, with ``uuid``, ``date-time`` and ``uri`` formats checked. The validator is
shown to reject broken events, so a passing run means something.

Also here: no module of ``dq_stores`` / ``dq_dagster`` imports a private ``dagster._*`` module, in
any spelling (``import``, ``from dagster import _x``, ``importlib.import_module("dagster._x")``).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from openlineage.client.event_v2 import RunEvent
from openlineage.client.generated import (
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    error_message_run,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    test_run,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dq_dagster.actions import ActionEvent, ActionSettings, DQRunFacts, build_openlineage_event, run_actions
from dq_dagster.engine import cleanse, profile, validate
from dq_dagster.examples.generator import billing_contract, generate_billing
from dq_stores.models import (
    ActionOutcomeStatus,
    AnomalyCheck,
    ColumnProfile,
    JobRun,
    ProfilingSnapshot,
    Report,
    RuleResult,
    Severity,
    ValidationReport,
)
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore
from dq_stores.testing.builders import make_job_definition
from dq_stores.writer import JobRunWriter, OutputOrigin

pytestmark = pytest.mark.dagster

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).resolve().parent / "data" / "openlineage_spec"
TENANT = "TNT-001"
ENV = "prod"
SETTINGS = ActionSettings(timeout_seconds=2, backoff_seconds=0.05, max_backoff_seconds=0.1)


# -- the schemas, resolved locally -------------------------------------------------------------------


def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(SPEC.rglob("*.json")):
        contents = json.loads(path.read_text())
        resources.append(
            (contents["$id"], Resource.from_contents(contents, default_specification=DRAFT202012))
        )
    # No ``retrieve``: a reference outside these files is an error, never a download.
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    # jsonschema checks date-time and uri only with optional packages; these two are explicit.
    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme) and bool(parts.netloc or parts.path) and " " not in value

    return checker


FORMATS = _format_checker()


def _errors_against(instance: Any, url: str) -> list[str]:
    base = url.split("#", 1)[0]
    try:
        REGISTRY.get_or_retrieve(base)
    except Exception:
        return [f"{url}: no such schema in {SPEC.relative_to(ROOT)}"]
    validator = jsonschema.Draft202012Validator({"$ref": url}, registry=REGISTRY, format_checker=FORMATS)
    return [
        f"{url} at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def _facet_maps(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "run.facets", event.get("run", {}).get("facets") or {}
    yield "job.facets", event.get("job", {}).get("facets") or {}
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(side) or []):
            yield f"{side}[{i}].facets", dataset.get("facets") or {}
            yield f"{side}[{i}].{extra}", dataset.get(extra) or {}


def schema_errors(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` breaks the OpenLineage schemas (empty: it validates)."""
    url = event.get("schemaURL")
    if not isinstance(url, str):
        return ["no schemaURL"]
    errors = _errors_against(event, url)
    for where, facets in _facet_maps(event):
        for name, facet in facets.items():
            facet_url = facet.get("_schemaURL") if isinstance(facet, dict) else None
            if not isinstance(facet_url, str):
                errors.append(f"{where}.{name}: no _schemaURL")
                continue
            facet_errors = _errors_against(facet, facet_url)
            errors += [f"{where}.{name}: {e}" for e in facet_errors]
            if facet_errors:
                continue
            # The facet file also names the key the facet goes under.
            root = REGISTRY.contents(facet_url.split("#", 1)[0])
            if name not in root.get("properties", {}):
                errors.append(f"{where}.{name}: {facet_url} declares no facet named {name!r}")
    return errors


# -- a real HTTP receiver -----------------------------------------------------------------------------


@dataclass
class Receiver:
    base: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.paths.append(self.path)
            state.bodies.append(json.loads(raw))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- real DQ runs -------------------------------------------------------------------------------------


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    with open_stores(f"sqlite:///{tmp_path}/dq.db") as opened:
        opened.contracts.put(billing_contract(TENANT, ENV))
        opened.action_profiles.put(
            {
                "action_profile_id": "lineage",
                "name": "lineage",
                "tenant_id": TENANT,
                "environment": ENV,
                "version": "1.0.0",
                "actions": [{"action_type": "EMIT_LINEAGE", "parameters": {"namespace": "dq-test"}}],
            }
        )
        yield opened


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    """Validation, cleansing and profiling reports of the engine on 3,000 generated billing rows
    (with the generator's default defects, so some rules fail).
    """
    frame, _ = generate_billing(3_000, seed=13, tenant=TENANT)
    contract = billing_contract(TENANT, ENV)
    snapshot = profile(frame, contract, dataset_type="billing")
    # The anomaly detector fills these from the run history; one of each state is enough here.
    snapshot = snapshot.model_copy(
        update={
            "anomaly_checks": [
                AnomalyCheck(
                    metric="row_count", observed=3000, expected_low=2500, expected_high=3500, history_size=14
                ),
                AnomalyCheck(
                    metric="null_ratio",
                    column="net_amount",
                    observed=0.2,
                    expected_low=0.0,
                    expected_high=0.01,
                    history_size=14,
                    anomalous=True,
                ),
                AnomalyCheck(
                    metric="mean", column="gross_amount", observed=10.5, history_size=2, evaluated=False
                ),
            ]
        }
    )
    return {
        "validation": validate(frame, contract, dataset_type="billing"),
        "cleansing": cleanse(frame, contract, dataset_type="billing").report,
        "profiling": snapshot,
    }


def _record(stores: Stores, report: Report, run_id: str, step: str) -> JobRun:
    writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(TENANT, ENV)))
    origin = OutputOrigin(run_id=run_id, step_key=step, asset_key="billing", partition_key=TENANT)
    return writer.write(report, origin, job_definition_id="billing-daily").job_run


def _emit(stores: Stores, receiver: Receiver, runs: list[Report], **params: Any) -> dict[str, Any]:
    """Record ``runs`` as one Dagster run's job runs, run its actions, return the event posted."""
    if params:
        profile_ = stores.action_profiles.get(TENANT, ENV, "lineage")
        assert profile_ is not None
        data = profile_.model_dump(mode="json")
        data["version"] = "1.0.1"
        data["actions"][0]["parameters"].update(params)
        stores.action_profiles.put(data)
    definition = make_job_definition(
        TENANT,
        ENV,
        "billing-daily",
        contract_id="billing-contract",
        on_success={"action_profile_id": "lineage"},
        on_failure={"action_profile_id": "lineage"},
    )
    stores.job_definitions.put(definition)
    run_id = str(uuid.uuid4())
    job_runs = [_record(stores, report, run_id, report.report_type) for report in runs]
    before = len(receiver.bodies)
    outcomes = run_actions(
        stores,
        TENANT,
        ENV,
        [run.job_id for run in job_runs],
        definition,
        settings=SETTINGS,
        environ={"OPENLINEAGE_URL": receiver.base},
        dagster_run_id=run_id,
    )
    assert [(o.action_type, o.status) for o in outcomes] == [
        ("EMIT_LINEAGE", ActionOutcomeStatus.SUCCEEDED)
    ], outcomes
    assert receiver.paths[-1] == "/api/v1/lineage" and len(receiver.bodies) == before + 1
    event = receiver.bodies[-1]
    assert event["run"]["runId"] == run_id
    return event


RUNS = {
    "validation": ["validation"],
    "cleansing": ["cleansing"],
    "profiling": ["profiling"],
    "all three": ["validation", "cleansing", "profiling"],
}


@pytest.mark.parametrize("kind", list(RUNS))
def test_every_emitted_event_validates_against_the_openlineage_schemas(
    kind: str, stores: Stores, receiver: Receiver, reports: dict[str, Report]
) -> None:
    event = _emit(stores, receiver, [reports[name] for name in RUNS[kind]])
    assert schema_errors(event) == []
    assert event["schemaURL"] == RunEvent._get_schema()
    assert event["job"] == {"namespace": "dq-test", "name": "billing-daily"}
    (dataset,) = event["inputs"]
    assert dataset["name"] == "billing" and dataset["namespace"] == "dq-test"
    rows_in = 3_000
    assert dataset["inputFacets"]["inputStatistics"]["rowCount"] == rows_in


def test_validation_assertions_carry_every_rule_with_severity_counts_and_expected_values(
    stores: Stores, receiver: Receiver, reports: dict[str, Report]
) -> None:
    report = reports["validation"]
    assert isinstance(report, ValidationReport)
    assert report.failed_rules, "the generator's defects should fail some rules"
    event = _emit(stores, receiver, [report])
    assert schema_errors(event) == []
    assert event["eventType"] == (
        "FAIL" if any(r.severity == Severity.HARD for r in report.failed_rules) else "COMPLETE"
    )
    (dataset,) = event["inputs"]
    facet = dataset["inputFacets"]["dataQualityAssertions"]
    # Also among the dataset facets, where Marquez reads it.
    assert dataset["facets"]["dataQualityAssertions"] == facet
    assert facet["_producer"] == SETTINGS.producer
    by_id = {a["assertion"]: a for a in facet["assertions"]}
    assert list(by_id) == [r.rule_id for r in report.rules]  # one per rule, in report order
    for rule in report.rules:
        assertion = by_id[rule.rule_id]
        assert assertion["success"] is rule.passed
        assert assertion.get("column") == rule.column
        assert assertion["severity"] == {"hard": "error", "soft": "warn"}[Severity(rule.severity).value]
        assert (assertion["expected"], assertion["actual"]) == ("0", str(rule.failed_count))
        assert assertion["params"]["failed_count"] == rule.failed_count
        assert assertion["params"]["checked_count"] == rule.checked_count
        assert assertion["params"]["rule_type"] == rule.rule_type
    # Failing-value samples may be personal data: never in the event.
    for rule in report.failed_rules:
        for value in rule.sample:
            if isinstance(value, str) and len(value) > 3:
                assert value not in json.dumps(event)

    tests = {t["name"]: t for t in event["run"]["facets"]["test"]["tests"]}
    assert set(tests) == set(by_id)
    failed = report.failed_rules[0]
    assert tests[failed.rule_id]["status"] == "fail"
    assert tests[failed.rule_id]["type"] == failed.rule_type
    assert tests[failed.rule_id]["actual"] == str(failed.failed_count)
    if event["eventType"] == "FAIL":
        assert event["run"]["facets"]["errorMessage"]["message"]


def test_profiling_metrics_expectations_and_anomaly_checks(
    stores: Stores, receiver: Receiver, reports: dict[str, Report]
) -> None:
    snapshot = reports["profiling"]
    assert isinstance(snapshot, ProfilingSnapshot)
    event = _emit(stores, receiver, [snapshot])
    assert schema_errors(event) == []
    (dataset,) = event["inputs"]
    metrics = dataset["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == snapshot.row_count == 3_000
    assert set(metrics["columnMetrics"]) == {c.column for c in snapshot.columns}
    for col in snapshot.columns:
        got = metrics["columnMetrics"][col.column]
        assert (got["nullCount"], got["distinctCount"], got["count"]) == (
            col.null_count,
            col.distinct_count,
            col.count,
        )
        numeric = isinstance(col.min, int | float) and not isinstance(col.min, bool)
        assert ("min" in got) is numeric
        if numeric:
            assert (got["min"], got["max"]) == (col.min, col.max)
    gross = metrics["columnMetrics"]["gross_amount"]
    assert "min" in gross and "max" in gross  # a numeric column has its bounds

    expectation = snapshot.expectations[0]
    assertions = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
    (assertion,) = [a for a in assertions if a["assertion"] == f"{expectation.column}.{expectation.metric}"]
    assert assertion["success"] is expectation.passed and assertion["column"] == expectation.column
    assert assertion["expected"] == "<= 0.01"

    tests = {t["name"]: t for t in event["run"]["facets"]["test"]["tests"]}
    assert tests["anomaly:row_count"] | {"params": None} == {
        "name": "anomaly:row_count",
        "status": "pass",
        "severity": "warn",
        "type": "anomaly",
        "expected": ">= 2500 and <= 3500",
        "actual": "3000",
        "params": None,
    }
    assert tests["anomaly:net_amount.null_ratio"]["status"] == "fail"
    assert tests["anomaly:gross_amount.mean"]["status"] == "skip"  # too little history: not evaluated


def test_cleansing_adds_the_cleansed_output(
    stores: Stores, receiver: Receiver, reports: dict[str, Report]
) -> None:
    event = _emit(stores, receiver, [reports["cleansing"]])
    assert schema_errors(event) == []
    (output,) = event["outputs"]
    assert output["name"] == "billing.cleansed"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == reports["cleansing"].rows_out  # type: ignore[union-attr]


def test_include_payload_false_sends_no_dq_facets(
    stores: Stores, receiver: Receiver, reports: dict[str, Report]
) -> None:
    event = _emit(stores, receiver, [reports["profiling"]], include_payload=False)
    assert schema_errors(event) == []
    (dataset,) = event["inputs"]
    assert "inputFacets" not in dataset and "facets" not in dataset
    assert "test" not in (event["run"].get("facets") or {})


# -- the README's example -----------------------------------------------------------------------------


def _readme_example() -> dict[str, Any]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### What `EMIT_LINEAGE` emits", 1)[1]
    match = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert match is not None, "the section has a json example"
    example: dict[str, Any] = json.loads(match.group(1))
    return example


def _excerpt_of(part: Any, whole: Any, path: str = "") -> list[str]:
    """Where ``part`` is not an excerpt of ``whole`` (dict keys and list items may be left out)."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{path}: not an object"]
        return [
            e
            for k, v in part.items()
            for e in (_excerpt_of(v, whole[k], f"{path}.{k}") if k in whole else [f"{path}.{k}: not emitted"])
        ]
    if isinstance(part, list):
        if not isinstance(whole, list):
            return [f"{path}: not a list"]
        return [
            f"{path}[{i}]: no such item"
            for i, item in enumerate(part)
            if all(_excerpt_of(item, w) for w in whole)
        ]
    return [] if part == whole else [f"{path}: {part!r} != {whole!r}"]


def test_the_readme_example_is_valid_and_what_the_action_emits() -> None:
    example = _readme_example()
    assert schema_errors(example) == []
    report = ValidationReport(
        dataset_type="billing",
        status="failed",
        row_count=20000,
        rows_failed=12,
        pass_rate=0.9994,
        rules=[
            RuleResult(
                rule_id="invoice_id.unique",
                rule_type="unique",
                column="invoice_id",
                checked_count=20000,
                failed_count=12,
                failure_rate=0.0006,
                passed=False,
                description="invoice_id is unique",
            )
        ],
    )
    snapshot = ProfilingSnapshot(
        dataset_type="billing",
        row_count=20000,
        columns=[
            ColumnProfile(
                column="gross_amount",
                count=20000,
                null_count=0,
                null_ratio=0.0,
                distinct_count=19890,
                min=0.5,
                max=9999.74,
            )
        ],
    )
    facts = DQRunFacts(
        tenant="TNT-001",
        environment="prod",
        job_definition=make_job_definition(
            "TNT-001", "prod", "billing-daily-checks", contract_id="billing-contract"
        ),
        job_runs=(),
        reports=(report, snapshot),
        event=ActionEvent.FAILURE,
        reasons=("validation: 1 hard rule(s) failed",),
        occurred_at=datetime(2024, 5, 1, 6, 0, 12, tzinfo=UTC),
        dagster_run_id="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
    )
    emitted = build_openlineage_event(facts)
    assert _excerpt_of(example, emitted) == []
    # The facets the README leaves out of its excerpt are the ones it says it leaves out.
    assert (
        emitted["inputs"][0]["facets"]["dataQualityAssertions"]
        == (emitted["inputs"][0]["inputFacets"]["dataQualityAssertions"])
    )


# -- the validator bites ------------------------------------------------------------------------------


def _sample_event(reports: dict[str, Report]) -> dict[str, Any]:
    facts = DQRunFacts(
        tenant=TENANT,
        environment=ENV,
        job_definition=make_job_definition(TENANT, ENV, "billing-daily", contract_id="billing-contract"),
        job_runs=(),
        reports=tuple(reports.values()),
        event=ActionEvent.FAILURE,
        reasons=("validation: 1 hard rule(s) failed",),
        occurred_at=datetime(2024, 5, 1, 6, 0, 12, tzinfo=UTC),
        dagster_run_id="not-a-uuid-so-a-uuid5",
    )
    return build_openlineage_event(facts, {"namespace": "dq-test"}, SETTINGS)


def _break(event: dict[str, Any], how: str) -> None:
    dataset = event["inputs"][0]
    if how == "runId not a UUID":
        event["run"]["runId"] = "run-1"
    elif how == "eventTime without a time":
        event["eventTime"] = "2024-05-01"
    elif how == "unknown eventType":
        event["eventType"] = "DONE"
    elif how == "assertion without success":
        del dataset["inputFacets"]["dataQualityAssertions"]["assertions"][0]["success"]
    elif how == "nullCount not a number":
        next(iter(dataset["inputFacets"]["dataQualityMetrics"]["columnMetrics"].values()))["nullCount"] = "3"
    elif how == "test without status":
        del event["run"]["facets"]["test"]["tests"][0]["status"]
    elif how == "facet without _producer":
        del event["run"]["facets"]["errorMessage"]["_producer"]
    elif how == "facet of an unknown spec version":
        facet = dataset["inputFacets"]["dataQualityMetrics"]
        facet["_schemaURL"] = facet["_schemaURL"].replace("/1-0-3/", "/9-9-9/")
    elif how == "facet under a name its schema does not declare":
        dataset["inputFacets"]["qualityMetrics"] = dataset["inputFacets"].pop("dataQualityMetrics")
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "runId not a UUID",
        "eventTime without a time",
        "unknown eventType",
        "assertion without success",
        "nullCount not a number",
        "test without status",
        "facet without _producer",
        "facet of an unknown spec version",
        "facet under a name its schema does not declare",
    ],
)
def test_the_validator_rejects_a_broken_event(how: str, reports: dict[str, Report]) -> None:
    event = _sample_event(reports)
    assert schema_errors(event) == []
    broken = copy.deepcopy(event)
    _break(broken, how)
    assert schema_errors(broken) != []


def test_the_facets_we_emit_are_the_spec_versions_vendored_here() -> None:
    # After a client upgrade moves a facet to a new spec version, copy the new schema files.
    classes = [
        RunEvent,
        data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
        data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet,
        input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
        error_message_run.ErrorMessageRunFacet,
        test_run.TestRunFacet,
    ]
    ids = {json.loads(p.read_text())["$id"] for p in SPEC.rglob("*.json")}
    assert [c._get_schema().split("#")[0] for c in classes if c._get_schema().split("#")[0] not in ids] == []


# -- no private Dagster module anywhere ---------------------------------------------------------------


def _private_dagster_imports(source: str) -> list[str]:
    """``dagster._*`` modules (and private names of ``dagster``) that ``source`` imports, in any
    spelling, ``if TYPE_CHECKING:`` blocks included (they pin the private layout just the same).
    """
    found: list[str] = []

    def private(module: str) -> bool:
        parts = module.split(".")
        return parts[0] == "dagster" and any(p.startswith("_") for p in parts[1:])

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if private(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if private(node.module):
                found.append(node.module)
            elif node.module == "dagster":
                found += [f"dagster.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            first = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and private(first.value)
            ):
                found.append(first.value)
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import dagster._core.storage",
        "from dagster._utils.schedules import cron_string_iterator",
        "from dagster import _check",
        "from dagster import AssetKey, _seven as seven",
        "import importlib\nimportlib.import_module('dagster._serdes')",
        "__import__('dagster._core')",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dagster._core.events import X",
        "def f():\n    import dagster._core.definitions",
    ],
)
def test_the_scan_finds_each_spelling_of_a_private_import(source: str) -> None:
    assert _private_dagster_imports(source) != []


def test_public_imports_are_not_flagged() -> None:
    assert (
        _private_dagster_imports("import dagster\nfrom dagster import AssetKey, asset\nimport dagster_azure")
        == []
    )


def test_no_module_imports_a_private_dagster_module() -> None:
    modules = [p for folder in ("dq_stores", "dq_dagster") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(modules) > 50  # the scan saw the packages
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules
        for name in _private_dagster_imports(path.read_text())
    ]
    assert offenders == []


def test_the_lineage_core_imports_no_dagster() -> None:
    tree = ast.parse((ROOT / "dq_dagster" / "actions" / "lineage.py").read_text())
    imported = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert sorted(m for m in imported if m.split(".")[0].startswith("dagster")) == []
