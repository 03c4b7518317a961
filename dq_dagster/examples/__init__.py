"""Bundled demo material: the deterministic billing data generator and its contract."""

from dq_dagster.examples.generator import (
    DefectCounts as DefectCounts,
)
from dq_dagster.examples.generator import (
    DefectRates as DefectRates,
)
from dq_dagster.examples.generator import (
    billing_contract as billing_contract,
)
from dq_dagster.examples.generator import (
    generate_billing as generate_billing,
)
from dq_dagster.examples.generator import (
    write_billing_csv as write_billing_csv,
)
