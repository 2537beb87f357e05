"""Simulation-based calibration of the NUTS model (Talts et al. 2018), in the slow job.

For each case, ``N_DATASETS`` parameter sets are drawn from the model's prior,
votes simulated from each with numpy, and the posterior sampled with NUTS; if
the sampler targets the model's posterior, the rank of the true value among
``L`` posterior draws is uniform on ``0..L``. Cases:

- Beta ``P_eta`` with ``mu`` under ``BetaPrior(8, 2)`` (the identified
  coordinates): ``alpha``, ``beta`` uniform on the box ``[0.1, 50]``, ``mu``
  from the prior; the model takes that flat prior explicitly
  (``priors="flat"``, the paper's; the default is a mean/concentration prior);
- two-point ``P_eta`` with ``mu = 0.8`` known: ``q_low`` uniform on [0, 1],
  ``(eta_low, eta_high)`` uniform on ``eta_low < eta_high``;
- two-point ``P_eta`` (the same prior) with ``mu_structure="bradley_terry"``
  over three models A, B, C and their three pairs: ``theta ~
  ZeroSumNormal(1)``; ranks of ``theta[0]`` and ``theta[1]`` (``theta[2]``
  is their negated sum);
- two-point ``P_eta`` (the same prior) with ``mu_structure="pooled"`` over the
  same three pairs, every ``mu`` unknown: ``2 mu_k - 1 ~ Beta(1 + m c, 1 +
  (1 - m) c)`` with ``PooledMu``'s default hyperpriors ``m ~ Beta(2, 2)``,
  ``c ~ Gamma(2, rate 0.1)``; ranks of ``q_low``, ``eta_high``, ``m``, ``c``
  and ``mu[0]``;
- Beta ``P_eta`` (flat shapes, as above) with ties modelled (``ties="model"``),
  one pair of ``mu = 0.8`` known: ``kappa ~ Beta(1.5, 1.5)``, ``tau_mean ~
  Beta(1.5, 1.5)``, ``tau_conc ~ LogNormal(log 10, 1.5)``, each user's ``tau``
  from their Beta population; ``TIE_VOTES`` = 6 votes per user, ties included
  (the template holds the 28 ``(s, f, t)``); ranks of ``alpha``, ``beta``,
  ``kappa``, ``tau_mean`` and ``tau_conc``.

Every data set has 40 to 80 users, each with ``VOTES`` votes on one pair (for
Bradley-Terry and pooled, a pair drawn uniformly for each user), so the
distinct count rows are always among ``s = 0..VOTES`` on each pair: the model
is built and compiled once (on a template holding one user per row) and each data set only
swaps the number of users per row (``pm.set_data({"row_weight": ...})``),
reusing one NUTS step (its adaptation carries over, which changes only the
sampler's efficiency) and one compiled function of the stored variables
(:class:`CompiledTrace`; the draws are those of ``pm.sample``'s own trace).

NUTS runs ``(chains, tuning steps, draws) = SAMPLING[case]``: 2 chains of 200
draws after as many tuning steps for Beta, of 500 for two-point (whose chains
mix more slowly when an atom holds few users: with 200 its ``eta_high`` ranks
gave p = 0.005, with 600 p = 0.62); for Bradley-Terry, whose gradient costs
three times as much (63 count rows against 21), one chain of 400 draws after
300 tuning steps, which keeps the slow job's time (its ranks gave p = 0.13 to
0.85 with this setting, 0.30 to 0.80 with 2 chains of 300 draws).
The pooled case, on the same template, runs the same setting. The tie case
runs one chain of 300 draws after 200 tuning steps (about 2 s of CPU per data
set on an idle machine, see benchmarks/README.md, "NUTS with ties").

Test: the ranks (``L = 19`` draws kept, evenly spaced among the chains'
draws, so that they are nearly independent) of each parameter are counted in
10 bins of two rank values, and a chi-square test of uniformity (9 degrees of
freedom) is applied per parameter; the family-wise level over the 21
parameters of the five cases is 1% (Bonferroni: each p-value must exceed
0.01 / 21).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from pymc.backends.ndarray import NDArray
from scipy import special, stats

import attnmodel as am
from attnmodel.model.mu_structure import PooledMu

N_DATASETS = 100
VOTES = 20
L = 19
BINS = 10
FAMILY_WISE = 0.01
N_TESTS = 21
SAMPLING = {
    "beta": (2, 200, 200),
    "two_point": (2, 500, 500),
    "bradley_terry": (1, 300, 400),
    "pooled": (1, 300, 400),
    "ties": (1, 200, 300),
}
BOX = (0.1, 50.0)  # the documented alpha/beta box for users with at most 625 votes
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


def one_pair_case(family):
    """Template, prior draw and simulated wins (one pair, ``VOTES`` votes per user)."""

    def simulate(truth, rng):
        m = int(rng.integers(40, 81))
        eta = draw_eta(family, truth, m, rng)
        return rng.binomial(VOTES, 0.5 + eta * (truth["mu"] - 0.5))

    return template(), lambda rng: draw_truth(family, rng), simulate


# Bradley-Terry: three models, every pair compared; each user casts VOTES votes
# on one pair (drawn uniformly), so the template holds one user per (pair, s):
# 3 (VOTES + 1) rows, where every user on every pair would need (VOTES + 1)^3
# (the likelihood's cost grows with the rows, zero-weight ones included).
BT_PAIRS, BT_A, BT_B = ["A vs B", "B vs C", "A vs C"], np.array([0, 1, 0]), np.array([1, 2, 2])


def one_pair_each_template():
    """One user per (pair, s) of the three pairs: ``VOTES`` votes on that pair alone."""
    n_pairs = len(BT_PAIRS)
    pair = np.repeat(np.arange(n_pairs), VOTES + 1)
    wins = np.tile(np.arange(VOTES + 1), n_pairs)
    n = np.zeros((pair.size, n_pairs), dtype=np.int64)
    s = np.zeros_like(n)
    n[np.arange(pair.size), pair] = VOTES
    s[np.arange(pair.size), pair] = wins
    return am.VoteData.from_counts(n, s, pairs=BT_PAIRS)


def simulate_one_pair_each(truth, rng):
    """Two-point users of ``VOTES`` votes on one pair drawn uniformly; their template users."""
    n_pairs = len(BT_PAIRS)
    m = int(rng.integers(40, 81))
    eta = draw_eta("two_point", truth, m, rng)
    k = rng.integers(n_pairs, size=m)
    wins = rng.binomial(VOTES, 0.5 + eta * (truth["mu"][k] - 0.5))
    return k * (VOTES + 1) + wins  # the template's user with these votes


def bradley_terry_case():
    n_pairs = len(BT_PAIRS)

    def truth(rng):
        # ZeroSumNormal(1): an iid standard normal projected on the sum-zero plane.
        z = rng.normal(size=n_pairs)
        theta = z - z.mean()
        out = draw_truth("two_point", rng)
        out.update({f"theta[{i}]": theta[i] for i in range(n_pairs)})
        out["mu"] = special.expit(theta[BT_A] - theta[BT_B])
        return out

    return one_pair_each_template(), truth, simulate_one_pair_each


# Pooled: the same three pairs and template, every mu unknown and drawn from the
# population of PooledMu's defaults: 2 mu_k - 1 ~ Beta(1 + m c, 1 + (1 - m) c),
# m ~ Beta(2, 2), c ~ Gamma(shape 2, rate 0.1).
POOLED = PooledMu()


def pooled_case():
    def truth(rng):
        out = draw_truth("two_point", rng)
        m = rng.beta(*POOLED.mode_prior)
        c = rng.gamma(POOLED.concentration_shape, 1.0 / POOLED.concentration_rate)
        x = rng.beta(1.0 + m * c, 1.0 + (1.0 - m) * c, size=len(BT_PAIRS))
        out.update({"mu_pop_mode": m, "mu_pop_concentration": c, "mu": 0.5 + 0.5 * x})
        out.update({f"mu[{k}]": out["mu"][k] for k in range(len(BT_PAIRS))})
        return out

    return one_pair_each_template(), truth, simulate_one_pair_each


# Ties as evidence (``ties="model"``): Beta ``P_eta`` (flat shapes on the box),
# one pair of mu = 0.8 known, every user TIE_VOTES votes, ties included; the tie
# parameters from their priors, written again here (attnmodel.model.ties states them).
TIE_VOTES = 6
KAPPA_PRIOR = (1.5, 1.5)  # Beta
TAU_MEAN_PRIOR = (1.5, 1.5)  # Beta
TAU_CONC_PRIOR = (np.log(10.0), 1.5)  # LogNormal (log-scale location, scale)


def tie_template():
    """One user per ``(s, f, t)`` with ``s + f + t = TIE_VOTES`` (wins, losses, ties)."""
    sft = np.array(
        [(s, TIE_VOTES - t - s, t) for t in range(TIE_VOTES + 1) for s in range(TIE_VOTES + 1 - t)]
    )
    n = sft[:, 0] + sft[:, 1]
    return am.VoteData.from_counts(n[:, None], sft[:, :1], t=sft[:, 2:])


def tie_case():
    """Template, prior draw and simulated votes of the tie model (the vote mechanism in numpy).

    An attentive vote is a tie with probability ``tau``, else goes to the
    stronger model with probability ``mu``; a careless one is a tie with
    probability ``tau + (1 - tau) kappa``, else a coin flip.
    """

    def truth(rng):
        a, b = rng.uniform(*BOX, size=2)
        return {
            "alpha": a,
            "beta": b,
            "kappa": rng.beta(*KAPPA_PRIOR),
            "tau_mean": rng.beta(*TAU_MEAN_PRIOR),
            "tau_conc": rng.lognormal(*TAU_CONC_PRIOR),
        }

    def simulate(truth, rng):
        m = int(rng.integers(40, 81))
        eta = rng.beta(truth["alpha"], truth["beta"], size=m)
        mean, conc = truth["tau_mean"], truth["tau_conc"]
        tau = rng.beta(mean * conc, (1.0 - mean) * conc, size=m)
        careless = (1.0 - eta) * (1.0 - truth["kappa"]) / 2.0
        win = (1.0 - tau) * (eta * MU_KNOWN + careless)
        loss = (1.0 - tau) * (eta * (1.0 - MU_KNOWN) + careless)
        tie = 1.0 - win - loss
        sft = np.array([rng.multinomial(TIE_VOTES, p) for p in np.stack([win, loss, tie], axis=1)])
        # Template user of (s, t): users are listed by t, then s.
        t = sft[:, 2]
        first = t * (TIE_VOTES + 1) - t * (t - 1) // 2
        return first + sft[:, 0]

    return tie_template(), truth, simulate


class CompiledTrace(NDArray):
    """PyMC's in-memory trace whose function of the stored variables is compiled once.

    ``pm.sample`` compiles that function for every chain of every call (a
    fifth of a Beta data set's CPU time here); given this trace it takes a
    copy per chain, which gets fresh arrays and the one compiled function.
    The draws are the same.
    """

    def __copy__(self):
        return CompiledTrace(
            model=self.model, vars=self.vars, fn=self.fn,
            var_shapes=self.var_shapes, var_dtypes=self.var_dtypes,
        )  # fmt: skip


def sbc_ranks(case, names, seed, sampling, n_datasets=N_DATASETS, **model_kw):
    """Ranks of the true values among ``L`` posterior draws, per name, over the data sets.

    ``case = (template, draw_truth(rng), simulate(truth, rng))``, where
    ``simulate`` returns the template user whose counts each simulated user has;
    ``names`` holds variables, or ``(variable, index, truth key)`` for one
    element of a vector.
    """
    data, draw, simulate = case
    attn = am.build_model(data, **model_kw)
    # Row of the model's count table for each template user.
    row_of_user = np.asarray(data.counts.user_row)
    n_rows = int(row_of_user.max()) + 1
    assert np.array_equal(np.sort(row_of_user), np.arange(n_rows))
    with attn.model:
        step = pm.NUTS(target_accept=0.9)
        trace = CompiledTrace()
    items = [(x, 0, x) if isinstance(x, str) else x for x in names]
    ranks = {key: [] for _, _, key in items}
    for i in range(n_datasets):
        rng = np.random.default_rng([seed, i])
        truth = draw(rng)
        weight = np.zeros(n_rows)
        np.add.at(weight, row_of_user[simulate(truth, rng)], 1.0)
        with attn.model:
            pm.set_data({"row_weight": weight})
            idata = pm.sample(
                draws=sampling[2],
                tune=sampling[1],
                chains=sampling[0],
                cores=1,
                step=step,
                trace=trace,
                progressbar=False,
                random_seed=[seed, i, 1],
                compute_convergence_checks=False,
            )
        for var, index, key in items:
            x = idata["posterior"][var].values
            x = x.reshape(-1) if x.ndim == 2 else x[..., index].reshape(-1)
            kept = x[np.linspace(0, x.size - 1, L).astype(int)]
            ranks[key].append(int((kept < truth[key]).sum()))
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


def cases():
    """The slow job's cases: label -> ``(case, names, seed, sampling, model keywords)``.

    Shared with ``benchmarks/sbc_ci.py``, which prints their table.
    """
    bt_names = ["q_low", "eta_low", "eta_high"] + [("theta", i, f"theta[{i}]") for i in range(2)]
    pooled_names = ["q_low", "eta_high", "mu_pop_mode", "mu_pop_concentration", ("mu", 0, "mu[0]")]
    return {
        "Beta (flat shapes), mu ~ BetaPrior(8, 2)": (
            one_pair_case("beta"), ("alpha", "beta", "mu"), 1, SAMPLING["beta"],
            {"family": "beta", "mu_prior": MU_PRIOR, "priors": "flat"},
        ),
        "two-point, mu = 0.8 known": (
            one_pair_case("two_point"), ("q_low", "eta_low", "eta_high"), 2, SAMPLING["two_point"],
            {"family": "two_point", "mu": MU_KNOWN},
        ),
        "two-point, Bradley-Terry (3 models)": (
            bradley_terry_case(), bt_names, 3, SAMPLING["bradley_terry"],
            {"family": "two_point", "mu_structure": "bradley_terry"},
        ),
        "two-point, pooled mu (3 pairs)": (
            pooled_case(), pooled_names, 4, SAMPLING["pooled"],
            {"family": "two_point", "mu_structure": "pooled"},
        ),
        "Beta (flat shapes), ties modelled, mu = 0.8 known": tie_sbc_case(),
    }  # fmt: skip


def tie_sbc_case():
    """The tie model's case: ``(case, names, seed, sampling, model keywords)``."""
    names = ("alpha", "beta", "kappa", "tau_mean", "tau_conc")
    kw = {"family": "beta", "mu": MU_KNOWN, "priors": "flat"}
    return tie_case(), names, 5, SAMPLING["ties"], kw


def run_case(label):
    case, names, seed, sampling, kw = cases()[label]
    return sbc_ranks(case, names, seed, sampling, **kw)


@pytest.mark.slow
def test_sbc_beta_mu_under_prior():
    assert_uniform(run_case("Beta (flat shapes), mu ~ BetaPrior(8, 2)"))


@pytest.mark.slow
def test_sbc_two_point_mu_known():
    assert_uniform(run_case("two-point, mu = 0.8 known"))


@pytest.mark.slow
def test_sbc_bradley_terry_two_point():
    assert_uniform(run_case("two-point, Bradley-Terry (3 models)"))


@pytest.mark.slow
def test_sbc_pooled_two_point():
    assert_uniform(run_case("two-point, pooled mu (3 pairs)"))


@pytest.mark.slow
def test_sbc_ties_modelled():
    assert_uniform(run_case("Beta (flat shapes), ties modelled, mu = 0.8 known"))
