"""Moved to the ``dq_dagster.triggers`` package (pure cores + ``sensors``); this module keeps
``from dq_dagster.schedules import ...`` working.
"""

from dq_dagster.triggers.blob import BLOB_EVENT_SOURCES as BLOB_EVENT_SOURCES
from dq_dagster.triggers.blob import BlobItem as BlobItem
from dq_dagster.triggers.blob import BlobSource as BlobSource
from dq_dagster.triggers.blob import evaluate_blob_events as evaluate_blob_events
from dq_dagster.triggers.blob import read_raw_blob as read_raw_blob
from dq_dagster.triggers.cron import due_times as due_times
from dq_dagster.triggers.request import ALL_JOB_TYPES as ALL_JOB_TYPES
from dq_dagster.triggers.request import TAG_BLOB_CONTAINER as TAG_BLOB_CONTAINER
from dq_dagster.triggers.request import TAG_BLOB_ETAG as TAG_BLOB_ETAG
from dq_dagster.triggers.request import TAG_BLOB_NAME as TAG_BLOB_NAME
from dq_dagster.triggers.request import TAG_BLOB_URI as TAG_BLOB_URI
from dq_dagster.triggers.request import TAG_CONTRACT_ID as TAG_CONTRACT_ID
from dq_dagster.triggers.request import TAG_CONTRACT_VERSION as TAG_CONTRACT_VERSION
from dq_dagster.triggers.request import TAG_DATASET_CONTRACT_ID as TAG_DATASET_CONTRACT_ID
from dq_dagster.triggers.request import TAG_ENVIRONMENT as TAG_ENVIRONMENT
from dq_dagster.triggers.request import TAG_JOB_DEFINITION_ID as TAG_JOB_DEFINITION_ID
from dq_dagster.triggers.request import TAG_JOB_DEFINITION_VERSION as TAG_JOB_DEFINITION_VERSION
from dq_dagster.triggers.request import TAG_JOB_TYPES as TAG_JOB_TYPES
from dq_dagster.triggers.request import TAG_SCHEDULED_TIME as TAG_SCHEDULED_TIME
from dq_dagster.triggers.request import TAG_TENANT as TAG_TENANT
from dq_dagster.triggers.request import TAG_TRIGGER as TAG_TRIGGER
from dq_dagster.triggers.request import DQRunRequest as DQRunRequest
from dq_dagster.triggers.request import Evaluation as Evaluation
from dq_dagster.triggers.request import PlannedRun as PlannedRun
from dq_dagster.triggers.request import ResolvedJobDefinition as ResolvedJobDefinition
from dq_dagster.triggers.request import active_definitions as active_definitions
from dq_dagster.triggers.request import resolve_contract as resolve_contract
from dq_dagster.triggers.request import resolve_job_definition as resolve_job_definition
from dq_dagster.triggers.schedules import evaluate_schedules as evaluate_schedules
from dq_dagster.triggers.schedules import schedule_run_key as schedule_run_key
from dq_dagster.triggers.sensors import JobDefinitionRunConfig as JobDefinitionRunConfig
from dq_dagster.triggers.sensors import build_blob_event_sensor as build_blob_event_sensor
from dq_dagster.triggers.sensors import build_job_definition_sensor as build_job_definition_sensor
from dq_dagster.triggers.sensors import dq_run_request as dq_run_request
from dq_dagster.triggers.sensors import manual_run_config as manual_run_config
from dq_dagster.triggers.sensors import tenant_partition_key as tenant_partition_key
