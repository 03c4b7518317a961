"""``python -m bench``: run the benchmarks, print one table, write ``bench/results/latest.json``.

``--smoke`` runs every benchmark at toy sizes with one repetition (the test suite does this so
the code cannot rot; its figures mean nothing). ``--only 1,4`` picks table rows (and merges them
into an existing ``latest.json``). The large rows (13, 14) run only with ``--large`` or when named
by ``--only`` (``make bench-large`` = ``--only 13,14``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.runner import run

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, one repetition (proves nothing)")
    parser.add_argument("--only", default="", help="comma-separated table rows to run, e.g. 1,2,9")
    parser.add_argument("--output", type=Path, default=None, help=f"JSON output (default {DEFAULT_OUTPUT})")
    parser.add_argument(
        "--large",
        action="store_true",
        help="also the large rows (13, 14: minutes, GBs of disk); make bench-large",
    )
    args = parser.parse_args(argv)
    only = {part.strip() for part in args.only.split(",") if part.strip()} or None
    output = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    started = time.monotonic()
    results = run(smoke=args.smoke, only=only, output=output, echo=print, large=args.large)
    print(
        f"\n{len(results)} results in {time.monotonic() - started:.0f} s"
        + (f"; written to {output}" if output else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
