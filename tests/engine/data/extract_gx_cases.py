"""Extract Great Expectations' own expectation test cases into ``gx_expectation_cases.json``.

Run once against a checkout of https://github.com/great-expectations/great_expectations (the
commit is recorded in the output); the output is committed as test data, GX's code is not:

    python tests/engine/data/extract_gx_cases.py /path/to/great_expectations

Kept: the JSON test definitions of the expectations our contracts can state (not null, between,
in set, unique, regex, value lengths, compound unique, column exists), the cases GX runs on
pandas (its reference semantics), with their data, pandas dtypes, arguments and expected outcome.
Which cases a contract can express is decided by ``tests/engine/test_gx_semantics.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FILES = [
    "column_map_expectations/expect_column_values_to_not_be_null.json",
    "column_map_expectations/expect_column_values_to_be_between.json",
    "column_map_expectations/expect_column_values_to_be_in_set.json",
    "column_map_expectations/expect_column_values_to_be_unique.json",
    "column_map_expectations/expect_column_values_to_match_regex.json",
    "column_map_expectations/expect_column_value_lengths_to_be_between.json",
    "column_map_expectations/expect_column_value_lengths_to_equal.json",
    "multicolumn_map_expectations/expect_compound_columns_to_be_unique.json",
    "other_expectations/expect_column_to_exist.json",
]


def runs_on_pandas(test: dict) -> bool:
    only, suppress = test.get("only_for"), test.get("suppress_test_for") or []
    return (only is None or "pandas" in only) and "pandas" not in suppress


def main(root: str) -> None:
    repo = Path(root)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    cases = []
    for rel in FILES:
        path = f"tests/test_definitions/{rel}"
        doc = json.loads(
            subprocess.run(
                ["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
            ).stdout
        )
        for d_index, ds in enumerate(doc["datasets"]):
            data = ds.get("data")
            if not isinstance(data, dict):
                continue
            for test in ds["tests"]:
                if not runs_on_pandas(test):
                    continue
                cases.append(
                    {
                        "source": path,
                        "expectation_type": doc["expectation_type"],
                        "dataset_index": d_index,
                        "title": test["title"],
                        "data": data,
                        "pandas_schema": (ds.get("schemas") or {}).get("pandas"),
                        "in": test["in"],
                        "out": test["out"],
                    }
                )
    out = {
        "provenance": {
            "repository": "https://github.com/great-expectations/great_expectations",
            "commit": commit,
            "license": "Apache-2.0",
            "what": "test definitions (data, arguments, expected outcomes) of tests/test_definitions/, "
            "cases that run on pandas; no GX code",
        },
        "cases": cases,
    }
    target = Path(__file__).with_name("gx_expectation_cases.json")
    target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases from {len(FILES)} files at {commit} -> {target}")


if __name__ == "__main__":
    main(sys.argv[1])
