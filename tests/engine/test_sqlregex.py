"""The regex translation is exact: for every pattern, the database matches exactly the strings
polars matches, row by row, on strings full of what dialects disagree on (newlines before ``$``,
Unicode digits and spaces, upper / lower case beyond ASCII, punctuation, emoji)."""

from __future__ import annotations

import random

import polars as pl
import pytest
import sqlalchemy as sa

from dq_dagster.engine.sqlregex import Untranslatable, translate
from tests.engine.conftest import SqlDb

PATTERNS = [
    r"^ab$",
    r"a.b",
    r"^\d+$",
    r"\D",
    r"^\s*$",
    r"\S\s\S",
    r"^\w+$",
    r"\W",
    r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
    r"^INV-[0-9]{8}$",
    r"[[:alpha:]]{2}",
    r"[[:^digit:]]",
    r"^(ab|cd)+$",
    r"(?:x|y)?z{1,3}?",
    r"\p{Lu}",
    r"\p{Greek}",
    r"[\p{L}&&[^a-z]]",
    r"\A[a-c]\z",
    r"\.|\$|\^",
    r"[\-\]\\]",
    r"^.{2,4}$",
    r"é|ü|Ä",
    r"\x41\x{1F600}",
    r"\n",
    r"^$",
    r"(?i)ab",
    r"\bab\b",
]
ALPHABET = [
    *"abcdzxyABCD0189 -.$^@_\u00e9\u00c4\u00fc\u00a0\u2003\t\n\r\u0661\u0662\u0663\u00b2\u20ac\U0001f600INV",
    *("\u212a", "\u00df", "\u1e9e", "\u03a3\u03c3\u03c2", "\u0660"),
]


def strings(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = [
        "",
        "ab",
        "ab\n",
        "a\nb",
        "INV-12345678",
        "inv-12345678",
        "x@y.io",
        "x @y.io",
        "x@y.COM",
        "\u0661\u0662\u0663",
        "12",
        "A😀",
    ]
    while len(out) < n:
        out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))))
    return out


def test_every_translated_pattern_matches_the_same_strings(sql_db: SqlDb) -> None:
    values = strings(1500)
    df = pl.DataFrame({"i": list(range(len(values))), "s": values})
    table = sql_db.load(df, "rx")
    flavor = "postgres" if sql_db.engine.dialect.name == "postgresql" else "re2"
    translated = 0
    with sql_db.engine.connect() as conn:
        for pattern in PATTERNS:
            try:
                target = translate(pattern, flavor)
            except Untranslatable:
                continue
            translated += 1
            expected = df.select(pl.col("s").str.contains(pattern)).to_series().to_list()
            if flavor == "postgres":
                sql = f"SELECT i, s ~ :p FROM {table} ORDER BY i"
            else:
                sql = f"SELECT i, regexp_matches(s, :p) FROM {table} ORDER BY i"
            got = [bool(m) for _, m in conn.execute(sa.text(sql), {"p": target})]
            wrong = [values[i] for i in range(len(values)) if got[i] != expected[i]]
            assert not wrong, (pattern, target[:80], wrong[:5])
    assert translated >= len(PATTERNS) - 3


@pytest.mark.parametrize(
    "pattern", [r"(?i)ab", r"(?m)^a$", r"\bword", r"a{1,256}", "(?s).", r"[a-c--b]", "\x00"]
)
def test_patterns_without_an_exact_translation_are_refused(pattern: str) -> None:
    for flavor in ("postgres", "re2"):
        with pytest.raises(Untranslatable):
            translate(pattern, flavor)


def test_unknown_flavors_are_refused() -> None:
    with pytest.raises(Untranslatable, match="mysql"):
        translate("^a$", "mysql")
