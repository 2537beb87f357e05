"""Simulation-based calibration of the NUTS model (Talts et al. 2018), in the slow job.

For each case, ``N_DATASETS`` parameter sets are drawn from the model's prior,
votes simulated from each with numpy, and the posterior sampled with NUTS; if
the sampler targets the model's posterior, the rank of the true value among
``L`` posterior draws is uniform on ``0..L``. Cases:

- Beta ``P_eta`` with ``mu`` under ``BetaPrior(8, 2)`` (the identified
  coordinates): ``alpha``, ``beta`` uniform on the box ``[0.2, 50]``, ``mu``
  from the prior; the model takes that flat prior explicitly
  (``priors="flat"``, the paper's; the default is a mean/concentration prior);
- two-point ``P_eta`` with ``mu = 0.8`` known: ``q_low`` uniform on [0, 1],
  ``(eta_low, eta_high)`` uniform on ``eta_low < eta_high``.

Every data set has ``VOTES`` votes per user on one pair and 40 to 80 users,
so the distinct count rows are always ``s = 0..VOTES``: the model is built and
compiled once (on a template holding one user per row) and each data set only
swaps the number of users per row (``pm.set_data({"row_weight": ...})``),
reusing one NUTS step (its adaptation carries over, which changes only the
sampler's efficiency).

NUTS runs 2 chains of ``DRAWS[family]`` draws after as many tuning steps
(500 for two-point, whose chains mix more slowly when an atom holds few
users: with 200 its ``eta_high`` ranks gave p = 0.005, with 600 p = 0.62).

Test: the ranks (``L = 19`` draws kept, evenly spaced among the chains'
draws, so that they are nearly independent) of each parameter are counted in
10 bins of two rank values, and a chi-square test of uniformity (9 degrees of
freedom) is applied per parameter; the family-wise level over the six
parameters is 1% (Bonferroni: each p-value must exceed 0.01 / 6).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import attnmodel as am

N_DATASETS = 100
VOTES = 20
L = 19
BINS = 10
FAMILY_WISE = 0.01
N_TESTS = 6
DRAWS = {"beta": 200, "two_point": 500}
BOX = (0.2, 50.0)  # the documented alpha/beta box for users with at most 625 votes
MU_PRIOR = am.BetaPrior(8.0, 2.0)
MU_KNOWN = 0.8


def template():
    """One user per possible count row ``s = 0..VOTES``: user ``s`` has ``s`` wins."""
    return am.VoteData.from_counts(np.full(VOTES + 1, VOTES), np.arange(VOTES + 1))


def draw_truth(family, rng):
    if family == "beta":
        a, b = rng.uniform(*BOX, size=2)
        mu = float(MU_PRIOR.sample(1, rng)[0])
        return {"alpha": a, "beta": b, "mu": mu}
    q = rng.uniform()
    lo, hi = np.sort(rng.uniform(size=2))
    return {"q_low": q, "eta_low": lo, "eta_high": hi, "mu": MU_KNOWN}


def draw_eta(family, truth, m, rng):
    if family == "beta":
        return rng.beta(truth["alpha"], truth["beta"], size=m)
    low = rng.uniform(size=m) < truth["q_low"]
    return np.where(low, truth["eta_low"], truth["eta_high"])


def sbc_ranks(family, names, seed, **model_kw):
    data = template()
    attn = am.build_model(data, family, **model_kw)
    # Row of the model's count table for each number of wins s (user s of the template).
    row_of_s = np.asarray(data.counts.user_row)
    n_rows = int(row_of_s.max()) + 1
    assert np.array_equal(np.sort(row_of_s), np.arange(n_rows))
    with attn.model:
        step = pm.NUTS(target_accept=0.9)
    ranks = {name: [] for name in names}
    for i in range(N_DATASETS):
        rng = np.random.default_rng([seed, i])
        truth = draw_truth(family, rng)
        m = int(rng.integers(40, 81))
        eta = draw_eta(family, truth, m, rng)
        s = rng.binomial(VOTES, 0.5 + eta * (truth["mu"] - 0.5))
        weight = np.zeros(n_rows)
        np.add.at(weight, row_of_s[s], 1.0)
        with attn.model:
            pm.set_data({"row_weight": weight})
            idata = pm.sample(
                draws=DRAWS[family],
                tune=DRAWS[family],
                chains=2,
                cores=1,
                step=step,
                progressbar=False,
                random_seed=[seed, i, 1],
                compute_convergence_checks=False,
            )
        for name in names:
            x = idata["posterior"][name].values
            x = x.reshape(-1) if x.ndim == 2 else x[..., 0].reshape(-1)
            kept = x[np.linspace(0, x.size - 1, L).astype(int)]
            ranks[name].append(int((kept < truth[name]).sum()))
    return {k: np.array(v) for k, v in ranks.items()}


def assert_uniform(ranks):
    report, failed = [], []
    for name, r in ranks.items():
        hist = np.histogram(r, bins=BINS, range=(0, L + 1))[0]
        p = stats.chisquare(hist).pvalue
        report.append(f"{name}: {hist.tolist()} p = {p:.3f}")
        if p < FAMILY_WISE / N_TESTS:
            failed.append(name)
    print("; ".join(report))
    assert not failed, f"ranks not uniform for {failed}: " + "; ".join(report)


@pytest.mark.slow
def test_sbc_beta_mu_under_prior():
    ranks = sbc_ranks("beta", ("alpha", "beta", "mu"), seed=1, mu_prior=MU_PRIOR, priors="flat")
    assert_uniform(ranks)


@pytest.mark.slow
def test_sbc_two_point_mu_known():
    ranks = sbc_ranks("two_point", ("q_low", "eta_low", "eta_high"), seed=2, mu=MU_KNOWN)
    assert_uniform(ranks)
