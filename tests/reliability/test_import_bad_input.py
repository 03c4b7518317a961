"""Importing bad files: broken JSON / YAML, wrong types, missing and unknown fields, a 100 MB
document, 10,000-level nesting, YAML alias bombs. Through the transfer functions and through the
``dq-stores import`` command (in process, and once as a real process): each gives a clear problem
naming the file (and the field where there is one), nothing is written, nothing crashes, and a
huge file is refused at once instead of being parsed for minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from dq_stores.cli import cli
from dq_stores.registry import open_stores
from dq_stores.testing.builders import load_fixture
from dq_stores.transfer import MAX_JSON_FILE_BYTES, load_artifacts

pytestmark = pytest.mark.reliability

T, E = "TNT-001", "prod"
SCRIPT = Path(sys.executable).with_name("dq-stores")


def contract(**changes: object) -> dict[str, object]:
    doc = load_fixture("contracts", tenant=T, environment=E)
    doc.update(changes)
    return doc


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=1))


def big_document(path: Path) -> None:
    """A 100 MB contract (its metadata holds 100 MB of text)."""
    head = json.dumps(contract(contract_id="huge"))[:-1] + ', "metadata": {"blob": "'
    with path.open("w") as out:
        out.write(head)
        chunk = "x" * (1 << 20)
        for _ in range(100):
            out.write(chunk)
        out.write('"}}')


BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    + ["contract_id: bomb", f"tenant_id: {T}", "environment: prod", "metadata: {x: *a8}"]
)

# name -> (file name, how to write it, texts every problem line of that file must hold)
CASES: dict[str, tuple[str, Callable[[Path], object], list[str]]] = {
    "truncated JSON": (
        "truncated.json",
        lambda p: p.write_text('{\n  "contract_id": "c1",\n  "tenant_id": "TNT-001",\n'),
        ["truncated.json:4:1: invalid JSON"],
    ),
    "broken YAML": (
        "broken.yaml",
        lambda p: p.write_text("contract_id: c1\ntenant_id: [TNT-001\nname: x\n"),
        ["broken.yaml:", "invalid YAML"],
    ),
    "wrong types": (
        "types.json",
        lambda p: write_json(p, contract(datasets="orders", name=["not", "text"])),
        ["types.json", "datasets: ", "name: "],
    ),
    "version as a YAML number": (
        "number.yaml",
        lambda p: p.write_text(
            f"action_profile_id: p1\ntenant_id: {T}\nenvironment: {E}\nversion: 1.0\nname: P\nactions: []\n"
        ),
        ["number.yaml", "version: ", "quote it in YAML"],
    ),
    "missing fields": (
        "missing.json",
        lambda p: write_json(p, {"contract_id": "c2", "version": "1.0.0"}),
        ["missing.json", "tenant_id: Field required", "environment: Field required"],
    ),
    "unknown field": (
        "unknown.json",
        lambda p: write_json(p, contract(colour="red")),
        ["unknown.json", "colour: unknown field"],
    ),
    "no kind": (
        "nokind.json",
        lambda p: write_json(p, {"name": "what am I"}),
        ["nokind.json", "cannot tell the artifact kind"],
    ),
    "not an object": (
        "scalar.json",
        lambda p: p.write_text("42"),
        ["scalar.json", "expected an object"],
    ),
    "not UTF-8": (
        "latin1.json",
        lambda p: p.write_bytes(b'{"contract_id": "caf\xe9"}'),
        ["latin1.json", "not UTF-8"],
    ),
    "NaN": (
        "nan.json",
        lambda p: p.write_text(json.dumps(contract(metadata={"x": float("nan")}))),
        ["nan.json", "NaN is not allowed"],
    ),
    "a 5,000-digit number": (
        "digits.json",
        lambda p: p.write_text(json.dumps(contract())[:-1] + ', "metadata": {"n": ' + "9" * 5000 + "}}"),
        ["digits.json", "invalid JSON"],
    ),
    "100 MB document": (
        "huge.json",
        big_document,
        ["huge.json", "100.0 MiB", "not imported"],
    ),
    "10,000-level nesting (JSON)": (
        "deep.json",
        lambda p: p.write_text(json.dumps(contract())[:-1] + ', "metadata": ' + nested(10_000) + "}"),
        ["deep.json", "nested too deeply"],
    ),
    "10,000-level nesting (YAML)": (
        "deep.yaml",
        lambda p: p.write_text("contract_id: deep\nmetadata: " + "[" * 10_000 + "]" * 10_000 + "\n"),
        ["deep.yaml", "invalid YAML"],
    ),
    "900-level nesting (parses, too deep to store)": (
        "deep900.json",
        lambda p: p.write_text(json.dumps(contract())[:-1] + ', "metadata": {"n": ' + nested(900) + "}}"),
        ["deep900.json", "metadata.n.a.a.(...): nested 901 levels deep"],
    ),
    "YAML alias bomb": (
        "laughs.yaml",
        lambda p: p.write_text(BILLION_LAUGHS),
        ["laughs.yaml", "expands to more than"],
    ),
    "recursive YAML alias": (
        "loop.yaml",
        lambda p: p.write_text("contract_id: loop\nmetadata: &m {self: *m}\n"),
        ["loop.yaml", "refers to itself"],
    ),
    "YAML python tag": (
        "tag.yaml",
        lambda p: p.write_text("contract_id: !!python/object/apply:os.system ['echo pwned']\n"),
        ["tag.yaml", "invalid YAML"],
    ),
}


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    """A valid contract that is imported only if every other file is valid too."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_json(folder / "good.json", contract(contract_id="good-one"))
    return folder


def _nothing_written(url: str) -> None:
    with open_stores(url) as stores:
        assert stores.contracts.get(T, E, "good-one") is None
        assert stores.contracts.list(T, E).items == []


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_a_clear_problem_and_nothing_is_written(
    case: str, good_file: Path, tmp_path: Path
) -> None:
    name, write, expected = CASES[case]
    bad = good_file / name
    write(bad)

    started = time.perf_counter()
    artifacts, problems = load_artifacts([good_file])
    elapsed = time.perf_counter() - started
    assert problems, f"{case}: no problem reported"
    assert elapsed < 10, f"{case}: loading took {elapsed:.1f} s"
    assert {p.file for p in problems} == {str(bad)}, problems
    text = "\n".join(str(p) for p in problems)
    for fragment in expected:
        assert fragment in text, f"{case}: {fragment!r} not in {text!r}"
    assert [a.model.contract_id for a in artifacts] == ["good-one"]

    url = f"sqlite:///{tmp_path}/store/dq.db"
    result = CliRunner().invoke(cli, ["--url", url, "import", str(good_file)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert "nothing was written" in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in {result.stderr!r}"
    assert not (tmp_path / "store").exists(), "the import created a store although nothing was valid"
    _nothing_written(url)


def test_size_limit_is_a_parameter_and_files_under_it_load(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_json(path, contract())
    size = path.stat().st_size
    artifacts, problems = load_artifacts([path], max_json_bytes=size)
    assert problems == [] and len(artifacts) == 1
    artifacts, problems = load_artifacts([path], max_json_bytes=size - 1)
    assert artifacts == [] and "not imported" in str(problems[0])
    assert MAX_JSON_FILE_BYTES == 32 * 1024 * 1024


def test_the_real_command_reports_every_bad_file_at_once(good_file: Path, tmp_path: Path) -> None:
    """One ``dq-stores import`` process over a folder holding every bad file: exit code 1, one
    line per problem naming its file, no traceback, nothing written, in seconds."""
    for name, write, _ in CASES.values():
        write(good_file / name)
    url = f"sqlite:///{tmp_path}/store/dq.db"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(SCRIPT), "--url", url, "import", str(good_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    for name, _, expected in CASES.values():
        assert any(name in line and expected[-1] in line for line in lines), (name, proc.stderr[-2000:])
    assert f"problem(s) in {len(CASES)} file(s); nothing was written" in lines[-1]
    assert elapsed < 30, f"the import took {elapsed:.1f} s"
    _nothing_written(url)
