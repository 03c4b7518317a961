"""Timing, results, the printed table and ``latest.json``.

Every benchmark compares ours with a baseline measured in the same run, interleaved (ours,
baseline, ours, ...) so that load from other processes on a shared machine hits both alike. A
figure is the median of the repetitions, with min and max; the ratio is taken between medians.
Nothing here knows what is being measured.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Kind = Literal["latency", "throughput", "memory", "budget"]
"""latency: ratio = ours / baseline (lower is better); throughput: ratio = ours / baseline of a
rate (higher is better); memory: ratio = peak / data size; budget: ratio = ours / a fixed time."""


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions: the full run (``make bench``) or the smoke run of the test suite."""

    smoke: bool = False
    reps: int = 5
    warmup: int = 1
    # 1-5: SQL
    bulk_runs: int = 20_000
    page_sizes: tuple[int, int] = (10_000, 1_000_000)
    page_tenants: int = 100
    datasets: int = 100
    versions: int = 100
    # 6-7: claim check, filesystem
    claim_bytes: int = 50 * 1024 * 1024
    # 8: Dagster
    assets: int = 20
    # 15: loading the component's code location
    load_tenants: int = 100
    load_rows: int = 20_000
    # 9-12: engine
    rows: int = 1_000_000
    csv_bytes: int = 50 * 1024 * 1024
    target_seconds: float = 0.25
    """How long one repetition of a fast operation runs (it is repeated in a loop that long)."""
    # 13-14: large rows (make bench-large)
    pg_rows: int = 10_000_000
    large_rows: int = 95_000_000
    large_reps: int = 3

    @classmethod
    def full(cls) -> Config:
        return cls()

    @classmethod
    def smoke_run(cls) -> Config:
        """Tiny sizes, one repetition: exercises every code path in seconds, proves nothing."""
        return cls(
            smoke=True,
            reps=1,
            warmup=0,
            bulk_runs=200,
            page_sizes=(800, 2_000),
            page_tenants=4,
            datasets=4,
            versions=5,
            claim_bytes=1024 * 1024,
            assets=3,
            load_tenants=3,
            load_rows=500,
            rows=5_000,
            csv_bytes=200_000,
            target_seconds=0.01,
            pg_rows=20_000,
            large_rows=60_000,
            large_reps=1,
        )


@dataclass(frozen=True)
class Stats:
    """Per-operation figures of the repetitions (seconds, bytes or rows/s by ``unit``)."""

    median: float
    min: float
    max: float
    reps: int
    unit: str

    @classmethod
    def of(cls, values: Sequence[float], unit: str) -> Stats:
        return cls(statistics.median(values), min(values), max(values), len(values), unit)


@dataclass
class Result:
    id: str
    name: str
    kind: Kind
    target: str
    """Human form of the target, e.g. ``<= 1.3`` (empty: informational)."""
    limit: float | None
    """The number the ratio is checked against; ``None`` for informational rows."""
    ours: Stats | None = None
    baseline: Stats | None = None
    baseline_name: str = ""
    ratio: float | None = None
    verdict: str = "skipped"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def decide(self) -> Result:
        if self.ratio is None:
            return self
        if self.limit is None:
            self.verdict = "info"
        elif self.kind == "throughput":
            self.verdict = "met" if self.ratio >= self.limit else "MISSED"
        else:
            self.verdict = "met" if self.ratio <= self.limit else "MISSED"
        return self


def check(condition: object, message: str) -> None:
    """A sanity check of a benchmark's own setup (ours and the baseline did the same work); not
    an ``assert``, which ``python -O`` would drop."""
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {message}")


def skipped(id: str, name: str, kind: Kind, target: str, reason: str) -> Result:
    return Result(id, name, kind, target, None, verdict="skipped", note=reason)


@contextlib.contextmanager
def no_gc() -> Any:
    """The cyclic garbage collector off while timing (as ``timeit`` does): a collection landing
    in one side's loop is noise, not a cost of that side."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _loop(fn: Callable[[], Any], n: int) -> float:
    with no_gc():
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - start


def calibrate(fn: Callable[[], Any], target_seconds: float) -> int:
    """How many calls of ``fn`` take about ``target_seconds`` (at least 1)."""
    n = 1
    while True:
        elapsed = _loop(fn, n)
        if elapsed >= target_seconds / 4 or n >= 1_000_000:
            return max(1, int(n * target_seconds / max(elapsed, 1e-9)))
        n *= 4


def compare(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    config: Config,
    *,
    per_call: int = 1,
    setup: Callable[[], Any] | None = None,
) -> tuple[list[float], list[float]]:
    """Seconds per operation of ``ours`` and ``baseline``, repetitions interleaved.

    Fast operations run in a loop sized by ``calibrate`` (the same count for both); slow ones
    (``per_call`` > 0 and a ``setup`` to run before each call, untimed) run once per repetition.
    ``per_call`` divides the time of one call (e.g. a bulk write of N rows gives seconds per row).
    """
    if setup is not None:
        return _compare_once(ours, baseline, config, per_call, setup)
    for _ in range(config.warmup):
        # Enough calls to fill caches on both sides (psycopg prepares a statement on its 5th use).
        _loop(ours, 20)
        _loop(baseline, 20)
    n = calibrate(baseline, config.target_seconds)
    # Each repetition alternates short blocks of calls (ours, baseline, ours, ...), so a burst of
    # load from other processes lands on both sides alike.
    block = max(1, n // 20)
    ours_t: list[float] = []
    base_t: list[float] = []
    for rep in range(config.reps):
        gc.collect()
        spent = {True: 0.0, False: 0.0}
        calls = 0
        first_ours = rep % 2 == 0
        while calls < n:
            size = min(block, n - calls)
            for is_ours in (first_ours, not first_ours):
                spent[is_ours] += _loop(ours if is_ours else baseline, size)
            calls += size
        ours_t.append(spent[True] / (n * per_call))
        base_t.append(spent[False] / (n * per_call))
    return ours_t, base_t


def _compare_once(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    config: Config,
    per_call: int,
    setup: Callable[[], Any],
) -> tuple[list[float], list[float]]:
    ours_t: list[float] = []
    base_t: list[float] = []
    for _ in range(config.warmup):
        setup()
        ours()
        setup()
        baseline()
    for rep in range(config.reps):
        pair = ((ours, ours_t), (baseline, base_t)) if rep % 2 == 0 else ((baseline, base_t), (ours, ours_t))
        for fn, out in pair:
            setup()
            gc.collect()
            with no_gc():
                start = time.perf_counter()
                fn()
                out.append((time.perf_counter() - start) / per_call)
    return ours_t, base_t


def latency(
    result: Result, ours_times: Sequence[float], base_times: Sequence[float], unit: str = "s"
) -> Result:
    result.ours = Stats.of(ours_times, unit)
    result.baseline = Stats.of(base_times, unit)
    result.ratio = result.ours.median / result.baseline.median
    return result.decide()


def throughput(
    result: Result, ours_times: Sequence[float], base_times: Sequence[float], per_op: float, unit: str
) -> Result:
    """Rates (``per_op`` units per operation time); ratio = our rate / baseline rate."""
    result.ours = Stats.of([per_op / t for t in ours_times], unit)
    result.baseline = Stats.of([per_op / t for t in base_times], unit)
    result.ratio = result.ours.median / result.baseline.median
    return result.decide()


# -- output ---------------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if value >= scale or name == "us":
                return f"{value / scale:.3g} {name}" if name != "s" else f"{value:.3g} s"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if unit == "rows/s":
        return f"{value / 1000:.0f}k rows/s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.3g} {unit}"


def _cell(stats: Stats | None) -> str:
    if stats is None:
        return "-"
    if stats.reps == 1:
        return _fmt(stats.median, stats.unit)
    return f"{_fmt(stats.median, stats.unit)} [{_fmt(stats.min, stats.unit)}..{_fmt(stats.max, stats.unit)}]"


def table(results: Sequence[Result]) -> str:
    """The one table: benchmark, ours, baseline, ratio, target, verdict (figures: median [min..max])."""
    header = ("#", "benchmark", "ours", "baseline", "ratio", "target", "verdict")
    rows = [header]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}" if r.ratio >= 0.1 else f"{r.ratio:.4f}"
        verdict = r.verdict if not r.note or r.verdict != "skipped" else f"skipped: {r.note}"
        rows.append((r.id, r.name, _cell(r.ours), _cell(r.baseline), ratio, r.target, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def baselines(results: Sequence[Result]) -> str:
    """What each baseline is, one line per benchmark."""
    return "\n".join(f"{r.id:>4}  {r.baseline_name}" for r in results if r.baseline_name)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    versions = {}
    for name in ("polars", "pandas", "pandera", "sqlalchemy", "psycopg", "pydantic", "dagster"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    info["packages"] = versions
    return info


def _row_order(r: Result) -> tuple[int, str]:
    digits = r.id.rstrip("abcdefgh")
    return (int(digits) if digits.isdigit() else 0, r.id)


def _from_dict(d: dict[str, Any]) -> Result:
    d = dict(d)
    for side in ("ours", "baseline"):
        if d.get(side) is not None:
            d[side] = Stats(**d[side])
    return Result(**d)


def write_json(
    path: Path,
    results: Sequence[Result],
    config: Config,
    started: dict[str, Any],
    seconds: float,
    *,
    merge: bool = False,
    keep: frozenset[str] = frozenset(),
) -> None:
    """Write the run; with ``merge`` (a run of some rows) the other rows of an existing file are
    kept, in table order, so ``make bench-large`` adds its rows to ``make bench``'s. ``keep``: rows
    a full run did not measure (the large ones) whose earlier figures stay, with their run's date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    new_rows = {r.id.rstrip("abcdefgh") for r in results}
    if (merge or keep) and path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        new_ids = {r.id for r in results}
        kept = [
            _from_dict(r)
            for r in old.get("results", [])
            if r["id"] not in new_ids and (merge or r["id"].rstrip("abcdefgh") in keep)
        ]
        results = sorted([*kept, *results], key=_row_order)
        runs = old.get("runs") or {
            "full": {k: old.get(k) for k in ("date", "machine_at_start", "machine_at_end", "total_seconds")}
        }
        if not merge:  # a full run: only the kept rows' own runs stay on record
            kept_rows = {r.id.rstrip("abcdefgh") for r in kept}
            runs = {
                name: run
                for name, run in runs.items()
                if name != "full" and set(name.split("+")) <= kept_rows
            }
    payload = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "smoke": config.smoke,
        "config": asdict(config),
        "machine_at_start": started,
        "machine_at_end": machine(),
        "total_seconds": round(seconds, 1),
        "results": [asdict(r) for r in results],
        "table": table(results),
    }
    if merge or runs:
        name = "+".join(sorted(new_rows, key=int)) if merge else "full"
        runs[name] = {k: payload[k] for k in ("date", "machine_at_start", "machine_at_end", "total_seconds")}
        payload["runs"] = runs
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
