"""The contract-driven data-quality engine: validation, cleansing and profiling of polars (or
pandas) frames, driven only by a ``DataContract`` / ``DatasetContract``.

Pure functions on frames: no Dagster and no store access here (the Dagster layer calls these and
records their reports). ``compile_rules`` exposes the rule ids a contract yields, e.g. for
declaring asset checks before any data exists.
"""

from dq_dagster.engine.cleanse import (
    REJECT_REASON as REJECT_REASON,
)
from dq_dagster.engine.cleanse import (
    ROW_INDEX as ROW_INDEX,
)
from dq_dagster.engine.cleanse import (
    CleansingResult as CleansingResult,
)
from dq_dagster.engine.cleanse import (
    cleanse as cleanse,
)
from dq_dagster.engine.masking import mask_value as mask_value
from dq_dagster.engine.masking import mask_values as mask_values
from dq_dagster.engine.profile import profile as profile
from dq_dagster.engine.rules import (
    ContractRuleError as ContractRuleError,
)
from dq_dagster.engine.rules import (
    RulePlan as RulePlan,
)
from dq_dagster.engine.rules import (
    RuleSpec as RuleSpec,
)
from dq_dagster.engine.rules import (
    compile_rules as compile_rules,
)
from dq_dagster.engine.validate import report_status as report_status
from dq_dagster.engine.validate import validate as validate
