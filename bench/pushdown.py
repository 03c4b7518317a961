"""Row 13: 10M billing rows in Postgres, validated in place by the SQL engine.

13a: ``validate_table`` (the whole report: counts, rows failing hard rules, bounded samples)
against the same rules hand-written as one SQL query (``FILTER`` aggregates, duplicates from a
``GROUP BY`` joined back; counts only, no samples). 13b: the same against reading the table
into polars first (``COPY ... TO STDOUT`` as CSV, the fastest path without extra drivers, then
``validate``). The table is loaded by ``COPY`` into its own schema (untimed) and dropped after.
A large row: ``make bench-large``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import polars as pl
import sqlalchemy as sa

from bench.harness import Config, Result, check, compare, latency, skipped
from bench.services import Services
from bench.sqldata import load_frame
from dq_dagster.engine import compile_rules, validate, validate_table
from dq_dagster.examples.generator import NET_RULE_ID, billing_contract, generate_billing

SEED = 42

HANDWRITTEN = """
WITH dup AS (
    SELECT invoice_id FROM {t} WHERE invoice_id IS NOT NULL GROUP BY invoice_id HAVING count(*) > 1
), flagged AS (
    SELECT b.*, d.invoice_id IS NOT NULL AS is_dup,
           b.invoice_id !~ '^INV-[0-9]{{8}}$' AS bad_id,
           b.customer_email !~ '^[^@\\s]+@[^@\\s]+\\.[a-z]{{2,}}$' AS bad_email,
           length(b.customer_email) > 254 AS long_email,
           b.currency NOT IN ('EUR', 'USD', 'GBP') AS bad_currency,
           NOT (abs(b.net_amount - (b.gross_amount - b.tax_amount)) <= 0.01) AS bad_net
    FROM {t} b LEFT JOIN dup d ON b.invoice_id = d.invoice_id
)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE invoice_id IS NULL) AS "invoice_id.not_null",
       count(*) FILTER (WHERE is_dup) AS "invoice_id.unique",
       count(*) FILTER (WHERE bad_id) AS "invoice_id.regex",
       count(*) FILTER (WHERE customer_email IS NULL) AS "customer_email.not_null",
       count(*) FILTER (WHERE bad_email) AS "customer_email.regex",
       count(*) FILTER (WHERE long_email) AS "customer_email.max_length",
       count(*) FILTER (WHERE currency IS NULL) AS "currency.not_null",
       count(*) FILTER (WHERE bad_currency) AS "currency.allowed_values",
       count(*) FILTER (WHERE gross_amount IS NULL) AS "gross_amount.not_null",
       count(*) FILTER (WHERE gross_amount < 0) AS "gross_amount.min_value",
       count(*) FILTER (WHERE tax_amount IS NULL) AS "tax_amount.not_null",
       count(*) FILTER (WHERE tax_amount < 0) AS "tax_amount.min_value",
       count(*) FILTER (WHERE net_amount IS NULL) AS "net_amount.not_null",
       count(*) FILTER (WHERE net_amount < 0) AS "net_amount.min_value",
       count(*) FILTER (WHERE invoice_date IS NULL) AS "invoice_date.not_null",
       count(*) FILTER (WHERE status NOT IN ('open', 'paid', 'void')) AS "status.allowed_values",
       count(*) FILTER (WHERE bad_net) AS "{net}",
       count(*) FILTER (WHERE invoice_id IS NULL OR is_dup OR bad_id OR customer_email IS NULL
                        OR bad_email OR long_email OR currency IS NULL OR bad_currency
                        OR gross_amount IS NULL OR gross_amount < 0 OR tax_amount IS NULL
                        OR tax_amount < 0 OR net_amount IS NULL OR net_amount < 0
                        OR invoice_date IS NULL OR status NOT IN ('open', 'paid', 'void')
                        OR bad_net) AS rows_failed
FROM flagged
"""


def handwritten(engine: sa.Engine, table: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql(HANDWRITTEN.format(t=table, net=NET_RULE_ID)).mappings().one())


def read_into_polars(engine: sa.Engine, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    buffer = io.BytesIO()
    with engine.connect() as conn:
        cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} TO STDOUT (FORMAT csv, HEADER, NULL '\\N')") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    return pl.read_csv(buffer, schema=schema, null_values="\\N")


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    name = f"validate {config.pg_rows:,} billing rows in Postgres in place"
    if not services.pg_url:
        yield skipped("13a", name, "latency", "<= 1.3", services.pg_reason)
        return
    df, counts = generate_billing(config.pg_rows, SEED)
    plan = compile_rules(billing_contract())
    engine = sa.create_engine(services.pg_url)
    schema = f"dqbench_pushdown_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        load_frame(engine, "billing", df, schema=schema)
        table = f'"{schema}".billing'
        qualified = f"{schema}.billing"
        frame_schema = dict(df.schema)
        del df

        def ours() -> Any:
            return validate_table(engine, qualified, plan)

        def baseline() -> Any:
            return handwritten(engine, table)

        def via_polars() -> Any:
            return validate(read_into_polars(engine, table, frame_schema), plan)

        report, hand = ours(), baseline()
        by_rule = {r.rule_id: r.failed_count for r in report.rules}
        for rule_id, failed in hand.items():
            if rule_id in ("rows", "rows_failed"):
                continue
            check(
                by_rule[rule_id] == failed, f"{rule_id}: ours {by_rule[rule_id]}, hand-written SQL {failed}"
            )
        check(
            report.rows_failed == hand["rows_failed"] == counts.rows_failing_hard_rules, "rows failing differ"
        )
        polars_report = via_polars()
        check(
            [(r.rule_id, r.failed_count, r.checked_count) for r in polars_report.rules]
            == [(r.rule_id, r.failed_count, r.checked_count) for r in report.rules],
            "polars and SQL reports differ",
        )

        once = Config(**{**config.__dict__, "reps": config.large_reps, "warmup": 0})
        if only is None or "13" in only:
            result = Result(
                "13a",
                f"{name}: ours vs the same rules hand-written as one SQL query",
                "latency",
                "<= 1.3",
                1.3,
                baseline_name="the billing rules hand-written as one Postgres query (FILTER aggregates, "
                "duplicates by GROUP BY joined back), counts only",
            )
            ours_t, base_t = compare(ours, baseline, once, setup=lambda: None)
            yield latency(result, ours_t, base_t)
            result = Result(
                "13b",
                f"{name}: ours vs reading the table into polars first",
                "latency",
                "< 1 (faster)",
                0.999,
                baseline_name="COPY the table out as CSV into polars, then validate (the same report)",
            )
            ours_t, base_t = compare(ours, via_polars, once, setup=lambda: None)
            yield latency(result, ours_t, base_t)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()
