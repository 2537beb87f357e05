"""Structure on mu across pairs: pooled and Bradley-Terry, by MAP-EM and in the PyMC model.

References here are written again with numpy/scipy: the per-user marginal
likelihood of a Beta ``P_eta`` by Gauss-Jacobi quadrature (exact, since a
user's likelihood is a polynomial in ``eta`` of degree ``N`` and ``G`` nodes
integrate degree ``2G - 1`` exactly against the Beta weight), the population
and strength priors from their formulas.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import optimize, special, stats

import attnmodel as am
from attnmodel.data.votes import VoteData
from attnmodel.errors import BoundaryWarning
from attnmodel.inference.em import EMState, fit_em
from attnmodel.model.mu_structure import PooledMu, choose_mu_structure, plain_bradley_terry
from attnmodel.model.priors import Prior
from attnmodel.results.em import em_to_datatree

#: Gamma(2, rate 0.5) on both Beta shapes: with every mu unknown the votes barely fix
#: the scale of eta (only eta (2 mu - 1) is identified), and a flat family prior lets
#: a small log's MAP sit on the box; these keep it inside, where both maximisers agree.
SHAPE_PRIORS = {
    "alpha": Prior("Gamma", alpha=2.0, beta=0.5),
    "beta": Prior("Gamma", alpha=2.0, beta=0.5),
}


def _ref_shape_prior(alpha, beta):
    return float(
        stats.gamma.logpdf(alpha, 2.0, scale=2.0) + stats.gamma.logpdf(beta, 2.0, scale=2.0)
    )


def _simulate(mu, n_users, votes, eta_ab, seed, labels=None):
    """Per-user counts: each user votes on random pairs; eta ~ Beta(eta_ab)."""
    rng = np.random.default_rng(seed)
    n_pairs = mu.size
    eta = rng.beta(*eta_ab, n_users)
    total = rng.integers(votes[0], votes[1] + 1, n_users)
    n = np.zeros((n_users, n_pairs), dtype=np.int64)
    for j in range(n_users):
        n[j] = np.bincount(rng.integers(0, n_pairs, total[j]), minlength=n_pairs)
    s = rng.binomial(n, 0.5 + eta[:, None] * (mu[None, :] - 0.5))
    return VoteData.from_counts(n, s, pairs=labels), eta


def _bt_design(n_models, skip=()):
    pairs = [(i, j) for i in range(n_models) for j in range(i + 1, n_models) if (i, j) not in skip]
    a = np.array([p[1] for p in pairs])  # the stronger model (higher index) first
    b = np.array([p[0] for p in pairs])
    labels = [f"m{x} vs m{y}" for x, y in zip(a, b, strict=True)]
    return a, b, labels


# -- the reference log posterior ------------------------------------------------


def _dense(data):
    """Distinct rows as dense (R, P) counts and their weights."""
    c = data.counts
    n = np.zeros((c.n_rows, c.n_pairs))
    s = np.zeros_like(n)
    n[c.entry_row, c.entry_pair] = c.entry_n
    s[c.entry_row, c.entry_pair] = c.entry_s
    return n, s, c.row_weight.astype(float)


def _ref_loglik(n, s, w, alpha, beta, mu):
    """sum_rows w log int prod_k g^s (1-g)^(n-s) Beta(eta; alpha, beta) d eta, exactly."""
    nodes = int(n.sum(axis=1).max()) // 2 + 2
    x, wt = special.roots_jacobi(nodes, beta - 1.0, alpha - 1.0)
    eta = 0.5 * (1.0 + x)
    log_wt = np.log(wt) - np.log(wt.sum())
    g = 0.5 + eta[None, :] * (np.asarray(mu)[:, None] - 0.5)
    ll = s @ np.log(g) + (n - s) @ np.log1p(-g)
    return float(w @ special.logsumexp(ll + log_wt[None, :], axis=1))


def _ref_pooled_prior(mu, m, c):
    # Density of z = logit(2 mu - 1) when 2 mu - 1 ~ Beta(a, b): Beta density times x (1 - x).
    a, b = 1.0 + m * c, 1.0 + (1.0 - m) * c
    x = 2.0 * mu - 1.0
    return float(
        np.sum(stats.beta.logpdf(x, a, b) + np.log(x) + np.log1p(-x))
        + stats.beta.logpdf(m, 2.0, 2.0)
        + stats.gamma.logpdf(c, 2.0, scale=10.0)
    )


def _ref_bt_prior(theta, sigma=1.0):
    # Normal on the sum-zero plane: n - 1 degrees of freedom.
    return float(
        -0.5 * np.sum((theta / sigma) ** 2)
        - (theta.size - 1) * (0.5 * np.log(2 * np.pi) + np.log(sigma))
    )


def _maximise(neg, starts):
    best = None
    for v0 in starts:
        res = optimize.minimize(neg, v0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9})
        res = optimize.minimize(
            neg, res.x, method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxfev": 20000, "adaptive": True},
        )  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    return best


@pytest.fixture(scope="module")
def small_pooled():
    rng = np.random.default_rng(4)
    mu = 0.5 + 0.5 * rng.beta(6, 3, 5)
    data, _ = _simulate(mu, 200, (4, 12), (3, 2), seed=40)
    return data


@pytest.fixture(scope="module")
def small_bt():
    theta = np.array([-0.8, -0.1, 0.3, 0.6])
    a, b, labels = _bt_design(4)
    mu = special.expit(theta[a] - theta[b])
    data, _ = _simulate(mu, 200, (4, 12), (3, 2), seed=41, labels=labels)
    return data


def test_pooled_em_equals_direct_maximisation(small_pooled):
    # Parameters within 2e-3 relative and the objective within 1e-6 relative: EM
    # integrates eta on its logit grid, the reference exactly; the grid's relative
    # error in each row's marginal is ~1e-7 (tests/test_grid.py), which moves a
    # maximiser of curvature ~N by far less than these.
    res = fit_em(small_pooled, "beta", mu_structure="pooled", n_init=2, seed=0, priors=SHAPE_PRIORS)
    assert res.converged_
    n, s, w = _dense(small_pooled)

    def unpack(v):
        alpha, beta = np.exp(v[:2])
        mu = 0.5 + 0.5 * special.expit(v[2:-2])
        return alpha, beta, mu, special.expit(v[-2]), np.exp(v[-1])

    def neg(v):
        alpha, beta, mu, m, c = unpack(v)
        val = _ref_loglik(n, s, w, alpha, beta, mu) + _ref_pooled_prior(mu, m, c)
        val += _ref_shape_prior(alpha, beta)
        return -val if np.isfinite(val) else 1e300

    k = small_pooled.counts.n_pairs
    start = np.concatenate([[np.log(3.0), np.log(1.0)], np.zeros(k), [0.0, np.log(10.0)]])
    best = _maximise(neg, [start])
    alpha, beta, mu, m, c = unpack(best.x)
    got = np.concatenate([[res.params_["alpha"], res.params_["beta"]], res.mu_, res.mu_hyper_])
    want = np.concatenate([[alpha, beta], mu, [m, c]])
    np.testing.assert_allclose(got, want, rtol=2e-3)
    # EM's own objective is no higher at the reference's optimum than at EM's.
    at_ref = res.problem.objective(EMState({"alpha": alpha, "beta": beta}, mu, np.array([m, c])))
    assert at_ref <= res.objective_ + 1e-9 * abs(at_ref)


def test_bradley_terry_em_equals_direct_maximisation(small_bt):
    res = fit_em(
        small_bt, "beta", mu_structure="bradley_terry", n_init=2, seed=0, priors=SHAPE_PRIORS
    )
    assert res.converged_
    n, s, w = _dense(small_bt)
    models = list(res.mu_structure.models)
    first = [models.index(p.split(" vs ")[0]) for p in small_bt.pairs]
    second = [models.index(p.split(" vs ")[1]) for p in small_bt.pairs]

    def unpack(v):
        theta = np.append(v[2:], -v[2:].sum())
        return np.exp(v[0]), np.exp(v[1]), theta

    def neg(v):
        alpha, beta, theta = unpack(v)
        mu = special.expit(theta[first] - theta[second])
        val = _ref_loglik(n, s, w, alpha, beta, mu) + _ref_bt_prior(theta)
        val += _ref_shape_prior(alpha, beta)
        return -val if np.isfinite(val) else 1e300

    start = np.concatenate([[np.log(3.0), np.log(1.0)], np.zeros(len(models) - 1)])
    best = _maximise(neg, [start])
    alpha, beta, theta = unpack(best.x)
    np.testing.assert_allclose(
        [res.params_["alpha"], res.params_["beta"]], [alpha, beta], rtol=2e-3
    )
    np.testing.assert_allclose(res.mu_hyper_, theta, atol=2e-3)
    np.testing.assert_allclose(res.mu_hyper_.sum(), 0.0, atol=1e-12)


# -- recovery by simulation -----------------------------------------------------


def test_pooled_recovers_the_population_mode():
    # 60 pairs, 2x - 1 ~ Beta(1 + m c, 1 + (1 - m) c) with m = 0.6, c = 10, about 25
    # votes per pair; users mostly attentive (Beta(8, 1)).
    rng = np.random.default_rng(7)
    m_true, c_true, k = 0.6, 10.0, 60
    x = rng.beta(1 + m_true * c_true, 1 + (1 - m_true) * c_true, k)
    mu = 0.5 + 0.5 * x
    data, _ = _simulate(mu, 300, (3, 7), (8, 1), seed=70)
    assert choose_mu_structure(data)[0] == "pooled"
    pooled = fit_em(data, "beta", mu_structure="pooled", n_init=2, seed=0)
    m_hat, c_hat = pooled.mu_hyper_
    # The mode of K draws is known to about sd(x) / sqrt(K); each pair's x is itself
    # estimated from ~25 votes (sd ~0.2), which adds 0.2 / sqrt(K): 4 sigma of both.
    # (The votes fix only eta (2 mu - 1), so the scale of x is set by the priors; the
    # tolerance covers that for these mostly attentive users.)
    tol = 4 * np.hypot(x.std(ddof=1), 0.2) / np.sqrt(k)
    assert abs(m_hat - m_true) <= tol, (m_hat, tol)
    # The joint MAP of the concentration stays finite and below its no-information value
    # (shape - 1 + K/2) / rate.
    assert 0 < c_hat <= (1 + k / 2) / 0.1 * 1.05, c_hat
    # The pairs keep their order: rank correlation with the truth well above chance
    # (under independence its sd is 1 / sqrt(K - 1) = 0.13; 4 sd).
    rho = stats.spearmanr(pooled.mu_.to_numpy(), mu).statistic
    assert rho > 4 / np.sqrt(k - 1), rho


def test_bradley_terry_recovers_strengths_and_unseen_pairs():
    # 6 models; the pairs (0, 5) and (1, 4) are never compared. 600 mostly attentive users.
    theta = np.array([-1.0, -0.6, -0.1, 0.2, 0.6, 0.9])
    a, b, labels = _bt_design(6, skip={(0, 5), (1, 4)})
    mu = special.expit(theta[a] - theta[b])
    data, _ = _simulate(mu, 600, (10, 30), (8, 1), seed=71, labels=labels)
    # A flat family prior: the comparison below is with plain Bradley-Terry at a fixed
    # scale of eta. Under the default mean/concentration prior the scale of eta (which
    # the votes fix only through eta (2 mu - 1)) is held by that prior instead, and the
    # Laplace sd of the strengths then also carries the scale's uncertainty, which
    # grows with |theta| (0.107 at theta = 0.9 against 0.03 near 0 on this log).
    res = fit_em(data, "beta", mu_structure="bradley_terry", n_init=2, seed=0, priors="flat")
    tree = am.results.em_to_datatree(res, n_draws=10)
    board = tree["leaderboard"].to_dataset()
    order = [int(str(mname)[1:]) for mname in board["model"].values]
    est, sd = board["strength"].values, board["strength_sd"].values
    truth = theta[order]
    # Each strength within 4 of its standard deviations (Laplace, from the curvature).
    assert np.all(np.abs(est - truth) <= 4 * sd), (est, truth, sd)
    # The standard deviations match the sampling error of plain Bradley-Terry on the
    # same vote totals, up to the dilution by careless votes (factor < 2 here).
    c = data.counts
    n_pair = np.bincount(c.entry_pair, weights=c.row_weight[c.entry_row] * c.entry_n)
    wins = np.bincount(c.entry_pair, weights=c.row_weight[c.entry_row] * c.entry_s)
    _, se = plain_bradley_terry(wins, n_pair, a, b, 6)
    assert np.all((sd > 0.8 * se[order]) & (sd < 2.5 * se[order])), (sd, se[order])
    # Never-compared pairs get mu from the strengths.
    for i, j in ((5, 0), (4, 1)):
        ti, tj = est[order.index(i)], est[order.index(j)]
        se_diff = np.hypot(sd[order.index(i)], sd[order.index(j)])
        want = special.expit(theta[i] - theta[j])
        got = special.expit(ti - tj)
        slope = want * (1 - want)
        assert abs(got - want) <= 4 * slope * se_diff + 1e-9, (got, want)


def test_weak_data_keeps_the_concentration_finite():
    # 20 pairs and 40 users with 1 to 3 votes each barely tell pairs apart: the joint
    # MAP pulls every pair to the mode, but the Gamma hyperprior keeps c near
    # (shape - 1 + K/2) / rate = 110, far below the cap, and no warning is raised.
    # (Any K shows it; each pair adds a coordinate to the fit's finite-difference gradient.)
    rng = np.random.default_rng(8)
    mu = 0.5 + 0.5 * rng.beta(4, 2, 20)
    data, _ = _simulate(mu, 40, (1, 3), (8, 1), seed=80)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", BoundaryWarning)
        res = fit_em(data, "beta", mu_structure="pooled", n_init=1, seed=0)
    assert not [w for w in seen if "concentration" in str(w.message)]
    c = res.mu_hyper_[1]
    assert np.isfinite(c) and c < 0.1 * PooledMu().max_concentration, c
    bound = (2.0 - 1 + 20 / 2) / 0.1
    assert c <= bound * 1.05, (c, bound)


def test_too_flat_a_concentration_prior_runs_to_the_cap_and_says_so():
    # The weak data of the test above (20 pairs); with a near-flat Gamma the joint
    # MAP's c grows like (K/2) log c without end, for any K.
    rng = np.random.default_rng(8)
    mu = 0.5 + 0.5 * rng.beta(4, 2, 20)
    data, _ = _simulate(mu, 40, (1, 3), (8, 1), seed=80)
    flat = PooledMu(concentration_rate=1e-6, max_concentration=2000.0)
    with pytest.warns(BoundaryWarning, match="concentration"):
        res = fit_em(data, "beta", mu_structure=flat, n_init=1, seed=0)
    assert res.mu_hyper_[1] >= 0.99 * 2000.0
    # the result stores the warning beside the family's, and summary shows it
    tree = em_to_datatree(res)
    stored = json.loads(tree.attrs["fit_warnings"])
    assert any("pooled mu concentration" in note for note in stored), stored
    assert any("pooled mu concentration" in note for note in am.summarize(tree)["warnings"])


# -- the PyMC model -------------------------------------------------------------


def _model_logp(attn, values):
    """The PyMC model's log density (no Jacobian) at constrained ``values`` of its free RVs."""
    model = attn.model
    for rv in model.free_RVs:
        model.set_initval(rv, np.asarray(values[rv.name], dtype=float))
    point = model.initial_point()
    return float(model.compile_logp(jacobian=False, mode="FAST_COMPILE")(point))


@pytest.mark.parametrize("structure", ["pooled", "bradley_terry"])
def test_pymc_logp_equals_em_objective(structure, small_pooled, small_bt):
    # The model's log density minus EM's objective is one constant (the flat family
    # prior and the binomial coefficients EM leaves out) at every point. The model is
    # built with priors="flat" because an EMProblem without a ModelPrior has a flat
    # family prior, while build_model's default is the mean/concentration prior.
    from attnmodel.inference.em import EMProblem
    from attnmodel.model.pymc_model import build_model

    data = small_pooled if structure == "pooled" else small_bt
    attn = build_model(data, "beta", mu_structure=structure, priors="flat")
    em = EMProblem(
        data.counts, attn.family, attn.mu_spec, grid=attn.grid, structure=attn.mu_structure
    )
    rng = np.random.default_rng(5)
    diffs = []
    for _ in range(3):
        params = {"alpha": rng.uniform(1, 5), "beta": rng.uniform(0.5, 3)}
        if structure == "pooled":
            mu = rng.uniform(0.55, 0.95, data.counts.n_pairs)
            hyper = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.5, 30)])
            values = {**params, "mu_logit": special.logit(2 * mu - 1), "mu_pop_mode": hyper[0],
                      "mu_pop_concentration": hyper[1]}  # fmt: skip
        else:
            hyper = rng.normal(0, 1, len(attn.mu_structure.models))
            hyper -= hyper.mean()
            mu = attn.mu_structure.mu(hyper)
            values = {**params, "theta": hyper}
        diffs.append(_model_logp(attn, values) - em.objective(EMState(params, mu, hyper)))
    assert np.ptp(diffs) <= 1e-8 * abs(diffs[0]), diffs


@pytest.mark.parametrize("structure", ["pooled", "bradley_terry"])
def test_nuts_smoke(structure, small_bt):
    tree = am.fit(small_bt, "beta", method="nuts", mu_structure=structure, draws=50, tune=50,
                  chains=1, cores=1, progressbar=False, seed=1)  # fmt: skip
    post = tree["posterior"]
    name = "theta" if structure == "bradley_terry" else "mu_hyper"
    assert np.all(np.isfinite(post[name].values))
    if structure == "bradley_terry":
        np.testing.assert_allclose(post["theta"].sum("model").values, 0.0, atol=1e-8)
        assert "leaderboard" in tree.children
    else:
        assert np.all(post["mu"].values > 0.5)
    # summary reports the structure's parameters with their HDIs (API and CLI text).
    from attnmodel.cli.commands import format_summary

    summary = am.summarize(tree)
    assert summary["mu_structure"] == structure
    size = post[name].shape[-1]
    assert len(summary["structure"]) == size
    first = next(iter(summary["structure"]))
    assert first.startswith(f"{name}[")
    assert summary["structure"][first] == pytest.approx(float(post[name][..., 0].mean()))
    lo, hi = summary["params_hdi"][first]
    assert lo <= summary["structure"][first] <= hi
    assert f"mu structure: {structure}" in format_summary(summary)


def test_default_rule():
    rng = np.random.default_rng(0)
    one, _ = _simulate(np.array([0.8]), 50, (1, 3), (8, 1), seed=1)
    assert choose_mu_structure(one)[0] == "independent"
    many_thin, _ = _simulate(0.5 + 0.5 * rng.beta(4, 2, 20), 50, (1, 3), (8, 1), seed=2)
    assert choose_mu_structure(many_thin)[0] == "pooled"
    many_thick, _ = _simulate(0.5 + 0.5 * rng.beta(4, 2, 4), 200, (10, 20), (8, 1), seed=3)
    assert choose_mu_structure(many_thick)[0] == "independent"
    # Known mu leave nothing to pool.
    assert choose_mu_structure(many_thin, mu=0.8)[0] == "independent"
    # mu_prior belongs to independent: auto then keeps independent, an explicit pooled refuses.
    assert fit_em(many_thin, "beta", mu_prior=(8, 2), n_init=1).mu_structure.name == "independent"
    with pytest.raises(ValueError, match="mu_prior applies"):
        fit_em(many_thin, "beta", mu_structure="pooled", mu_prior=(8, 2))
    with pytest.raises(ValueError, match="unknown mu_structure"):
        fit_em(many_thin, "beta", mu_structure="hierarchical")


def test_independent_is_unchanged_bit_for_bit(beta_data):
    a = fit_em(beta_data, "beta", mu_prior=(8, 2), n_init=2, seed=3)
    b = fit_em(beta_data, "beta", mu_prior=(8, 2), n_init=2, seed=3, mu_structure="independent")
    assert a.objective_ == b.objective_
    assert a.params_ == b.params_
    assert a.mu_hyper_ is None and b.mu_hyper_ is None
