"""The slow job's simulation-based calibration (tests/test_sbc.py), as a Markdown table.

Runs the same cases with the same seeds as the test (Beta with mu under
BetaPrior(8, 2); two-point with mu = 0.8 known; two-point under Bradley-Terry
with three models and under a pooled mu over three pairs; Beta with ties
modelled and mu = 0.8 known; 100 data sets each;
``tests.test_sbc.cases``) and prints the rank histograms and chi-square
p-values in the form of the table in benchmarks/README.md ("SBC in the slow
test job").

    PYTHONPATH=. .venv/bin/python benchmarks/sbc_ci.py            # every case
    PYTHONPATH=. .venv/bin/python benchmarks/sbc_ci.py pooled  # cases whose label holds a word
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import test_sbc as sbc  # noqa: E402


def main() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"attnmodel at {commit}; {sbc.N_DATASETS} data sets per case, L = {sbc.L}, "
        f"{sbc.BINS} bins; pass if p > {sbc.FAMILY_WISE / sbc.N_TESTS:.5f} (1% family-wise).",
        "",
        "| case | parameter | ranks per bin | chi² (df 9) | p-value | seconds |",
        "|---|---|---|---|---|---|",
    ]
    # Each case's rows as soon as it ends, so that an interrupted run keeps what it measured.
    print("\n".join(lines), flush=True)
    words = sys.argv[1:]
    for label in sbc.cases():
        if words and not any(w in label for w in words):
            continue
        t0 = time.perf_counter()
        ranks = sbc.run_case(label)
        seconds = time.perf_counter() - t0
        for name in ranks:
            hist = np.histogram(ranks[name], bins=sbc.BINS, range=(0, sbc.L + 1))[0]
            test = stats.chisquare(hist)
            print(
                f"| {label} | {name} | {hist.tolist()} | {test.statistic:.2f} | "
                f"{test.pvalue:.3f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
