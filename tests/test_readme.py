"""Every example of README.md and deploy/README.md runs as written.

The examples are extracted from the files at test time (never copied here): each fenced ``bash``
block runs as one ``bash -eu`` script and each ``python`` block as one interpreter, in a fresh
folder that has the repository's ``dq_dagster`` package beside it (so relative paths such as
``dq_dagster/examples/artifacts`` work as they do from the repository root) and the virtualenv's
``bin`` first on ``PATH``; ``json`` blocks must parse. Placeholders a reader replaces by their own
services are replaced by the local ones (``PLACEHOLDERS``): the Postgres of the test machine, with a
fresh schema. A line that cannot run in a test (it *is* this suite, or starts a server) is listed in
``NOT_RUN`` with the reason; a whole block can be excluded only by a marker in the README itself,
``<!-- readme-test: skip: <reason> -->`` on the line before the fence, so a reader sees it too.
Inline ``dq-stores ...`` commands in the prose are checked against the real CLI (the subcommand
and every option exist), since they are references rather than steps.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from dq_stores.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", ROOT / "deploy" / "README.md"]
BIN = Path(sys.executable).parent

NOT_RUN = {
    "make demo": "tests/dagster/test_demo.py runs what it runs (python -m dq_dagster.demo), hints included",
    "make test": "this suite itself",
    "make ui": "a long-running server; tests/e2e/test_dagster_dev.py starts `dagster dev` and drives it",
}
"""Lines of shell blocks that are not run, with the reason (matched after stripping comments)."""

PG_PLACEHOLDERS = ("postgresql+psycopg://app@db/dq", "postgresql+psycopg://app@db.example/dq")
SCHEMA_PLACEHOLDERS = ("DQ_STORES_SCHEMA=dq", "--from-schema dq", "--to-schema dq", "--schema dq")
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.+?)\s*-->")
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    language: str
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}:{self.language}"


def blocks() -> list[Block]:
    found: list[Block] = []
    for path in FILES:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = _FENCE.match(lines[i])
            if match is None:
                i += 1
                continue
            indent, language = match.group(1), match.group(2)
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            i += 1
            marker = _SKIP.search(lines[start - 1]) if start else None
            found.append(
                Block(path, start + 1, language, "\n".join(body), marker.group(1) if marker else None)
            )
    return found


RUNNABLE = [b for b in blocks() if b.language in {"bash", "sh", "python", "json"}]


def test_the_readmes_have_examples_and_every_skip_says_why() -> None:
    assert sum(b.language == "bash" for b in RUNNABLE) >= 3
    assert sum(b.language == "python" for b in RUNNABLE) >= 3
    for block in RUNNABLE:
        assert block.skip is None or len(block.skip) > 10, f"{block.id}: a skip needs a reason"
    unlabelled = [b for b in blocks() if b.language == "" and _looks_like_code(b.text)]
    assert not unlabelled, f"label these fenced blocks with their language: {[b.id for b in unlabelled]}"


def _looks_like_code(text: str) -> bool:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.startswith(("dq-stores ", "make ", "from ", "import ", "$ "))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "dq_dagster").symlink_to(ROOT / "dq_dagster", target_is_directory=True)
    return work


def _env(work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DQ_STORES_", "DAGSTER_HOME", "AZURE_STORAGE"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(work)
    return env


def _substitute(text: str, request: pytest.FixtureRequest) -> str:
    if not any(p in text for p in PG_PLACEHOLDERS):
        return text
    pg_url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("make_pg_schema")()
    for placeholder in PG_PLACEHOLDERS:
        text = text.replace(placeholder, pg_url)
    for placeholder in SCHEMA_PLACEHOLDERS:
        text = text.replace(
            placeholder, placeholder.replace(" dq", f" {schema}").replace("=dq", f"={schema}")
        )
    return text


def _shell_script(block: Block) -> tuple[str, list[str]]:
    """The block as a script, and the lines left out (with ``NOT_RUN`` reasons)."""
    kept: list[str] = []
    left_out: list[str] = []
    for raw in block.text.splitlines():
        command = raw.split("  #", 1)[0].strip()
        if not command or command.startswith("#"):
            continue
        if command in NOT_RUN:
            left_out.append(f"{command}: {NOT_RUN[command]}")
            continue
        kept.append(raw)
    return "\n".join(kept), left_out


def _run(args: list[str], work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)


_CHECKS: dict[str, Callable[[Path, subprocess.CompletedProcess[str]], None]] = {}


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_readme_example_runs_as_written(block: Block, workdir: Path, request: pytest.FixtureRequest) -> None:
    if block.skip is not None:
        pytest.skip(f"marked in the README: {block.skip}")
    if block.language == "json":
        json.loads(block.text)
        return
    text = _substitute(block.text, request)
    env = _env(workdir)
    if block.language == "python":
        harness = (
            "import runpy, sys\n"
            "namespace = runpy.run_path(sys.argv[1], run_name='__main__')\n"
            "defs = namespace.get('defs')\n"
            "if defs is not None:\n"
            "    from dagster import Definitions\n"
            "    Definitions.validate_loadable(defs)\n"
        )
        script = workdir / "example.py"
        script.write_text(text)
        # A Dagster example reads its stores from the environment (EnvVar): give it local ones.
        env.setdefault("DQ_STORES_URL", f"sqlite:///{workdir}/dagster-dq.db")
        env.setdefault("DQ_STORES_RESULTS_URL", (workdir / "dagster-results").as_uri())
        result = _run([sys.executable, "-c", harness, str(script)], workdir, env)
    else:
        script_text, _left_out = _shell_script(_block_with(block, text))
        if not script_text.strip():
            pytest.skip("every line of this block is in NOT_RUN (reasons there)")
        result = _run(["bash", "-euo", "pipefail", "-c", script_text], workdir, env)
    assert result.returncode == 0, (
        f"{block.id} failed (exit {result.returncode})\n--- example ---\n{text}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )


def _block_with(block: Block, text: str) -> Block:
    return Block(block.file, block.line, block.language, text, block.skip)


# -- inline commands in the prose ---------------------------------------------------------------------

_INLINE = re.compile(r"`(dq-stores(?: [^`]*)?)`")


def inline_commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in FILES:
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            found += [(f"{path.relative_to(ROOT)}:{n}", m.group(1)) for m in _INLINE.finditer(line)]
    return found


def test_every_inline_dq_stores_command_names_real_subcommands_and_options() -> None:
    commands = inline_commands()
    assert commands, "the READMEs mention no dq-stores command?"
    for where, text in commands:
        words = shlex.split(text)[1:]
        group: click.Command = cli
        options: set[str] = set(_options(cli))
        for word in words:
            if word.startswith("-"):
                name = word.split("=", 1)[0]
                assert name in options, f"{where}: `{text}`: no option {name}"
                continue
            if isinstance(group, click.Group) and word in group.commands:
                group = group.commands[word]
                options |= set(_options(group))
        assert group is not cli or not words, f"{where}: `{text}` names no subcommand"


def _options(command: click.Command) -> list[str]:
    return [opt for param in command.params if isinstance(param, click.Option) for opt in param.opts]
