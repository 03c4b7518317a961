"""Stored SCHEDULED job definitions drive one Dagster sensor; MANUAL runs take the definition id.

Covers, on a SQLite store: the sensor follows a cron change made in the store without rebuilding
the sensor (or the code location), pausing and retiring stop runs at the next tick, run keys never
repeat across ticks (and a re-evaluation from an old cursor gives the same keys, which Dagster
dedups), no backfill on first sight, catch-up bound, timezones, the highest active version wins,
an unresolvable contract is skipped with a message while other definitions still run, tags /
partition / asset selection of the requested runs, and the manual run config inside a real run.
"""

# No ``from __future__ import annotations``: Dagster reads op parameter annotations at runtime.
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    OpExecutionContext,
    SensorDefinition,
    StaticPartitionsDefinition,
    build_sensor_context,
    job,
    op,
)

from dq_dagster.resources import DQStoresResource
from dq_dagster.schedules import (
    TAG_CONTRACT_ID,
    TAG_ENVIRONMENT,
    TAG_JOB_DEFINITION_ID,
    TAG_JOB_DEFINITION_VERSION,
    TAG_JOB_TYPES,
    TAG_SCHEDULED_TIME,
    TAG_TENANT,
    TAG_TRIGGER,
    DQRunRequest,
    JobDefinitionRunConfig,
    active_definitions,
    build_job_definition_sensor,
    dq_run_request,
    due_times,
    evaluate_schedules,
    manual_run_config,
    resolve_job_definition,
)
from dq_stores.errors import InvalidArtifactError, NotFoundError
from dq_stores.models import JobType, TriggerType
from dq_stores.registry import Stores, open_stores
from dq_stores.testing.builders import make_contract, make_job_definition, replace_fields

pytestmark = pytest.mark.dagster

ENV = "prod"
TENANTS = ["acme", "globex"]
T0 = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)

tenant_partitions = StaticPartitionsDefinition(TENANTS)


@op
def dq_step(context: OpExecutionContext) -> None:
    context.log.info(str(dq_run_request(context)))


@job(partitions_def=tenant_partitions)
def dq_job() -> None:
    dq_step()


class Clock:
    """The sensor's notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/dq.db"


@pytest.fixture
def stores(url: str) -> Iterator[Stores]:
    with open_stores(url) as opened:
        for tenant in TENANTS:
            opened.contracts.put(
                make_contract(tenant, ENV, "billing-contract", "1.0.0", dataset_types=["billing"])
            )
        yield opened


def scheduled(
    tenant: str,
    job_id: str = "billing-daily",
    cron: str = "*/10 * * * *",
    timezone: str = "UTC",
    **fields: Any,
) -> Any:
    definition = make_job_definition(
        tenant, ENV, job_id, trigger_type="SCHEDULED", contract_id="billing-contract", **fields
    )
    trigger = {"trigger_type": "SCHEDULED", "cron": cron, "timezone": timezone}
    return replace_fields(definition, trigger=trigger)


class Ticker:
    """Evaluates one sensor definition tick after tick, carrying the cursor like the daemon."""

    def __init__(self, sensor: SensorDefinition, url: str, clock: Clock) -> None:
        self.sensor = sensor
        self.url = url
        self.clock = clock
        self.cursor: str | None = None
        self.instance = DagsterInstance.ephemeral()
        self.repository = Definitions(jobs=[dq_job], sensors=[sensor]).get_repository_def()

    def tick(self, at: datetime, cursor: str | None = None, *, keep: bool = True) -> Any:
        self.clock.now = at
        with build_sensor_context(
            instance=self.instance,
            cursor=self.cursor if cursor is None else cursor,
            resources={"dq_stores": DQStoresResource(url=self.url)},
            repository_def=self.repository,
        ) as context:
            data = self.sensor.evaluate_tick(context)
        if keep:
            self.cursor = data.cursor
        return data


@pytest.fixture
def ticker(url: str, stores: Stores) -> Iterator[Ticker]:
    clock = Clock(T0)
    sensor = build_job_definition_sensor(dq_job, tenants=TENANTS, environment=ENV, clock=clock)
    ticker = Ticker(sensor, url, clock)
    yield ticker
    ticker.instance.dispose()


def keys(data: Any) -> list[str]:
    return [r.run_key for r in data.run_requests or []]


# -- the sensor follows the store -------------------------------------------------------------------


def test_a_cron_change_in_the_store_is_followed_without_rebuilding_the_sensor(
    ticker: Ticker, stores: Stores
) -> None:
    stores.job_definitions.put(scheduled("acme", cron="*/10 * * * *"))

    first = ticker.tick(T0)
    assert keys(first) == []  # first sight: no backfill of history
    assert first.skip_message == "nothing came due"

    second = ticker.tick(datetime(2024, 5, 1, 10, 25, tzinfo=UTC))
    assert keys(second) == [
        "dq-schedule:acme:prod:billing-daily:2024-05-01T10:10:00.000000Z",
        "dq-schedule:acme:prod:billing-daily:2024-05-01T10:20:00.000000Z",
    ]
    request = second.run_requests[0]
    assert request.partition_key == "acme"
    assert request.tags[TAG_TENANT] == "acme"
    assert request.tags[TAG_ENVIRONMENT] == ENV
    assert request.tags[TAG_JOB_DEFINITION_ID] == "billing-daily"
    assert request.tags[TAG_JOB_DEFINITION_VERSION] == "1.0.0"
    assert request.tags[TAG_TRIGGER] == "SCHEDULED"
    assert request.tags[TAG_SCHEDULED_TIME] == "2024-05-01T10:10:00.000000Z"
    assert request.tags[TAG_CONTRACT_ID] == "billing-contract"
    assert request.tags[TAG_JOB_TYPES] == "cleansing,profiling,validation"

    # Same version, new content: a new revision in the store. The sensor object is the same.
    stores.job_definitions.put(scheduled("acme", cron="5,35 * * * *"))
    third = ticker.tick(datetime(2024, 5, 1, 10, 40, tzinfo=UTC))
    assert keys(third) == ["dq-schedule:acme:prod:billing-daily:2024-05-01T10:35:00.000000Z"]

    # A new version with another cron supersedes the old one (highest active version wins).
    stores.job_definitions.put(scheduled("acme", cron="0 * * * *", version="1.1.0"))
    fourth = ticker.tick(datetime(2024, 5, 1, 11, 30, tzinfo=UTC))
    assert keys(fourth) == ["dq-schedule:acme:prod:billing-daily:2024-05-01T11:00:00.000000Z"]
    assert fourth.run_requests[0].tags[TAG_JOB_DEFINITION_VERSION] == "1.1.0"


def test_retiring_or_pausing_a_definition_stops_its_runs_at_the_next_tick(
    ticker: Ticker, stores: Stores
) -> None:
    stores.job_definitions.put(scheduled("acme"))
    stores.job_definitions.put(scheduled("globex"))
    ticker.tick(T0)
    assert len(keys(ticker.tick(datetime(2024, 5, 1, 10, 10, tzinfo=UTC)))) == 2
    # The tick fell exactly on the cron time; the next one must not ask for it again.
    assert keys(ticker.tick(datetime(2024, 5, 1, 10, 10, 5, tzinfo=UTC))) == []

    stores.job_definitions.put(scheduled("acme", status="retired"))
    stores.job_definitions.put(scheduled("globex", status="draft"))  # paused
    stopped = ticker.tick(datetime(2024, 5, 1, 11, 0, tzinfo=UTC))
    assert keys(stopped) == []
    assert json.loads(stopped.cursor)["defs"] == {}

    # Re-activated: it starts afresh from now, without catching up on the paused hour.
    stores.job_definitions.put(scheduled("globex", status="active"))
    assert keys(ticker.tick(datetime(2024, 5, 1, 11, 1, tzinfo=UTC))) == []
    assert keys(ticker.tick(datetime(2024, 5, 1, 11, 10, tzinfo=UTC))) == [
        "dq-schedule:globex:prod:billing-daily:2024-05-01T11:10:00.000000Z"
    ]


def test_run_keys_never_repeat_and_an_old_cursor_gives_the_same_keys(url: str, stores: Stores) -> None:
    clock = Clock(T0)
    sensor = build_job_definition_sensor(
        dq_job, tenants=TENANTS, environment=ENV, clock=clock, max_catchup=100
    )
    ticker = Ticker(sensor, url, clock)
    stores.job_definitions.put(scheduled("acme", cron="*/3 * * * *"))
    stores.job_definitions.put(scheduled("globex", job_id="hourly", cron="0 * * * *"))
    ticker.tick(T0)
    seen: list[str] = []
    cursors: list[str] = []
    now = T0
    for step in [1, 2, 7, 1, 11, 3, 3, 40, 5, 17]:  # uneven tick intervals, in minutes
        now += timedelta(minutes=step, seconds=step * 7 % 60)
        cursors.append(ticker.cursor or "")
        seen += keys(ticker.tick(now))
    assert len(seen) == len(set(seen))
    expected_acme = [
        f"dq-schedule:acme:prod:billing-daily:{t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
        for t in due_times("*/3 * * * *", "UTC", T0, now)
    ]
    assert [k for k in seen if ":acme:" in k] == expected_acme
    assert [k for k in seen if ":globex:" in k] == [
        "dq-schedule:globex:prod:hourly:2024-05-01T11:00:00.000000Z"
    ]

    # The daemon re-running a tick from an older cursor asks for the same keys again (Dagster
    # launches a run key once per sensor), never for new ones.
    replay = ticker.tick(now, cursor=cursors[3], keep=False)
    assert keys(replay) and set(keys(replay)) <= set(seen)
    ticker.instance.dispose()


def test_first_sight_does_not_backfill_and_catch_up_is_bounded(url: str, stores: Stores) -> None:
    stores.job_definitions.put(scheduled("acme", cron="* * * * *"))
    first = evaluate_schedules(stores, ["acme"], ENV, None, T0)
    assert first.runs == []
    assert "first seen" in first.notes[0]
    # The sensor was off for an hour: 60 times came due, the latest 5 are asked for.
    later = evaluate_schedules(stores, ["acme"], ENV, first.cursor, T0 + timedelta(hours=1), max_catchup=5)
    assert [r.request.scheduled_time for r in later.runs] == [
        datetime(2024, 5, 1, 10, 56, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 57, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 58, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 59, tzinfo=UTC),
        datetime(2024, 5, 1, 11, 0, tzinfo=UTC),
    ]
    assert "skipping 55" in later.warnings[0]


def test_cron_times_follow_the_definitions_timezone(stores: Stores) -> None:
    stores.job_definitions.put(scheduled("acme", cron="0 6 * * *", timezone="Europe/Berlin"))
    first = evaluate_schedules(stores, ["acme"], ENV, None, datetime(2024, 5, 1, 0, 0, tzinfo=UTC))
    later = evaluate_schedules(stores, ["acme"], ENV, first.cursor, datetime(2024, 5, 3, 0, 0, tzinfo=UTC))
    # 06:00 in Berlin is 04:00 UTC in summer time.
    assert [r.request.scheduled_time for r in later.runs] == [
        datetime(2024, 5, 1, 4, 0, tzinfo=UTC),
        datetime(2024, 5, 2, 4, 0, tzinfo=UTC),
    ]


def test_an_unresolvable_contract_is_skipped_with_a_message_and_others_still_run(
    ticker: Ticker, stores: Stores
) -> None:
    stores.job_definitions.put(scheduled("acme"))
    broken = make_job_definition(
        "globex", ENV, "broken", trigger_type="SCHEDULED", contract_id="no-such-contract"
    )
    stores.job_definitions.put(
        replace_fields(broken, trigger={"trigger_type": "SCHEDULED", "cron": "*/10 * * * *"})
    )
    wrong_dataset = replace_fields(
        scheduled("globex", job_id="wrong-dataset"),
        data_contract={"contract_id": "billing-contract", "dataset_contract_id": "nope"},
    )
    stores.job_definitions.put(wrong_dataset)
    ticker.tick(T0)
    data = ticker.tick(datetime(2024, 5, 1, 10, 10, tzinfo=UTC))
    assert keys(data) == ["dq-schedule:acme:prod:billing-daily:2024-05-01T10:10:00.000000Z"]

    evaluation = evaluate_schedules(
        stores, TENANTS, ENV, ticker.cursor, datetime(2024, 5, 1, 10, 20, tzinfo=UTC)
    )
    assert len(evaluation.runs) == 1
    messages = "\n".join(evaluation.warnings)
    assert "globex/prod/broken@1.0.0: skipped scheduled time(s) 2024-05-01T10:20:00.000000Z" in messages
    assert "contract no-such-contract (latest) does not exist in globex/prod" in messages
    assert "has no dataset contract nope" in messages

    # With nothing else due, the tick's skip reason carries the message.
    stores.job_definitions.put(scheduled("acme", status="retired"))
    quiet = ticker.tick(datetime(2024, 5, 1, 10, 30, tzinfo=UTC))
    assert keys(quiet) == []
    assert "no-such-contract" in (quiet.skip_message or "")


def test_the_highest_active_version_is_the_one_that_runs(stores: Stores) -> None:
    stores.job_definitions.put(scheduled("acme", cron="0 * * * *"))
    stores.job_definitions.put(scheduled("acme", cron="30 * * * *", version="2.0.0", status="draft"))
    assert [d.version for d in active_definitions(stores, "acme", ENV)] == ["1.0.0"]
    manual = make_job_definition("acme", ENV, "billing-daily", "1.10.0", contract_id="billing-contract")
    stores.job_definitions.put(manual)  # 1.10.0 > 1.0.0, MANUAL: the schedule stops
    assert active_definitions(stores, "acme", ENV) == [manual]
    assert active_definitions(stores, "acme", ENV, trigger_type=None) == [manual]
    assert active_definitions(stores, "acme", ENV, TriggerType.SCHEDULED) == []


def test_job_types_asset_selection_and_an_unpartitioned_job(url: str, stores: Stores) -> None:
    profiling = scheduled("acme", job_id="billing-profile", job_types=["profiling"])
    stores.job_definitions.put(profiling)

    @job
    def plain_job() -> None:
        dq_step()

    selected: list[DQRunRequest] = []

    def selection(request: DQRunRequest) -> list[AssetKey]:
        selected.append(request)
        return (
            [AssetKey("raw_billing"), AssetKey("billing_profile")] if request.runs(JobType.PROFILING) else []
        )

    clock = Clock(T0)
    sensor = build_job_definition_sensor(
        plain_job,
        tenants=["acme"],
        environment=ENV,
        name="plain",
        partition_key_fn=None,
        asset_selection_fn=selection,
        run_config_fn=lambda r: manual_run_config("dq_step", r.tenant, r.environment, r.job_definition_id),
        clock=clock,
    )
    resources = {"dq_stores": DQStoresResource(url=url)}
    with build_sensor_context(resources=resources) as context:
        first = sensor.evaluate_tick(context)
    assert not first.run_requests
    clock.now = T0 + timedelta(minutes=10)
    with build_sensor_context(cursor=first.cursor, resources=resources) as context:
        result = sensor.evaluate_tick(context)
    (request,) = result.run_requests or []
    assert request.partition_key is None
    assert request.tags[TAG_JOB_TYPES] == "profiling"
    assert request.asset_selection == [AssetKey("raw_billing"), AssetKey("billing_profile")]
    assert request.run_config == {
        "ops": {
            "dq_step": {
                "config": {"tenant": "acme", "environment": ENV, "job_definition_id": "billing-profile"}
            }
        }
    }
    assert selected[0].job_types == (JobType.PROFILING,)


def test_factory_arguments_are_checked() -> None:
    with pytest.raises(InvalidArtifactError):
        build_job_definition_sensor(dq_job, tenants="acme", environment=ENV)
    with pytest.raises(InvalidArtifactError):
        build_job_definition_sensor(dq_job, tenants=["../x"], environment=ENV)
    with pytest.raises(InvalidArtifactError):
        build_job_definition_sensor(dq_job, tenants=[], environment=ENV)


def test_a_foreign_cursor_starts_afresh_and_a_bad_cron_is_reported(stores: Stores) -> None:
    evaluation = evaluate_schedules(stores, ["acme"], ENV, "not json", T0)
    assert "not one this sensor wrote" in evaluation.warnings[0]
    # A cron that never fires (April 31st never comes) is refused when the definition is
    # validated, so it never reaches the store (nor a sensor that would warn every tick).
    with pytest.raises(ValueError, match="never fires"):
        scheduled("acme", cron="0 0 31 4 *")
    with pytest.raises(InvalidArtifactError, match="never fires"):
        list(due_times("0 0 31 4 *", "UTC", T0, T0 + timedelta(days=400)))
    with pytest.raises(InvalidArtifactError):
        list(due_times("61 * * * *", "UTC", T0, T0 + timedelta(hours=1)))


# -- manual runs ------------------------------------------------------------------------------------


def test_manual_run_config_resolves_the_definition_inside_a_real_run(url: str, stores: Stores) -> None:
    stores.job_definitions.put(
        make_job_definition(
            "acme", ENV, "billing-adhoc", contract_id="billing-contract", job_types=["validation"]
        )
    )
    seen: dict[str, Any] = {}

    @op
    def adhoc(
        context: OpExecutionContext, config: JobDefinitionRunConfig, dq_stores: DQStoresResource
    ) -> None:
        resolved = config.resolve(dq_stores.get_stores())
        seen["contract"] = resolved.contract.contract_id
        seen["dataset"] = resolved.dataset.dataset_type if resolved.dataset else None
        request = config.to_request(dq_stores.get_stores())
        seen["types"] = request.job_types
        seen["plain"] = dq_run_request(context, config)

    @job
    def manual_job() -> None:
        adhoc()

    result = manual_job.execute_in_process(
        run_config=manual_run_config("adhoc", "acme", ENV, "billing-adhoc"),
        resources={"dq_stores": DQStoresResource(url=url)},
    )
    assert result.success
    assert seen["contract"] == "billing-contract"
    assert seen["dataset"] == "billing"
    assert seen["types"] == (JobType.VALIDATION,)
    assert seen["plain"] == DQRunRequest("acme", ENV, "billing-adhoc")

    with pytest.raises(NotFoundError, match="job definition nope \\(latest\\) does not exist in acme/prod"):
        resolve_job_definition(stores, "acme", ENV, "nope")
    stores.job_definitions.put(
        make_job_definition("acme", ENV, "billing-adhoc", contract_id="billing-contract", status="retired")
    )
    with pytest.raises(NotFoundError, match="is retired"):
        resolve_job_definition(stores, "acme", ENV, "billing-adhoc", "1.0.0")


def test_the_tags_a_sensor_sets_reach_the_run(url: str, stores: Stores) -> None:
    request = DQRunRequest(
        "acme",
        ENV,
        "billing-daily",
        "1.0.0",
        job_types=(JobType.PROFILING,),
        trigger="SCHEDULED",
        scheduled_time=datetime(2024, 5, 1, 10, 10, tzinfo=UTC),
    )
    seen: list[DQRunRequest | None] = []

    @op
    def reads_tags(context: OpExecutionContext) -> None:
        seen.append(dq_run_request(context))

    @job
    def tagged() -> None:
        reads_tags()

    assert tagged.execute_in_process(tags=request.tags()).success
    assert seen == [request]
    assert seen[0] is not None and seen[0].runs("profiling") and not seen[0].runs(JobType.VALIDATION)
    assert DQRunRequest.from_tags({"other": "x"}) is None
    with pytest.raises(InvalidArtifactError):
        DQRunRequest.from_tags({**request.tags(), TAG_JOB_TYPES: "everything"})
    with pytest.raises(InvalidArtifactError):
        DQRunRequest.from_tags({**request.tags(), TAG_TENANT: "../other"})
