"""The slow job's simulation-based calibration (tests/test_sbc.py), as a Markdown table.

Runs the same two cases with the same seeds as the test (Beta with mu under
BetaPrior(8, 2); two-point with mu = 0.8 known; 100 data sets each) and prints
the rank histograms and chi-square p-values in the form of the table in
benchmarks/README.md ("SBC in the slow test job").

    PYTHONPATH=. .venv/bin/python benchmarks/sbc_ci.py
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

CASES = (
    (
        "beta",
        ("alpha", "beta", "mu"),
        1,
        {"mu_prior": sbc.MU_PRIOR, "priors": "flat"},
        "Beta (flat shapes), mu ~ BetaPrior(8, 2)",
    ),
    (
        "two_point",
        ("q_low", "eta_low", "eta_high"),
        2,
        {"mu": sbc.MU_KNOWN},
        "two-point, mu = 0.8 known",
    ),
)


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
    for family, names, seed, kw, label in CASES:
        t0 = time.perf_counter()
        ranks = sbc.sbc_ranks(family, names, seed=seed, **kw)
        seconds = time.perf_counter() - t0
        for name in names:
            hist = np.histogram(ranks[name], bins=sbc.BINS, range=(0, sbc.L + 1))[0]
            test = stats.chisquare(hist)
            lines.append(
                f"| {label} | {name} | {hist.tolist()} | {test.statistic:.2f} | "
                f"{test.pvalue:.3f} | {seconds:.0f} |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
