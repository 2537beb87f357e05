"""LOO model selection between the ``beta`` and ``two_point`` families (slow: four NUTS fits).

Each NUTS tree holds, in its ``log_likelihood`` group (variable ``votes``),
each user's marginal log-likelihood per draw; ``arviz_stats.compare`` turns it
into PSIS-LOO's expected log predictive density (ELPD). On data simulated from
a two-point truth the ``two_point`` fit must rank first, and on data from a
Beta truth the ``beta`` fit, each by an ELPD difference larger than
``MARGIN = 2`` standard errors of that difference (``dse``): a one-sided
comparison at about the 2.3% level under the normal approximation of LOO.

The truths are chosen so that the families are far apart at this data size
(300 users, 150 votes each, ``mu = 0.9`` known): two atoms at 0.25 and 0.9
(which no Beta reproduces), and Beta(2, 2) (spread over [0, 1], which two
atoms fit badly once 150 votes resolve each user's attentiveness to about
+-0.1).
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pytest

import attnmodel as am

MARGIN = 2.0
MU = 0.9
NUTS = {"draws": 500, "tune": 500, "chains": 2, "progressbar": False}
TRUTHS = {
    "two_point": {"q_low": 0.5, "eta_low": 0.25, "eta_high": 0.9},
    "beta": {"alpha": 2.0, "beta": 2.0},
}


@pytest.mark.slow
@pytest.mark.parametrize("truth", ["two_point", "beta"])
def test_loo_prefers_the_true_family(truth):
    n, s, _ = am.simulate_counts(truth, TRUTHS[truth], 300, 150, MU, seed=[7, len(truth)])
    data = am.VoteData.from_counts(n, s)
    fits = {
        family: am.fit(data, family, method="nuts", mu=MU, seed=11, **NUTS)
        for family in ("two_point", "beta")
    }
    for family, tree in fits.items():
        ll = tree["log_likelihood"]["votes"]
        assert ll.sizes["user"] == 300, family
        assert np.all(np.isfinite(ll.values)), family
    table = azs.compare(fits, round_to="none")
    other = "beta" if truth == "two_point" else "two_point"
    elpd = {k: round(float(v), 2) for k, v in table["elpd"].items()}
    assert table.index[0] == truth, f"{truth} truth: ELPD LOO {elpd} ranks {table.index[0]} first"
    diff, dse = -float(table.loc[other, "elpd_diff"]), float(table.loc[other, "dse"])
    print(f"{truth} truth: ELPD difference {diff:.2f}, dse {dse:.2f}")
    assert diff > MARGIN * dse, (
        f"{truth} truth: ELPD of {truth} exceeds {other}'s by {diff:.2f}, "
        f"not more than {MARGIN} x dse = {MARGIN * dse:.2f}"
    )
