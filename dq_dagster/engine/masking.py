"""PII masking of the values a report shows (failing-value samples, top values, min / max).

A column is PII when its contract says so (``ColumnContract.is_pii``). Reports are stored and
shown in the Dagster UI, so every value of such a column is masked before it enters a report.
Masking here is one-way and keeps only what helps triage: the first character and, for an
address, the domain. No frame-level logic here.
"""

from __future__ import annotations

from collections.abc import Iterable

from dq_stores.models.common import JsonScalar

__all__ = ["MASK", "mask_value", "mask_values"]

MASK = "***"


def mask_value(value: JsonScalar | None) -> JsonScalar | None:
    """``john.doe@example.com`` -> ``j***@example.com``; any other value -> ``***``; None stays.

    The domain is kept only when it looks like one (a dot, no spaces), so a malformed address
    such as ``jane doe@`` shows nothing but the mask.
    """
    if value is None:
        return None
    if isinstance(value, str):
        at = value.rfind("@")
        domain = value[at + 1 :]
        if at > 0 and "." in domain and not any(ch.isspace() for ch in value):
            return value[0] + MASK + value[at:]
    return MASK


def mask_values(values: Iterable[JsonScalar | None]) -> list[JsonScalar | None]:
    return [mask_value(v) for v in values]
