"""MAP-EM: it reaches the maximum it claims, never goes downhill, and reports honestly."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import ConvergenceWarning, EMProblem, EMState, fit_em
from attnmodel.model.families import get_family
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.priors import BetaPrior, resolve_mu
from attnmodel.model.simulate import simulate_counts

PAPER_PRIOR = BetaPrior(8, 2)


def _direct_maximum(problem: EMProblem, start_vecs, objective=None):
    """Maximise the EM objective (or ``objective(state)``) directly with scipy, independently of EM.

    L-BFGS-B with finite-difference gradients on the unconstrained coordinates,
    then a Nelder-Mead polish (no gradients to get wrong) to 1e-13 of the objective,
    far inside the tests' tolerances; best of all starts.
    """
    objective = problem.objective if objective is None else objective

    def neg(v):
        val = objective(problem.from_vector(v))
        return -val if np.isfinite(val) else 1e300

    best = None
    for v0 in start_vecs:
        res = optimize.minimize(
            neg,
            np.asarray(v0, float),
            method="L-BFGS-B",
            options={"ftol": 1e-16, "gtol": 1e-10, "maxiter": 2000, "eps": 1e-7},
        )
        res = optimize.minimize(
            neg,
            res.x,
            method="Nelder-Mead",
            options={
                "xatol": 1e-10,
                # Relative to the objective: an absolute 1e-12 is below the rounding of a
                # sum of order 1e4 (an ulp is 4e-12 there), which a start's polish then
                # chases until its evaluation cap.
                "fatol": 1e-13 * max(1.0, abs(res.fun)),
                "maxfev": 6000,
                "adaptive": True,
                "initial_simplex": res.x
                + np.vstack([np.zeros(res.x.size), 1e-4 * np.eye(res.x.size)]),
            },
        )
        if best is None or res.fun < best.fun:
            best = res
    return problem.from_vector(best.x), -best.fun


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(np.asarray(b)), 1e-12)


def _reference_objective(problem: EMProblem, family: str, mu_mode: str):
    """EM's objective with its priors written again with scipy (up to constants).

    The votes' log-likelihood is the package's (its own tests check it); the
    ``mu`` prior is the paper's Beta(8, 2); under the default priors the Beta
    shapes have ``m = a / (a + b) ~ Beta(1.5, 1.5)`` and ``a + b ~ LogNormal(log 8,
    0.8)``, a density ``p(m) p(k) / k`` in ``(a, b)``, whose mode EM takes in
    ``(log a, log b)`` (Jacobian ``a b``); the two-point defaults are flat.
    """

    def objective(state: EMState) -> float:
        value = problem.e_step(state).log_likelihood
        if mu_mode == "prior":
            value += float(np.sum(stats.beta.logpdf(state.mu, 8.0, 2.0)))
        if family == "beta":
            a, b = state.params["alpha"], state.params["beta"]
            k = a + b
            value += (
                stats.beta.logpdf(a / k, 1.5, 1.5)
                + stats.lognorm.logpdf(k, 0.8, scale=8.0)
                - np.log(k)
                + np.log(a * b)
            )
        return float(value)

    return objective


@pytest.mark.parametrize("family", ["two_point", "beta"])
@pytest.mark.parametrize("mu_mode", ["known", "prior"])
def test_em_reaches_direct_maximum(family, mu_mode, beta_data, two_point_data):
    # EM must agree with a direct maximisation of its objective, priors written again
    # with scipy: parameters within 1e-4 relative, objective within 1e-6 relative
    # (the optimisers stop well inside both).
    data = beta_data if family == "beta" else two_point_data
    kw = {"mu": 0.8} if mu_mode == "known" else {"mu_prior": PAPER_PRIOR}
    res = fit_em(data, family, n_init=2, seed=1, **kw)
    assert res.converged_
    problem = res.problem
    rng = np.random.default_rng(99)
    starts = [problem.to_vector(problem.initial_state(k, rng)) for k in (3, 4, 5)]
    reference = _reference_objective(problem, family, mu_mode)
    state, value = _direct_maximum(problem, starts, reference)
    em_value = reference(res.state_)
    assert _rel(em_value, value) <= 1e-6
    # EM's value can only be at or below the true maximum up to the tolerance.
    assert em_value >= value - 1e-6 * abs(value)
    # EM's own objective differs from the reference by a constant (the priors' normalisers).
    assert res.objective_ - em_value == pytest.approx(
        problem.objective(state) - value, rel=1e-9, abs=1e-7
    )
    em_flat = res.family.flat(res.params_)
    direct_flat = res.family.flat(state.params)
    for key in em_flat:
        assert _rel(em_flat[key], direct_flat[key]) <= 1e-4, (key, em_flat[key], direct_flat[key])
    if mu_mode == "prior":
        assert _rel(res.mu_.iloc[0], state.mu[0]) <= 1e-4


@pytest.mark.parametrize(
    ("family", "k"), [("k_point", 3), ("beta_mixture", 2), ("logistic_normal_mixture", 2)]
)
def test_mixture_em_is_a_local_maximum(family, k):
    # A direct maximisation started at EM's answer finds nothing better than 1e-6 relative.
    # The bimodal truth of the paper's Figure 4 suits mixtures; equal n_j keep the
    # distinct rows (and so the test) small.
    truth = {"weights": [0.6, 0.4], "alpha": [4.0, 16.0], "beta": [16.0, 4.0]}
    n, s, _ = simulate_counts("beta_mixture", truth, 400, 200, 0.8, seed=21)
    data = VoteData.from_counts(n, s)
    res = fit_em(data, family, n_components=k, mu=0.8, n_init=2, seed=3)
    problem = res.problem
    state, value = _direct_maximum(problem, [problem.to_vector(res.state_)])
    assert value <= res.objective_ + 1e-6 * abs(res.objective_)


def _per_vote_loglik(votes: pd.DataFrame, users, pairs, family, params, mu, grid):
    """Marginal log-likelihood vote by vote (no collapsing, no binomial counts)."""
    if family.discrete:
        w, loc = family.components(params)
        eta, log_mass = loc, np.log(w)
    else:
        eta = grid.eta
        log_mass = grid.log_weight + family.log_density_logit(grid.u, params)
    user_pos = {u: i for i, u in enumerate(users)}
    pair_pos = {p: i for i, p in enumerate(pairs)}
    ll = np.zeros((len(users), eta.size))
    for u, p, z in zip(votes["user"], votes["pair"], votes["z"], strict=True):
        g = 0.5 + eta * (mu[pair_pos[p]] - 0.5)
        ll[user_pos[u]] += np.log(g) if z == 1 else np.log(1.0 - g)
    return float(special.logsumexp(ll + log_mass, axis=1).sum())


@pytest.mark.parametrize("family", ["two_point", "beta", "logistic_normal_mixture"])
def test_collapsed_binomial_equals_per_vote_bernoulli(family, rng):
    # Users share count rows (few votes, three pairs), so collapsing really merges rows.
    n_users = 60
    n = rng.integers(1, 6, size=n_users)
    user = np.repeat([f"j{i}" for i in range(n_users)], n)
    pair = rng.choice(["p0", "p1", "p2"], size=user.size)
    votes = pd.DataFrame({"user": user, "pair": pair, "z": rng.integers(0, 2, size=user.size)})
    data = VoteData.from_frame(votes, pair="pair")
    assert data.counts.n_rows < n_users
    fam = get_family(family)
    params = {
        "two_point": {"q_low": 0.3, "eta_low": 0.2, "eta_high": 0.9},
        "beta": {"alpha": 2.0, "beta": 3.0},
        "logistic_normal_mixture": {
            "weights": np.array([0.4, 0.6]),
            "logit_mean": np.array([-1.0, 1.5]),
            "logit_sd": np.array([0.7, 0.5]),
        },
    }[family]
    mu = np.array([0.9, 0.7, 0.6])
    spec = resolve_mu(list(data.pairs), dict(zip(data.pairs, mu, strict=True)))
    grid = make_logit_grid(5)
    problem = EMProblem(data.counts, fam, spec, grid)
    collapsed = problem.e_step(EMState(params, mu)).log_likelihood
    per_vote = _per_vote_loglik(votes, list(data.users), list(data.pairs), fam, params, mu, grid)
    # Both sum the same terms in a different order: only rounding separates them.
    assert collapsed == pytest.approx(per_vote, rel=1e-12)


_families = st.sampled_from(
    ["two_point", "k_point", "beta", "beta_mixture", "logistic_normal_mixture"]
)


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    family=_families,
    seed=st.integers(0, 2**31 - 1),
    n_users=st.integers(2, 40),
    max_votes=st.integers(1, 60),
    n_pairs=st.integers(1, 3),
    mu_known=st.booleans(),
    accelerate=st.booleans(),
)
def test_objective_never_decreases(family, seed, n_users, max_votes, n_pairs, mu_known, accelerate):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, max_votes + 1, size=(n_users, n_pairs))
    n[rng.random((n_users, n_pairs)) < 0.3] = 0
    n[:, 0] = np.maximum(n[:, 0], 1)
    s = rng.binomial(n, rng.uniform(0.3, 1.0, size=(n_users, 1)))
    data = VoteData.from_counts(n, s)
    mu = 0.8 if mu_known else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_em(data, family, mu=mu, n_init=2, max_iter=60, accelerate=accelerate, seed=seed)
    for run in res.runs_:
        obj = run["objective"].to_numpy()
        assert np.all(np.isfinite(obj))
        # Allow only floating-point noise of a sum of R terms.
        slack = 1e-10 * (1.0 + np.abs(obj[1:]))
        assert np.all(np.diff(obj) >= -slack), np.diff(obj).min()


def test_two_point_location_step_matches_appendix_c1(two_point_data):
    # One pair, mu known: the M-step is the closed form of the paper's appendix C.1.
    fam = get_family("two_point")
    spec = resolve_mu(list(two_point_data.pairs), 0.8)
    problem = EMProblem(two_point_data.counts, fam, spec)
    state = EMState({"q_low": 0.5, "eta_low": 0.3, "eta_high": 0.8}, np.array([0.8]))
    estep = problem.e_step(state, posterior=True)
    new = problem.m_step(state, estep)
    c = two_point_data.counts
    gamma = estep.posterior  # (R, 2)
    weight = c.row_weight[:, None] * gamma
    n, s = c.entry_n[:, None], c.entry_s[:, None]
    expected = ((2 * s - n) * weight).sum(0) / ((2 * 0.8 - 1) * (n * weight).sum(0))
    expected = np.clip(expected, 0, 1)
    assert new.params["eta_low"] == pytest.approx(expected[0], rel=1e-10)
    assert new.params["eta_high"] == pytest.approx(expected[1], rel=1e-10)
    assert new.params["q_low"] == pytest.approx(weight[:, 0].sum() / c.row_weight.sum(), rel=1e-12)


def test_mu_update_maximises_q_and_prior_derivatives_match(beta_data):
    # The mu M-step uses hand-written derivatives; check its answer with finite differences.
    prior = PAPER_PRIOR
    res = fit_em(beta_data, "beta", mu_prior=prior, n_init=1, max_iter=3, warn=False)
    problem = res.problem
    state = EMState(res.params_, np.array([0.7]))
    estep = problem.e_step(state)
    mu_new = problem.m_step(state, estep).mu[0]
    s_stat, f_stat = estep.s_stat, estep.f_stat
    eta, om = problem.grid.eta, problem.grid.one_minus_eta

    def q(m):
        return float(
            np.sum(
                s_stat[0] * np.log(0.5 * om + eta * m)
                + f_stat[0] * np.log(0.5 * om + eta * (1 - m))
            )
            + prior.logpdf(m)
        )

    h = 1e-5
    slope = (q(mu_new + h) - q(mu_new - h)) / (2 * h)
    curv = (q(mu_new + h) - 2 * q(mu_new) + q(mu_new - h)) / h**2
    # Distance to the stationary point by one Newton step: 1e-8 leaves room for
    # finite-difference rounding (|q| ~ 1e4, eps ~ 1e-16, h = 1e-5).
    assert curv < 0
    assert abs(slope / curv) <= 1e-8
    for m in (0.6, 0.75, 0.9):
        num = (prior.logpdf(m + 1e-6) - prior.logpdf(m - 1e-6)) / 2e-6
        assert prior.dlogpdf(m) == pytest.approx(num, rel=1e-6)
        num2 = (prior.dlogpdf(m + 1e-6) - prior.dlogpdf(m - 1e-6)) / 2e-6
        assert prior.d2logpdf(m) == pytest.approx(num2, rel=1e-5)


def test_restarts_start_from_different_points(beta_data):
    res = fit_em(beta_data, "beta", mu=0.8, n_init=4, seed=7)
    firsts = np.array([[run.iloc[0]["alpha"], run.iloc[0]["beta"]] for run in res.runs_])
    assert len({tuple(np.round(r, 12)) for r in firsts}) == 4
    # Same seed, same starts: reproducible.
    again = fit_em(beta_data, "beta", mu=0.8, n_init=4, seed=7)
    assert np.array_equal(firsts, [[r.iloc[0]["alpha"], r.iloc[0]["beta"]] for r in again.runs_])
    best = max(range(4), key=lambda k: res.runs_[k]["objective"].iloc[-1])
    assert res.best_start_ == best
    assert res.objective_ == pytest.approx(res.runs_[best]["objective"].iloc[-1], rel=1e-15)


def test_not_converged_warns_and_says_so(beta_data):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = fit_em(beta_data, "beta", mu=0.8, n_init=1, max_iter=2, accelerate=False)
    assert not res.converged_


def test_final_estep_matches_returned_parameters(beta_data):
    res = fit_em(beta_data, "beta", mu_prior=PAPER_PRIOR, n_init=1)
    again = res.problem.e_step(res.state_, posterior=True)
    assert again.objective == pytest.approx(res.objective_, rel=1e-14)
    np.testing.assert_allclose(again.posterior, res.estep_.posterior, rtol=1e-12, atol=1e-300)
    assert res.history_["objective"].iloc[-1] == pytest.approx(res.objective_, rel=1e-14)


def test_known_mu_at_or_below_half_is_rejected_by_pair_name(multi_pair_sim):
    data = multi_pair_sim.to_data()
    pair = data.pairs[1]
    with pytest.raises(ValueError, match=f"{pair}.*<= 1/2"):
        fit_em(data, "beta", mu={pair: 0.5})


def test_prior_sets_the_unidentified_scale_for_two_point(two_point_data):
    # With mu unknown the two-point likelihood only sees eta * (2 mu - 1): moving the
    # prior's mode moves mu (and the locations with it) while the fit stays as good.
    low = fit_em(two_point_data, "two_point", mu_prior=BetaPrior(8, 2), n_init=2)
    high = fit_em(two_point_data, "two_point", mu_prior=BetaPrior(20, 2), n_init=2)
    assert high.mu_.iloc[0] > low.mu_.iloc[0] + 0.02
    prod_low = low.params_["eta_low"] * (2 * low.mu_.iloc[0] - 1)
    prod_high = high.params_["eta_low"] * (2 * high.mu_.iloc[0] - 1)
    assert prod_low == pytest.approx(prod_high, rel=1e-4)
    assert low.log_likelihood_ == pytest.approx(high.log_likelihood_, rel=1e-9)


@pytest.mark.parametrize("family", ["two_point", "beta", "beta_mixture"])
@pytest.mark.parametrize("mu_known", [True, False])
def test_compiled_estep_matches_numpy(family, mu_known, multi_pair_sim):
    # Same sums in a different order: agreement to rounding (1e-12 relative).
    data = multi_pair_sim.to_data()
    fam = get_family(family)
    spec = resolve_mu(list(data.pairs), 0.8 if mu_known else None)
    fast = EMProblem(data.counts, fam, spec, engine="numba")
    slow = EMProblem(data.counts, fam, spec, engine="numpy")
    state = slow.initial_state(1, np.random.default_rng(0))
    a, b = fast.e_step(state, posterior=True), slow.e_step(state, posterior=True)
    # The compiled pass drops nodes below exp(-40) of a row's peak: < 1e-15 relative.
    np.testing.assert_allclose(a.posterior, b.posterior, rtol=1e-12, atol=1e-15)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    np.testing.assert_allclose(a.row_log_marginal, b.row_log_marginal, rtol=1e-12)
    for x, y in ((a.weight, b.weight), (a.s_stat, b.s_stat), (a.f_stat, b.f_stat)):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * np.abs(y).max())


def test_screening_continues_the_best_start_along_its_own_path(multi_pair_sim):
    # Every generated start runs screen_iter iterations; the best goes on. Pausing
    # must not change its path: it is the path the same start takes unscreened.
    data = multi_pair_sim.to_data()
    kw = {"n_init": 4, "seed": 5, "warn": False}
    screened = fit_em(data, "beta", screen_iter=3, **kw)
    full = fit_em(data, "beta", screen_iter=None, **kw)
    k = screened.best_start_
    others = [j for j in range(4) if j != k]
    # After 3 iterations (its third "em" record) the continued start led every other one.
    path = screened.runs_[k]
    led = path["objective"][path["step"] == "em"].iloc[2]
    assert all(screened.runs_[j]["objective"].iloc[-1] <= led for j in others)
    np.testing.assert_array_equal(
        screened.runs_[k]["objective"].to_numpy(), full.runs_[k]["objective"].to_numpy()
    )
    assert screened.objective_ == full.runs_[k]["objective"].iloc[-1]
    # The others stop after their start and 3 iterations (SQUAREM may add records).
    for j in others:
        assert (screened.runs_[j]["step"] == "em").sum() == 3
        np.testing.assert_array_equal(
            screened.runs_[j]["objective"].to_numpy(),
            full.runs_[j]["objective"].iloc[: len(screened.runs_[j])].to_numpy(),
        )
    assert screened.settings["all_converged"][k] is True
    assert [screened.settings["all_converged"][j] for j in others] == [None] * 3
    assert screened.settings["screen_iter"] == 3


def test_a_start_given_by_init_is_not_screened(beta_data):
    init = {"alpha": 0.5, "beta": 9.0}
    res = fit_em(beta_data, "beta", mu=0.8, init=init, n_init=2, screen_iter=1, warn=False)
    alone = fit_em(beta_data, "beta", mu=0.8, init=init, n_init=1, warn=False)
    np.testing.assert_array_equal(
        res.runs_[0]["objective"].to_numpy(), alone.runs_[0]["objective"].to_numpy()
    )
    assert res.settings["all_converged"][0] is True
    with pytest.raises(ValueError, match="screen_iter"):
        fit_em(beta_data, "beta", mu=0.8, screen_iter=0)


@pytest.mark.parametrize("structure", ["independent", "pooled"])
def test_gradient_matches_differences_of_the_whole_q(structure, multi_pair_sim):
    # The gradient evaluates only the terms each coordinate moves; central
    # differences of the whole Q (q_value) must give the same numbers. Both
    # truncate at ~step^2 and round at ~eps |Q| / step ~ 1e-8 here.
    data = multi_pair_sim.to_data()
    res = fit_em(data, "beta", n_init=1, max_iter=3, warn=False, mu_structure=structure)
    problem, state = res.problem, res.state_
    estep = problem.e_step(state)
    v = problem.to_vector(state)
    whole = np.empty_like(v)
    for i in range(v.size):
        h = 1e-5 * (1.0 + abs(v[i]))
        up, down = v.copy(), v.copy()
        up[i] += h
        down[i] -= h
        whole[i] = (problem.q_value(up, estep) - problem.q_value(down, estep)) / (2 * h)
    np.testing.assert_allclose(problem.gradient(state, estep), whole, rtol=1e-6, atol=1e-6)
