"""NUTS against the importance-sampling references of the slow tests, over many seeds.

``tests/test_nuts_reference.py`` compares one NUTS fit (one seed) with an
independent reference posterior: z-tests of means, sds, quantiles and users'
``p_above``, Holm-corrected at a family-wise 1%. One seed says little about
whether those z-tests are calibrated. This script runs the comparison of one
of the test's cases (``--case pooled`` or ``bradley_terry``: two-point
``P_eta`` with a structure on ``mu``, the reference by importance sampling)
for every seed of a range, with the test's own helpers, and prints:

* for each seed, the comparisons Holm rejects and the largest ``|z|``;
* how many runs reject (a calibrated test: about 1%);
* per kind of comparison (mean, sd, each quantile, ``p_above``): the mean of
  ``z^2`` over comparisons and seeds (about 1 when the z-tests are
  calibrated), the variance of each comparison's ``z`` across seeds averaged
  over comparisons, and what that variance should be. The reference is computed
  once, so its own error is the same offset in every run: across seeds a
  comparison's ``z`` varies by the NUTS error alone, with variance
  ``MCSE^2 / (MCSE^2 + ref_se^2)`` when the MCSE is right. Then the shares of
  ``|z|`` beyond 2.58 and 3.29 (1% and 0.1% two-sided).

    PYTHONPATH=. .venv/bin/python benchmarks/reference_seeds.py --case pooled --seeds 20:140

A seed takes about 15 s on two cores (4 chains of 1000 + 1000, as the test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tests import test_nuts_reference as T

CASES = {"pooled": T.pooled_case, "bradley_terry": T.bradley_terry_case}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="pooled")
    ap.add_argument("--seeds", default="20:40", help="START:STOP (STOP excluded)")
    args = ap.parse_args()
    start, stop = (int(x) for x in args.seeds.split(":"))
    data, ref, names, kw = CASES[args.case]()
    labels, z_runs, share_runs, rejected = None, [], [], []
    for seed in range(start, stop):
        t0 = time.perf_counter()
        tree = T.structured_fit(data, kw, seed)
        parts = T.z_parts(tree, ref, names)
        rows = T.z_rows(parts)
        failed, z = T.holm_failures(rows)
        if labels is None:
            labels = [r[0] for r in rows]
        z_runs.append([(a - b) / se for _, a, b, se in rows])
        # The reference's share of each comparison's variance in this run.
        share_runs.append([(r / se) ** 2 for (*_, r), (*_, se) in zip(parts, rows, strict=True)])
        if failed:
            rejected.append(seed)
        bad = ", ".join(f"{r[0]} (z = {zz:.2f})" for r, zz, _ in failed) or "none"
        print(
            f"seed {seed}: rejected {bad}; largest |z| {z.max():.2f}; "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    z = np.array(z_runs)  # (seeds, comparisons)
    # Across seeds a comparison's z varies by the NUTS error alone.
    predicted_var = 1.0 - np.array(share_runs)
    n = z.shape[0]
    print(f"\n{args.case}: {len(rejected)} of {n} runs rejected (Holm, family-wise "
          f"{T.FAMILY_WISE:g}): seeds {rejected}")  # fmt: skip
    kinds = ["p_above" if lab.startswith("p_above") else lab.split(" ")[0] for lab in labels]
    head = (
        f"{'kind':8s} {'compared':>8s} {'mean z^2':>9s} {'var across seeds':>17s} "
        f"{'expected':>9s} {'|z|>2.58':>9s} {'|z|>3.29':>9s}"
    )
    print(head + "\n" + "-" * len(head))
    for kind in dict.fromkeys(kinds):
        cols = [i for i, k in enumerate(kinds) if k == kind]
        zk = z[:, cols]
        print(
            f"{kind:8s} {zk.size:8d} {np.mean(zk**2):9.3f} {np.mean(zk.var(axis=0, ddof=1)):17.3f} "
            f"{np.mean(predicted_var[:, cols]):9.3f} {np.mean(abs(zk) > 2.58):9.4f} "
            f"{np.mean(abs(zk) > 3.29):9.4f}"
        )
    print("calibrated: mean z^2 near 1, the variance across seeds near its expectation, "
          "shares near 0.0099 and 0.0010")  # fmt: skip


if __name__ == "__main__":
    main()
