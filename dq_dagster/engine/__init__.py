"""The contract-driven data-quality engine: validation, cleansing and profiling driven only by a
``DataContract`` / ``DatasetContract``, run where the data lives.

Three engines give the same reports: polars in memory (``validate``, ``profile``, ``cleanse`` on
polars or pandas frames), polars batch by batch for CSV / Parquet files larger than memory
(``validate_file``, bounded memory), and SQL pushed down into a database (``validate_table``,
``profile_table``). ``validate_source`` / ``profile_source`` pick the engine from the source
(a frame, a ``FileSource``, a ``TableSource``); ``metadata["engine"]`` records which ran.

Pure functions: no Dagster and no store access here (the Dagster layer calls these and records
their reports). ``compile_rules`` exposes the rule ids a contract yields, e.g. for declaring asset
checks before any data exists.
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
from dq_dagster.engine.pushdown import SqlEngineError as SqlEngineError
from dq_dagster.engine.pushdown import validate_table as validate_table
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
from dq_dagster.engine.rules import regex_problem as regex_problem
from dq_dagster.engine.sources import FileSource as FileSource
from dq_dagster.engine.sources import SourceError as SourceError
from dq_dagster.engine.sources import TableSource as TableSource
from dq_dagster.engine.sources import engine_for as engine_for
from dq_dagster.engine.sources import profile_source as profile_source
from dq_dagster.engine.sources import validate_source as validate_source
from dq_dagster.engine.sqlprofile import profile_table as profile_table
from dq_dagster.engine.streaming import validate_file as validate_file
from dq_dagster.engine.validate import report_status as report_status
from dq_dagster.engine.validate import validate as validate
