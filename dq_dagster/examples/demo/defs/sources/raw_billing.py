"""The demo's raw billing data, partitioned by the tenants the stores hold for ``billing`` (the
same tenants the component in ``../billing/defs.yaml`` serves).
"""

from dq_dagster.component import tenant_partitions
from dq_dagster.examples.sources import raw_billing_asset

raw_billing = raw_billing_asset(tenant_partitions("billing", environment="prod"))
