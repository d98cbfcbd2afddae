"""Every benchmark's `--quick`: the same run on tiny inputs, seconds long, so that the test suite runs each one
(tests/bench/test_bench_quick.py) and a benchmark that no longer works fails there. Its figures and its ratio
against the baseline are printed as in a full run, but they show only that the benchmark works: they are not
measurements."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

HELP = "tiny inputs, seconds long: a check that the benchmark runs (its figures are not measurements)"


def parse_args(parser: argparse.ArgumentParser, quick: dict[str, Any],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line with `--quick` added; with it, `quick` (argument dest -> value) gives the
    defaults, and flags given explicitly still win."""
    parser.add_argument("--quick", action="store_true", help=HELP)
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)
