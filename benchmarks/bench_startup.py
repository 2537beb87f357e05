"""Benchmark: how long the command line takes to answer ``--help``, and ``import attnmodel``.

What is measured
----------------
Wall time of a whole fresh process, start to exit, over several runs after one
warm-up run (which fills the file cache and is not counted):

* ``python -m attnmodel --help``;
* the ``attnmodel`` console script (``attnmodel --help``, found beside the
  interpreter);
* ``python -c "import attnmodel"``, the part of the above that the package's
  top level costs;
* ``python -c "from attnmodel import fit_em"``: what the first use of the
  fitting API costs (the package's top level loads each name on first use, so
  this is where numpy, pandas, scipy and xarray are imported; PyMC is not).

For each: minimum, median and maximum in seconds. The machines are shared, so
the median is the figure to quote, and a wide minimum-maximum spread says the
machine was busy.

Target
------
``attnmodel --help`` (both ways of starting it) answers in under 1 s (median):
PASS or MISS. The other two cases are reported without a target.

Run: ``.venv/bin/python benchmarks/bench_startup.py`` (about 30 s);
``--runs N`` sets the number of counted runs (default 10).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import banner, checkout_env, print_header

TARGET_S = 1.0


def cases() -> dict[str, tuple[list[str], float | None]]:
    """Case name -> (command, target in seconds or None)."""
    script = Path(sys.executable).parent / "attnmodel"
    out = {
        "python -m attnmodel --help": ([sys.executable, "-m", "attnmodel", "--help"], TARGET_S),
    }
    if script.is_file():
        out["attnmodel --help"] = ([str(script), "--help"], TARGET_S)
    out["python -c 'import attnmodel'"] = ([sys.executable, "-c", "import attnmodel"], None)
    out["python -c 'from attnmodel import fit_em'"] = (
        [sys.executable, "-c", "from attnmodel import fit_em"],
        None,
    )
    return out


def time_once(command: list[str]) -> float:
    """Wall seconds of one fresh process running ``command`` to its end."""
    env = checkout_env()
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and b"usage: attnmodel" not in proc.stdout:
        raise RuntimeError(f"{command} exited with {proc.returncode}:\n{proc.stderr.decode()}")
    return seconds


def main() -> int:
    """Time every case and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="counted runs per case (default 10)")
    args = parser.parse_args()
    print(banner("bench_startup"))
    head = f"{'case':<42} {'min s':>7} {'median s':>9} {'max s':>7}  target"
    print_header(head)
    for name, (command, target) in cases().items():
        time_once(command)  # warm-up: file cache, bytecode
        times = [time_once(command) for _ in range(args.runs)]
        med = statistics.median(times)
        verdict = "" if target is None else f"< {target:g} s: {'PASS' if med < target else 'MISS'}"
        print(f"{name:<42} {min(times):>7.3f} {med:>9.3f} {max(times):>7.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
