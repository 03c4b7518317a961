"""Moved to ``dq_stores.writer`` (it imports no Dagster); this module keeps old imports working."""

from dq_stores.writer import CLEANSED_DATA as CLEANSED_DATA
from dq_stores.writer import JOB_ID_PREFIX as JOB_ID_PREFIX
from dq_stores.writer import PARQUET as PARQUET
from dq_stores.writer import FrameLibrary as FrameLibrary
from dq_stores.writer import JobRunWriter as JobRunWriter
from dq_stores.writer import OutputOrigin as OutputOrigin
from dq_stores.writer import ResultTable as ResultTable
from dq_stores.writer import UnsupportedOutputError as UnsupportedOutputError
from dq_stores.writer import WrittenRun as WrittenRun
from dq_stores.writer import derive_job_id as derive_job_id
from dq_stores.writer import frame_library as frame_library
from dq_stores.writer import frame_to_parquet as frame_to_parquet
from dq_stores.writer import parquet_to_frame as parquet_to_frame

__all__ = [
    "CLEANSED_DATA",
    "JOB_ID_PREFIX",
    "PARQUET",
    "FrameLibrary",
    "JobRunWriter",
    "OutputOrigin",
    "ResultTable",
    "UnsupportedOutputError",
    "WrittenRun",
    "derive_job_id",
    "frame_library",
    "frame_to_parquet",
    "parquet_to_frame",
]
