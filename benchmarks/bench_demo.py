"""Benchmark: the whole ``attnmodel demo`` job (NUTS included), start to exit, in a fresh process.

What is measured
----------------
Wall time of ``python -m attnmodel demo --out DIR`` (simulate a log, two
MAP-EM fits, NUTS, the filters, the exports and the figures) in a new folder
each run. The Numba cache is the one the checkout already has (run the demo
once before to fill it; ``bench_first_fit.py`` measures the cold case).

Target
------
The demo (with NUTS, its default) finishes in under three minutes (median): PASS or MISS.

Run: ``.venv/bin/python benchmarks/bench_demo.py`` (``--runs N``, default 3;
several minutes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import banner, checkout_env, print_header

TARGET_S = 180.0


def time_once(workdir: Path) -> float:
    """Wall seconds of one demo with NUTS, written to a new folder under ``workdir``."""
    env = checkout_env()
    out = Path(tempfile.mkdtemp(dir=workdir)) / "demo"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "attnmodel", "demo", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"demo exited with {proc.returncode}:\n{proc.stderr}")
    return seconds


def main() -> int:
    """Run the demo ``--runs`` times and print the times and the verdict; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="counted runs (default 3)")
    args = parser.parse_args()
    print(banner("bench_demo"))
    with tempfile.TemporaryDirectory() as tmp:
        times = [time_once(Path(tmp)) for _ in range(args.runs)]
    print("runs (s): " + ", ".join(f"{t:.1f}" for t in times))
    head = f"{'case':<28} {'min s':>7} {'median s':>9} {'max s':>7}  target"
    print_header(head)
    med = statistics.median(times)
    verdict = f"< {TARGET_S:g} s: {'PASS' if med < TARGET_S else 'MISS'}"
    print(f"{'attnmodel demo':<28} {min(times):>7.1f} {med:>9.1f} {max(times):>7.1f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
