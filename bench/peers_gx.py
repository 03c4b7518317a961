"""Row 10b: great-expectations 1.x as a validation peer, used only when it is installed (it is not a
dependency of this project; see bench/README.md).

An ephemeral GX context with a pandas data source; the suite holds the billing contract's rules
as GX's built-in expectations. GX has no built-in row-level expression check for pandas data, so
the cross-column rule (net = gross - tax within a cent) is left out: GX does one rule less than
ours. The frame is converted to pandas once, outside the timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from bench.validation import CURRENCIES, EMAIL_RE, INVOICE_RE, STATUSES


def gx_validator(df: pl.DataFrame) -> tuple[Callable[[], Any], Callable[[Any], dict[str, int]]]:
    """(a function running the GX suite over ``df`` (as pandas) once and returning GX's result,
    a function turning that result into failed counts by our rule ids)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    frame = df.to_pandas()
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("billing")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="billing"))
    rules: dict[str, Any] = {
        "invoice_id.not_null": gxe.ExpectColumnValuesToNotBeNull(column="invoice_id"),
        "invoice_id.unique": gxe.ExpectColumnValuesToBeUnique(column="invoice_id"),
        "invoice_id.regex": gxe.ExpectColumnValuesToMatchRegex(column="invoice_id", regex=INVOICE_RE),
        "customer_email.not_null": gxe.ExpectColumnValuesToNotBeNull(column="customer_email"),
        "customer_email.regex": gxe.ExpectColumnValuesToMatchRegex(column="customer_email", regex=EMAIL_RE),
        "customer_email.max_length": gxe.ExpectColumnValueLengthsToBeBetween(
            column="customer_email", max_value=254
        ),
        "currency.not_null": gxe.ExpectColumnValuesToNotBeNull(column="currency"),
        "currency.allowed_values": gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=CURRENCIES),
        "invoice_date.not_null": gxe.ExpectColumnValuesToNotBeNull(column="invoice_date"),
        "status.allowed_values": gxe.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),
    }
    for column in ("gross_amount", "tax_amount", "net_amount"):
        rules[f"{column}.not_null"] = gxe.ExpectColumnValuesToNotBeNull(column=column)
        rules[f"{column}.min_value"] = gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0)
    by_key = {}
    for rule_id, expectation in rules.items():
        suite.add_expectation(expectation)
        by_key[(type(expectation).__name__, expectation.column)] = rule_id
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name="billing")
    )

    def run() -> Any:
        return definition.run(batch_parameters={"dataframe": frame})

    def failures(result: Any) -> dict[str, int]:
        counts = {}
        for item in result.results:
            config = item.expectation_config
            expectation = config.to_domain_obj()
            rule_id = by_key[(type(expectation).__name__, config.kwargs["column"])]
            counts[rule_id] = int(item.result.get("unexpected_count") or 0)
        return counts

    return run, failures
