"""The long fuzz: the suite's schemathesis test (tests/serve/test_serve_fuzz.py) with many more examples per
operation, against `lalm serve --engine hf` on the tiny model with an API key.

    .venv/bin/python bench/fuzz.py                   # 500 examples per operation
    .venv/bin/python bench/fuzz.py --examples 2000
    .venv/bin/python bench/fuzz.py --quick           # 2 examples per operation

Printed: the cases sent, the responses by status, and pytest's verdict (any server error, error body not
in OpenAI's shape, response outside the schema or schema-invalid request accepted fails the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="Hypothesis examples per operation.")
    args = parse_args(parser, {"examples": 2})
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "fuzz.json"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/serve/test_serve_fuzz.py"],
            cwd=ROOT, env={**os.environ, "LALM_FUZZ_EXAMPLES": str(args.examples), "LALM_FUZZ_REPORT": str(report)},
        )
        seconds = time.monotonic() - started
        stats = json.loads(report.read_text()) if report.exists() else {"cases": 0, "statuses": {}}
    server_errors = sum(n for status, n in stats["statuses"].items() if int(status) >= 500)
    print(f"examples per operation: {args.examples}")
    print(f"cases sent: {stats['cases']} in {seconds:.0f} s")
    print("responses by status: " + ", ".join(f"{s}: {n}" for s, n in stats["statuses"].items()))
    print(f"server errors: {server_errors}")
    print(f"verdict: {'PASS' if run.returncode == 0 else 'FAIL'} (pytest exit {run.returncode})")
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
