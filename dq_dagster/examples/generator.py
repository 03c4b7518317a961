"""Deterministic billing data with known, injected defects, and the billing contract it matches.

``generate_billing(rows, seed)`` returns a polars frame with the columns of the billing contract and
a ``DefectCounts`` that says exactly how many rows of each defect were injected, so tests and
benchmarks can compare a validation report rule by rule. Every defect lands on its own rows (a
seeded permutation is cut into disjoint segments), so each defect moves exactly the rules it names.

This module only makes data and the matching contract: no validation logic and no Dagster here.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from datetime import date
from os import PathLike
from pathlib import Path

import numpy as np
import polars as pl

from dq_stores.models import DataContract

__all__ = [
    "BILLING_COLUMNS",
    "NET_RULE_ID",
    "DefectCounts",
    "DefectRates",
    "billing_contract",
    "generate_billing",
    "write_billing_csv",
]

BILLING_COLUMNS = (
    "invoice_id",
    "customer_email",
    "currency",
    "gross_amount",
    "tax_amount",
    "net_amount",
    "invoice_date",
    "status",
)

NET_RULE_ID = "net_equals_gross_minus_tax"
"""Rule id of the cross-column rule ``billing_contract()`` binds (an ``expression`` template)."""

_FIRST = ("anna", "ben", "carla", "dario", "eva", "farid", "greta", "hugo", "ines", "jonas",
          "karin", "lars", "mia", "nils", "olga", "paul", "rosa", "sven", "tara", "umut")  # fmt: skip
_LAST = ("meyer", "schmidt", "rossi", "dubois", "novak", "jensen", "silva", "kowalski",
         "smith", "garcia", "muller", "bianchi", "martin", "berg", "costa", "weber")  # fmt: skip
_DOMAINS = ("example.com", "example.org", "mail.test", "billing.example", "corp.example.net")
_CURRENCIES = ("EUR", "USD", "GBP")
_CURRENCY_P = (0.6, 0.3, 0.1)
_STATUSES = ("open", "paid", "void")
_STATUS_P = (0.3, 0.65, 0.05)
_TAX_RATES = np.array([0.0, 0.05, 0.1, 0.2])
_UNKNOWN_CURRENCIES = ("JPY", "CHF", "XXX", "EURO")
_MIXED_STATUSES = ("Paid", "OPEN", "Void")
_BASE_DATE = date(2024, 1, 1)
_MAX_ROWS = 90_000_000  # ids are INV- plus 8 digits


@dataclass(frozen=True)
class DefectRates:
    """Share of rows carrying each defect (counts are ``floor(rows * rate)``)."""

    null_invoice_ids: float = 0.001
    malformed_invoice_ids: float = 0.002
    duplicate_invoice_ids: float = 0.002
    exact_duplicate_rows: float = 0.001
    null_emails: float = 0.01
    bad_emails: float = 0.01
    long_emails: float = 0.001
    unknown_currencies: float = 0.003
    lowercase_currencies: float = 0.005
    padded_currencies: float = 0.002
    negative_amounts: float = 0.005
    net_mismatches: float = 0.004
    null_net_amounts: float = 0.002
    mixed_case_statuses: float = 0.003
    null_statuses: float = 0.01

    @classmethod
    def none(cls) -> DefectRates:
        """No defects at all: every rule passes."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True)
class DefectCounts:
    """Rows carrying each injected defect; every defect is on rows of its own.

    ``duplicate_invoice_ids`` rows take the id of another (clean) row; ``exact_duplicate_rows``
    rows copy another clean row whole. Each source row has one copy, so ids shared by two rows
    number ``2 * (duplicate_invoice_ids + exact_duplicate_rows)``.
    """

    rows: int
    null_invoice_ids: int
    malformed_invoice_ids: int
    duplicate_invoice_ids: int
    exact_duplicate_rows: int
    null_emails: int
    bad_emails: int
    long_emails: int
    unknown_currencies: int
    lowercase_currencies: int
    padded_currencies: int
    negative_amounts: int
    net_mismatches: int
    null_net_amounts: int
    mixed_case_statuses: int
    null_statuses: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def rows_sharing_an_id(self) -> int:
        return 2 * (self.duplicate_invoice_ids + self.exact_duplicate_rows)

    def expected_failures(self) -> dict[str, int]:
        """Failed count per rule id of ``billing_contract()`` (rules not listed: 0).

        Uniqueness counts every row whose value occurs more than once, as the engine does.
        """
        return {
            "primary_key.not_null": self.null_invoice_ids,
            "primary_key.unique": self.rows_sharing_an_id,
            "invoice_id.not_null": self.null_invoice_ids,
            "invoice_id.unique": self.rows_sharing_an_id,
            "invoice_id.regex": self.malformed_invoice_ids,
            "customer_email.not_null": self.null_emails,
            "customer_email.regex": self.bad_emails,
            "customer_email.max_length": self.long_emails,
            "currency.allowed_values": (
                self.unknown_currencies + self.lowercase_currencies + self.padded_currencies
            ),
            "gross_amount.min_value": self.negative_amounts,
            "tax_amount.min_value": self.negative_amounts,
            "net_amount.min_value": self.negative_amounts,
            "net_amount.not_null": self.null_net_amounts,
            "status.allowed_values": self.mixed_case_statuses,
            NET_RULE_ID: self.net_mismatches,
        }

    @property
    def rows_failing_hard_rules(self) -> int:
        """Rows failing at least one (hard) rule of ``billing_contract()``: defects are disjoint."""
        return (
            self.null_invoice_ids
            + self.malformed_invoice_ids
            + self.rows_sharing_an_id
            + self.null_emails
            + self.bad_emails
            + self.long_emails
            + self.unknown_currencies
            + self.lowercase_currencies
            + self.padded_currencies
            + self.negative_amounts
            + self.net_mismatches
            + self.null_net_amounts
            + self.mixed_case_statuses
        )

    def expected_cleansing(self) -> dict[str, int]:
        """Rows cleansing rejects, by reason: copies go, the first occurrence stays."""
        return {
            "null_primary_key": self.null_invoice_ids,
            "exact_duplicate": self.exact_duplicate_rows,
            "duplicate_primary_key": self.duplicate_invoice_ids,
        }


def _mixed_seed(seed: int, tenant: str) -> list[int]:
    # hash() is salted per process; sha256 keeps the data identical across runs and machines.
    digest = hashlib.sha256(tenant.encode("utf-8")).digest()
    return [seed & 0xFFFFFFFFFFFFFFFF, int.from_bytes(digest[:8], "big")]


def _pick(values: tuple[str, ...], idx: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.String).gather(idx)


def generate_billing(
    rows: int,
    seed: int,
    tenant: str = "TNT-001",
    *,
    rates: DefectRates | None = None,
) -> tuple[pl.DataFrame, DefectCounts]:
    """A billing frame of ``rows`` rows and the exact counts of the defects injected into it.

    The same ``(rows, seed, tenant, rates)`` always gives the same frame; ``tenant`` is mixed into
    the seed, so each tenant (partition) gets data of its own. Columns: ``invoice_id``
    (``INV-`` + 8 digits), ``customer_email``, ``currency``, ``gross_amount``, ``tax_amount``,
    ``net_amount`` (Float64, 2 decimals, net = gross - tax), ``invoice_date`` (Date), ``status``.
    """
    if rows < 0 or rows > _MAX_ROWS:
        raise ValueError(f"rows must be between 0 and {_MAX_ROWS}, got {rows}")
    rates = rates or DefectRates()
    counts = {f.name: int(rows * getattr(rates, f.name)) for f in fields(rates)}
    # Each duplicate needs a clean source row of its own, reserved next to the defect segments.
    reserved = sum(counts.values()) + counts["duplicate_invoice_ids"] + counts["exact_duplicate_rows"]
    if reserved > rows:
        raise ValueError(f"defect rates need {reserved} rows, more than the {rows} generated")

    rng = np.random.default_rng(_mixed_seed(seed, tenant))
    start = int(rng.integers(0, 10**8 - rows)) if rows else 0
    id_num = np.arange(start, start + rows, dtype=np.int64)
    invoice_id = pl.Series("n", id_num).cast(pl.String).str.zfill(8)
    invoice_id = ("INV-" + invoice_id).alias("invoice_id")

    first = _pick(_FIRST, rng.integers(0, len(_FIRST), rows))
    last = _pick(_LAST, rng.integers(0, len(_LAST), rows))
    num = pl.Series(rng.integers(1, 1000, rows)).cast(pl.String)
    domain = _pick(_DOMAINS, rng.integers(0, len(_DOMAINS), rows))
    email = (first + "." + last + num + "@" + domain).alias("customer_email")

    currency = _pick(_CURRENCIES, rng.choice(len(_CURRENCIES), rows, p=_CURRENCY_P))
    gross = rng.integers(100, 1_000_000, rows) / 100.0
    tax = np.round(gross * _TAX_RATES[rng.integers(0, len(_TAX_RATES), rows)], 2)
    net = np.round(gross - tax, 2)
    days = rng.integers(0, 366, rows)
    status = _pick(_STATUSES, rng.choice(len(_STATUSES), rows, p=_STATUS_P))

    # Disjoint segments of one permutation: segment k holds the rows of defect k.
    perm = rng.permutation(rows)
    seg: dict[str, np.ndarray] = {}
    pos = 0
    for name in [*counts, "dup_id_source", "exact_source"]:
        n = counts.get(name)
        if n is None:
            n = counts["duplicate_invoice_ids" if name == "dup_id_source" else "exact_duplicate_rows"]
        seg[name] = np.sort(perm[pos : pos + n])
        pos += n

    def scatter(s: pl.Series, idx: np.ndarray, values: pl.Series | list[str | None]) -> pl.Series:
        if len(idx) == 0:
            return s
        vals = values if isinstance(values, pl.Series) else pl.Series(values, dtype=s.dtype)
        return s.scatter(idx, vals)

    idx = seg["null_invoice_ids"]
    invoice_id = scatter(invoice_id, idx, [None] * len(idx))
    idx = seg["malformed_invoice_ids"]
    invoice_id = scatter(invoice_id, idx, ("inv-" + pl.Series(id_num[idx]).cast(pl.String)))

    idx = seg["null_emails"]
    email = scatter(email, idx, [None] * len(idx))
    idx = seg["bad_emails"]
    f, la = first.gather(idx), last.gather(idx)
    bad_kinds = (
        f + "." + la + ".example.com",  # no @
        f + "@",  # no domain
        f + " " + la + "@example.com",  # a space
        f + "." + la + "@example.COM",  # upper-case top-level domain
        f + "." + la + "@@example.org",  # two @
    )
    for k, bad in enumerate(bad_kinds):
        email = scatter(email, idx[k :: len(bad_kinds)], bad[k :: len(bad_kinds)])
    idx = seg["long_emails"]
    email = scatter(email, idx, ("x" * 250 + "." + last.gather(idx) + "@example.com"))

    idx = seg["unknown_currencies"]
    currency = scatter(currency, idx, _pick(_UNKNOWN_CURRENCIES, np.arange(len(idx)) % 4))
    idx = seg["lowercase_currencies"]
    currency = scatter(currency, idx, currency.gather(idx).str.to_lowercase())
    idx = seg["padded_currencies"]
    pads = _pick((" ", "  ", "\t"), np.arange(len(idx)) % 3)
    currency = scatter(currency, idx, pads + currency.gather(idx) + pads)

    # A credit note: all three amounts negative, tax > 0 before negation so all three fail.
    idx = seg["negative_amounts"]
    tax[idx] = np.round(gross[idx] * 0.2, 2)
    net[idx] = np.round(gross[idx] - tax[idx], 2)
    gross[idx], tax[idx], net[idx] = -gross[idx], -tax[idx], -net[idx]
    # Net off by at least 1.00 (and upwards, so it stays >= 0): only the expression rule fails.
    idx = seg["net_mismatches"]
    net[idx] = np.round(net[idx] + rng.integers(100, 10_000, len(idx)) / 100.0, 2)
    net_s = pl.Series("net_amount", net)
    idx = seg["null_net_amounts"]
    net_s = scatter(net_s, idx, pl.Series([None] * len(idx), dtype=pl.Float64))

    idx = seg["mixed_case_statuses"]
    status = scatter(status, idx, _pick(_MIXED_STATUSES, np.arange(len(idx)) % 3))
    idx = seg["null_statuses"]
    status = scatter(status, idx, [None] * len(idx))

    df = pl.DataFrame(
        [
            invoice_id.alias("invoice_id"),
            email.alias("customer_email"),
            currency.alias("currency"),
            pl.Series("gross_amount", gross),
            pl.Series("tax_amount", tax),
            net_s,
            _dates(days),
            status.alias("status"),
        ]
    )

    # Copies come last, from clean source rows, so they duplicate nothing but what they name.
    src, dst = seg["dup_id_source"], seg["duplicate_invoice_ids"]
    if len(dst):
        ids = df.get_column("invoice_id").scatter(dst, df.get_column("invoice_id").gather(src))
        df = df.with_columns(ids)
    src, dst = seg["exact_source"], seg["exact_duplicate_rows"]
    if len(dst):
        take = np.arange(rows)
        take[dst] = src
        df = df[take]
    return df, DefectCounts(rows=rows, **counts)


def _dates(days: np.ndarray) -> pl.Series:
    base = (_BASE_DATE - date(1970, 1, 1)).days
    return pl.Series("invoice_date", days.astype(np.int32) + base, dtype=pl.Int32).cast(pl.Date)


def write_billing_csv(
    path: str | PathLike[str],
    rows: int,
    seed: int,
    tenant: str = "TNT-001",
    *,
    rates: DefectRates | None = None,
) -> DefectCounts:
    """Write ``generate_billing(rows, seed, tenant)`` as CSV (ISO dates, empty = null)."""
    df, counts = generate_billing(rows, seed, tenant, rates=rates)
    df.write_csv(Path(path), date_format="%Y-%m-%d")
    return counts


def billing_contract(tenant: str = "TNT-001", environment: str = "prod") -> DataContract:
    """The billing contract (as in the canonical fixture) plus a cross-column expression rule.

    ``NET_RULE_ID`` checks ``net_amount == gross_amount - tax_amount`` within a cent.
    """
    return DataContract.model_validate(
        {
            "contract_id": "billing-contract",
            "tenant_id": tenant,
            "environment": environment,
            "version": "2.1.0",
            "name": "Billing invoices",
            "description": "Invoices delivered daily by the billing system.",
            "datasets": [
                {
                    "dataset_contract_id": "billing-dataset",
                    "dataset_type": "billing",
                    "tenant_id": tenant,
                    "environment": environment,
                    "version": "2.1.0",
                    "owner": "billing-data-team",
                    "classification": "confidential",
                    "primary_keys": ["invoice_id"],
                    "columns": [
                        {
                            "column_id": "invoice_id",
                            "data_type": "string",
                            "required": True,
                            "constraints": {"required": True, "unique": True, "regex": "^INV-[0-9]{8}$"},
                        },
                        {
                            "column_id": "customer_email",
                            "data_type": "string",
                            "required": True,
                            "sensitivity_tags": ["pii", "gdpr:personal_data"],
                            "constraints": {
                                "required": True,
                                "regex": "^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$",
                                "max_length": 254,
                            },
                        },
                        {
                            "column_id": "currency",
                            "data_type": "string",
                            "required": True,
                            "constraints": {"required": True, "allowed_values": ["EUR", "USD", "GBP"]},
                        },
                        {
                            "column_id": "gross_amount",
                            "data_type": "decimal",
                            "required": True,
                            "constraints": {"required": True, "min_value": 0},
                        },
                        {
                            "column_id": "tax_amount",
                            "data_type": "decimal",
                            "required": True,
                            "constraints": {"required": True, "min_value": 0},
                        },
                        {
                            "column_id": "net_amount",
                            "data_type": "decimal",
                            "required": True,
                            "constraints": {"required": True, "min_value": 0},
                            "profiling_expectations": [{"metric": "null_ratio", "max_threshold": 0.01}],
                        },
                        {
                            "column_id": "invoice_date",
                            "data_type": "date",
                            "required": True,
                            "format": "ISO-8601",
                            "constraints": {"required": True},
                        },
                        {
                            "column_id": "status",
                            "data_type": "string",
                            "required": False,
                            "constraints": {"allowed_values": ["open", "paid", "void"]},
                        },
                    ],
                    "quality_slos": [{"metric": "hard_failure_rate", "target": 0.01, "period_days": 30}],
                }
            ],
            "rule_templates": [
                {
                    "template_id": "net-equals-gross-minus-tax",
                    "name": "Net equals gross minus tax",
                    "rule_type": "expression",
                    "description": "net_amount = gross_amount - tax_amount, within a cent",
                    "parameters": {
                        "expression": "abs(net_amount - (gross_amount - tax_amount)) <= {tolerance}",
                        "tolerance": 0.01,
                    },
                }
            ],
            "rule_bindings": [
                {
                    "template_id": "net-equals-gross-minus-tax",
                    "binding_id": NET_RULE_ID,
                    "dataset_contract_id": "billing-dataset",
                    "column_id": "net_amount",
                }
            ],
            "lifecycle": {"status": "approved", "created_by": "alice", "approved_by": "bob"},
            "metadata": {"ticket": "DQ-42"},
        }
    )
