"""The demo's raw data asset, as a factory: a billing delivery per tenant from
``dq_dagster.examples.generator`` (deterministic per tenant and seed, with realistic defects), or
the blob a blob-event run was started for. ``raw_billing_asset(partitions)`` is what the demo's
``defs/sources/raw_billing.py`` and the tests build it with.
"""

# No ``from __future__ import annotations``: Dagster reads the asset's annotations at runtime.

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from pydantic import Field

from dq_dagster.examples.generator import generate_billing
from dq_dagster.triggers.blob import BlobSource
from dq_dagster.triggers.request import DQRunRequest

__all__ = ["RawBillingConfig", "raw_billing_asset"]


class RawBillingConfig(Config):
    """How much billing data to generate for a tenant partition (all optional: a launch with only
    a partition works).
    """

    rows: int = Field(default=20_000, ge=0, le=10_000_000, description="Rows of the delivery.")
    seed: int = Field(
        default=20240501,
        description="Generator seed (mixed with the tenant): the same seed gives the same data and defects.",
    )


def raw_billing_asset(partitions_def: PartitionsDefinition, group_name: str = "billing") -> AssetsDefinition:
    """The ``raw_billing`` asset, partitioned by ``partitions_def`` (the tenants)."""

    @asset(
        partitions_def=partitions_def,
        group_name=group_name,
        kinds={"polars"},
        description=(
            "A daily billing delivery of the tenant: generated, deterministic per tenant and seed, with "
            "realistic defects (null and malformed ids, duplicates, bad e-mails, unknown currencies, "
            "negative amounts, net != gross - tax, ...)."
        ),
        metadata={"dq/dataset_type": "billing"},
    )
    def raw_billing(context: AssetExecutionContext, config: RawBillingConfig) -> pl.DataFrame:
        request = DQRunRequest.from_tags(context.run.tags)
        if request is not None and request.blob_uri is not None:
            # A run requested by the blob-event sensor reads the blob that triggered it (CSV/Parquet).
            blob = BlobSource().read(request.blob_uri, etag=request.blob_etag, try_parse_dates=True)
            context.add_output_metadata(
                {"dagster/row_count": MetadataValue.int(blob.height), "dq/input": request.blob_uri}
            )
            return blob
        frame, defects = generate_billing(config.rows, config.seed, context.partition_key)
        context.add_output_metadata(
            {
                "dagster/row_count": MetadataValue.int(frame.height),
                "dq/injected_defects": MetadataValue.json(defects.as_dict()),
            }
        )
        return frame

    return raw_billing
