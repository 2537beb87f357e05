"""Ties as evidence, MAP-EM: the objective checked against an independent 2-D quadrature.

The reference here writes the model again from the vote mechanism (per-vote
probabilities of a win, a loss and a tie, not the transformed form EM uses)
and integrates ``eta`` and ``tau`` by Gauss-Legendre in logit coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import EMState, fit_em
from attnmodel.model.simulate import simulate_tie_counts
from attnmodel.model.ties import TieParams, TieTerm, direction_nodes, tie_q
from tests.reference_posterior import row_logsumexp

# Priors of the tie parameters, written again (module attnmodel.model.ties states them).
KAPPA_PRIOR = stats.beta(1.5, 1.5)
TAU_MEAN_PRIOR = stats.beta(1.5, 1.5)
TAU_CONC_PRIOR = stats.lognorm(s=1.5, scale=10.0)


def _gl_logit(n_nodes: int, half_width: float):
    """Gauss-Legendre nodes in x = logit(p) on [-half_width, half_width] and log weights."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    return x * half_width, np.log(w * half_width)


def _reference_log_posterior(
    n, s, t, mu, alpha, beta, kappa, tau_mean, tau_conc, eta_rule=None, tau_rule=None
):
    """Sum over users of log of the double integral, plus the log priors of the tie parameters.

    n, s, t : (m, P) votes other than ties, wins of the stronger model, ties.
    eta_rule, tau_rule : (nodes in logit coordinates, log weights), optional
        Quadrature rules; by default Gauss-Legendre (480 nodes on [-60, 60] for
        ``eta``, 240 on [-24, 24] for ``tau``).
    """
    xe, lwe = _gl_logit(480, 60.0) if eta_rule is None else eta_rule
    # tau's population has shapes of about 1 or more at every point used here (0.97 at
    # EM's estimate under the default family prior): tails ~ exp(-0.97 |x|), so beyond
    # |x| = 24 lies e^-23 of its mass; 240 nodes keep the node spacing at 0.2 or less.
    xt, lwt = _gl_logit(240, 24.0) if tau_rule is None else tau_rule
    eta, tau = special.expit(xe), special.expit(xt)
    # Beta densities in logit coordinates: p^shape1 (1 - p)^shape2 / B.
    log_pe = (
        alpha * special.log_expit(xe) + beta * special.log_expit(-xe) - special.betaln(alpha, beta)
    )
    a, b = tau_mean * tau_conc, (1 - tau_mean) * tau_conc
    log_pt = a * special.log_expit(xt) + b * special.log_expit(-xt) - special.betaln(a, b)
    # Complements from logit coordinates keep their precision near 0 and 1.
    e, e1 = eta[:, None, None], special.expit(-xe)[:, None, None]
    tt, tt1 = tau[None, :, None], special.expit(-xt)[None, :, None]
    mu = np.asarray(mu)[None, None, :]
    # Attentive: a tie with prob tau, else the stronger model with prob mu.
    # Careless: a tie with prob tau + (1 - tau) kappa, else a coin flip.
    p_win = e * tt1 * mu + e1 * tt1 * (1 - kappa) / 2
    p_loss = e * tt1 * (1 - mu) + e1 * tt1 * (1 - kappa) / 2
    p_tie = e * tt + e1 * (tt + tt1 * kappa)
    assert np.allclose(p_win + p_loss + p_tie, 1.0)
    lw, ll = np.log(p_win), np.log(p_loss)
    lt = np.broadcast_to(np.log(p_tie), lw.shape)  # a tie's probability is the same on every pair
    # Every user's log integrand on the (eta, tau) grid at once: counts times log probabilities.
    logs = np.concatenate([lw, ll, lt], axis=2).reshape(-1, 3 * n.shape[1])
    counts = np.concatenate([s, n - s, t], axis=1).astype(float)
    grid = counts @ logs.T
    grid += ((log_pe + lwe)[:, None] + (log_pt + lwt)[None, :]).reshape(1, -1)
    total = float(row_logsumexp(grid).sum())
    return total + (
        KAPPA_PRIOR.logpdf(kappa)
        + TAU_MEAN_PRIOR.logpdf(tau_mean)
        + TAU_CONC_PRIOR.logpdf(tau_conc)
    )


def _simulated_fit(seed: int, n_users: int, votes: tuple[int, int]):
    """Users with ``eta ~ Beta(3, 1.5)``, ``tau ~ Beta(2, 5)``, ``kappa = 0.6``; EM's fit."""
    eta = np.random.default_rng(seed).beta(3.0, 1.5, n_users)
    n, s, t = simulate_tie_counts(eta, (2.0, 5.0), 0.6, votes, [0.8, 0.7], seed=seed + 1)
    data = VoteData.from_counts(n, s, t=t)
    res = fit_em(data, "beta", mu={"pair 0": 0.8, "pair 1": 0.7}, n_init=2, seed=0)
    return n, s, t, res


@pytest.fixture(scope="module")
def small_fit():
    return _simulated_fit(7, 120, (8, 20))


def _ref_at(n, s, t, res, vec):
    """Reference log posterior at (log alpha, log beta, logit kappa, logit mean, log conc)."""
    alpha, beta = np.exp(vec[:2])
    kappa, mean = special.expit(vec[2:4])
    conc = np.exp(vec[4])
    # EM leaves a flat family prior (a constant) out of its objective.
    prior = res.problem.prior
    family_prior = 0.0 if prior.flat else prior.family_logp({"alpha": alpha, "beta": beta})
    return (
        _reference_log_posterior(n, s, t, [0.8, 0.7], alpha, beta, kappa, mean, conc) + family_prior
    )


def test_em_objective_equals_the_independent_quadrature(small_fit):
    """EM's log posterior at its estimate and at another point equals the reference.

    The family prior is the package's (it is not what this test checks); the
    tie likelihood, its integral over tau and the tie priors are written
    again. 480 x 240 nodes integrate these smooth integrands (at most 20
    votes per user) to far below the tolerance (4e-8 at EM's estimate), which is EM's own quadrature
    error in ``eta``: its logit grid is spaced for a relative error below
    1e-7 per user (:func:`attnmodel.model.grid.default_spacing`), so 120 users
    allow 120 * 1e-7.
    """
    n, s, t, res = small_fit
    ties = res.ties_
    vec = np.r_[np.log([res.params_["alpha"], res.params_["beta"]]), ties.to_vector()]
    tol = 1e-7 * n.shape[0]
    assert _ref_at(n, s, t, res, vec) == pytest.approx(res.objective_, abs=tol)
    other = EMState({"alpha": 2.0, "beta": 1.5}, res.state_.mu, None, TieParams(0.3, 0.4, 3.0))
    vec_o = np.r_[np.log([2.0, 1.5]), other.ties.to_vector()]
    assert _ref_at(n, s, t, res, vec_o) == pytest.approx(res.problem.objective(other), abs=tol)


def test_em_answer_is_the_maximum_of_the_independent_posterior(small_fit):
    """One Newton step on the reference, from EM's answer, finds nothing to climb.

    Central differences of the reference (step 1e-3 in the log/logit
    coordinates) give its gradient and curvature along each coordinate; a
    direct maximiser would move each coordinate by gradient / curvature.
    Tolerances: each such move below 2e-3 (the difference of the two
    quadratures, smooth in the parameters, shifts the maximum by its gradient
    over the curvature), and the gain it promises below 1e-5 (EM stops at a
    relative gain of 1e-13). The curvature must be negative: a maximum.
    """
    n, s, t, res = small_fit
    vec = np.r_[np.log([res.params_["alpha"], res.params_["beta"]]), res.ties_.to_vector()]
    f0 = _ref_at(n, s, t, res, vec)
    step = 1e-3
    for i in range(vec.size):
        up, dn = vec.copy(), vec.copy()
        up[i] += step
        dn[i] -= step
        f_up, f_dn = _ref_at(n, s, t, res, up), _ref_at(n, s, t, res, dn)
        grad = (f_up - f_dn) / (2 * step)
        curv = (f_up - 2 * f0 + f_dn) / step**2
        assert curv < 0, (i, curv)
        assert abs(grad / curv) < 2e-3, (i, grad, curv)
        assert grad**2 / (2 * -curv) < 1e-5, (i, grad, curv)


@pytest.fixture(scope="module")
def tiny_fit():
    return _simulated_fit(11, 48, (4, 12))


def _gauss_jacobi_tau_rule(a, b, n_nodes):
    """A ``tau_rule`` for :func:`_reference_log_posterior` that is Gauss-Jacobi in ``tau``.

    Gauss-Jacobi with weight ``tau^(a-1) (1 - tau)^(b-1)`` integrates a
    polynomial of degree below ``2 n_nodes`` exactly, and a user's likelihood
    is a polynomial in ``tau`` of degree its number of votes (each vote's
    probability is linear in ``tau``). The reference multiplies the weights by
    the Beta density in logit coordinates, so it is divided out here.
    """
    x, w = special.roots_jacobi(n_nodes, b - 1.0, a - 1.0)
    tau = (1.0 + x) / 2.0
    xt = np.log(tau) - np.log1p(-tau)
    log_pt = a * special.log_expit(xt) + b * special.log_expit(-xt) - special.betaln(a, b)
    return xt, np.log(w / w.sum()) - log_pt


def test_tie_m_step_reaches_the_direct_maximum_of_the_independent_posterior(tiny_fit):
    """EM's answer (tie M-step from expected complete-data statistics) is the direct maximum.

    The reference log posterior is written again from the vote mechanism; it
    integrates ``tau`` exactly (Gauss-Jacobi, :func:`_gauss_jacobi_tau_rule`,
    with more than half as many nodes as a user's votes) and ``eta`` with EM's
    own quadrature rule (the logit grid's nodes and weights: the rule, not the
    likelihood), so the two objectives agree to rounding, where the 480-node
    rule of the tests above differs by EM's grid error. scipy's BFGS maximises
    it directly from a point away from EM's answer (every coordinate moved by
    0.3); the maximum it finds must not beat EM's objective by more than
    1e-7, nor fall below it by more: an M-step that stopped short of the
    maximum, or a wrong fixed point, is off by more (EM stops at a relative
    gain below 1e-13 per step).
    """
    from scipy import optimize

    n, s, t, res = tiny_fit
    grid = res.problem.grid
    n_tau = int((n + t).sum(axis=1).max()) // 2 + 2

    def ref(vec):
        alpha, beta = np.exp(vec[:2])
        kappa, mean = special.expit(vec[2:4])
        conc = np.exp(vec[4])
        prior = res.problem.prior
        family_prior = 0.0 if prior.flat else prior.family_logp({"alpha": alpha, "beta": beta})
        value = _reference_log_posterior(
            n,
            s,
            t,
            [0.8, 0.7],
            alpha,
            beta,
            kappa,
            mean,
            conc,
            eta_rule=(grid.u, grid.log_weight),
            tau_rule=_gauss_jacobi_tau_rule(mean * conc, (1 - mean) * conc, n_tau),
        )
        return value + family_prior

    vec = np.r_[np.log([res.params_["alpha"], res.params_["beta"]]), res.ties_.to_vector()]
    assert ref(vec) == pytest.approx(res.objective_, abs=1e-9)
    direct = optimize.minimize(lambda v: -ref(v), vec + 0.3, method="BFGS", options={"gtol": 1e-7})
    assert -direct.fun <= res.objective_ + 1e-7
    assert -direct.fun == pytest.approx(res.objective_, abs=1e-7)


def test_em_with_ties_never_goes_downhill(small_fit):
    for run in small_fit[3].runs_:
        obj = run["objective"].to_numpy()
        assert np.all(np.diff(obj) >= -1e-9 * (1 + np.abs(obj[1:])))
    assert {"kappa", "tau_mean", "tau_conc"} <= set(small_fit[3].history_.columns)


def test_tie_factor_is_the_integral_over_tau():
    m = np.array([0, 3, 10, 7, 50])
    T = np.array([2, 0, 4, 7, 30])
    term = TieTerm(m, T)
    eta = np.array([0.1, 0.5, 0.99])
    tp = TieParams(0.4, 0.3, 5.0)
    _, _, lc, l1 = direction_nodes(eta, 1 - eta, tp.kappa)
    got = term.log_factor(lc[None], l1[None], tp.a, tp.b)
    for d in range(term.n_keys):
        for g in range(eta.size):
            c = 1 - (1 - eta[g]) * tp.kappa
            mm, tt = term.m[d], term.T[d]
            val = integrate.quad(
                lambda x, c=c, mm=mm, tt=tt: (
                    (c * (1 - x)) ** mm * (1 - (1 - x) * c) ** tt * stats.beta.pdf(x, tp.a, tp.b)
                ),
                0,
                1,
                epsabs=0,
                epsrel=1e-12,
                limit=200,
            )[0]
            assert got[d, g] == pytest.approx(np.log(val), abs=1e-8)


def test_tie_q_gradient_matches_differences():
    rng = np.random.default_rng(0)
    term = TieTerm(np.array([0, 3, 10, 7]), np.array([2, 0, 4, 7]))
    eta = np.array([0.1, 0.5, 0.99])
    w = rng.random((term.n_keys, 3))
    s_stat, f_stat = rng.random((2, 3)) * 5, rng.random((2, 3)) * 5
    mu = np.array([0.8, 0.7])
    tp = TieParams(0.4, 0.3, 5.0)
    _, grad = tie_q(term, w, s_stat, f_stat, eta, 1 - eta, mu, tp)
    vec = tp.to_vector()
    for i in range(3):
        h = 1e-6
        up, dn = vec.copy(), vec.copy()
        up[i] += h
        dn[i] -= h
        diff = (
            tie_q(term, w, s_stat, f_stat, eta, 1 - eta, mu, TieParams.from_vector(up))[0]
            - tie_q(term, w, s_stat, f_stat, eta, 1 - eta, mu, TieParams.from_vector(dn))[0]
        ) / (2 * h)
        assert grad[i] == pytest.approx(diff, rel=1e-6, abs=1e-7)


def test_discrete_families_refuse_modelled_ties():
    data = VoteData.from_counts([[3]], [[2]], t=[[1]])
    with pytest.raises(ValueError, match="continuous family"):
        fit_em(data, "two_point")


def test_posterior_and_result_tree_carry_the_ties(small_fit):
    from attnmodel.results.em import em_to_datatree

    n, s, t, res = small_fit
    post = res.posterior()
    np.testing.assert_array_equal(post["n_ties"].to_numpy(), t.sum(axis=1))
    tree = em_to_datatree(res, n_draws=5)
    for name, value in res.ties_.flat().items():
        assert float(tree["posterior"][name].mean()) == pytest.approx(value)
    assert "kappa" in tree["em_trace"]
    assert "ties: model" in res.summary().replace(" (modelled):", ": model")
    # The saved result's summary (API and CLI text) reports the tie parameters too.
    from attnmodel.cli.commands import format_summary
    from attnmodel.results import summarize

    summary = summarize(tree)
    assert summary["ties"] == pytest.approx(res.ties_.flat(), rel=1e-12)
    assert summary["structure"] == {} and summary["mu_structure"] == "independent"
    text = format_summary(summary)
    assert "ties (modelled):" in text
    assert f"kappa     {res.ties_.kappa:.4g}" in text.replace("  kappa", "kappa")


def test_many_ties_lower_eta_when_careless_votes_tie():
    """Two users with the same direction votes and different ties get different posteriors.

    With kappa > 0 many ties are evidence of carelessness, so the user with
    more ties has the lower eta_mean.
    """
    # 40 users who look careful (8 of 10 for the stronger model, no ties), 40 who
    # look careless (5 of 10, 15 ties), and two probes: 8 of 10 with 0 or 15 ties.
    n = np.full((82, 1), 10)
    s = np.r_[np.full(40, 8), np.full(40, 5), [8, 8]][:, None]
    t = np.r_[np.zeros(40), np.full(40, 15), [0, 15]].astype(int)[:, None]
    # Two starts: the first begins at kappa = 0.05, the second at 0.5, and here the
    # likelihood has a mode near each (the higher one has kappa > 0.05).
    res = fit_em(VoteData.from_counts(n, s, t=t), "beta", mu=0.8, n_init=2, warn=False)
    post = res.posterior()
    few, many = post.isel(user=80), post.isel(user=81)
    assert res.ties_.kappa > 0.05
    assert float(many["eta_mean"]) < float(few["eta_mean"]) - 0.05


def _pymc_point(model, state):
    """The model's value variables (transformed) at an EM state."""
    values = {
        "alpha": state.params["alpha"],
        "beta": state.params["beta"],
        "mu": state.mu,
        **state.ties._asdict(),
    }
    out = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        x = np.asarray(values[rv.name], dtype=float)
        if transform is not None:
            x = transform.forward(x, *rv.owner.inputs).eval()
        out[value_var.name] = x
    return out


def test_pymc_log_density_equals_em_objective_with_ties():
    """Differences between two points (constants of flat priors cancel) agree to 1e-9.

    Both use the default family prior; EM's objective adds its documented
    ``log alpha + log beta`` (the mode is taken in ``(logit m, log kappa)``),
    which is taken back here.
    """
    from attnmodel.model.pymc_model import build_model

    rng = np.random.default_rng(7)
    eta = rng.beta(3.0, 1.5, 40)
    n, s, t = simulate_tie_counts(eta, (2.0, 5.0), 0.6, (3, 10), [0.8, 0.7], seed=8)
    data = VoteData.from_counts(n, s, t=t)
    model = build_model(data, "beta").model
    assert {"kappa", "tau_mean", "tau_conc"} <= {rv.name for rv in model.free_RVs}
    res = fit_em(data, "beta", n_init=1, max_iter=2, polish_after=None, warn=False)
    logp = model.compile_logp(jacobian=False)
    states = [
        EMState({"alpha": 2.0, "beta": 1.5}, np.array([0.8, 0.7]), None, TieParams(0.3, 0.4, 3.0)),
        EMState({"alpha": 4.0, "beta": 1.0}, np.array([0.75, 0.9]), None, TieParams(0.6, 0.2, 8.0)),
        EMState({"alpha": 0.7, "beta": 3.0}, np.array([0.6, 0.95]), None, TieParams(0.9, 0.6, 1.5)),
    ]
    pm_vals = [float(logp(_pymc_point(model, st))) for st in states]
    em_vals = [
        res.problem.objective(st) - np.log(st.params["alpha"]) - np.log(st.params["beta"])
        for st in states
    ]
    for i in (1, 2):
        assert pm_vals[i] - pm_vals[0] == pytest.approx(em_vals[i] - em_vals[0], abs=1e-9)


def test_nuts_smoke_with_ties():
    """NUTS on the PyMC model with ties runs and moves every tie parameter.

    PyMC's own NUTS, the sampler ``fit_nuts`` uses by default (left to choose,
    ``pm.sample`` takes nutpie, whose Numba compile of the graph is most of a
    minute).
    """
    import pymc as pm

    from attnmodel.model.pymc_model import build_model

    n, s, t = simulate_tie_counts(np.full(30, 0.8), 0.3, 0.5, 8, 0.8, seed=1)
    data = VoteData.from_counts(n, s, t=t)
    model = build_model(data, "beta", mu=0.8).model
    with model:
        idata = pm.sample(
            draws=30,
            tune=30,
            chains=1,
            random_seed=1,
            nuts_sampler="pymc",
            progressbar=False,
            compute_convergence_checks=False,
        )
    for name in ("kappa", "tau_mean", "tau_conc"):
        draws = idata.posterior[name].to_numpy()
        assert np.all(np.isfinite(draws)) and np.ptp(draws) > 0


def test_filter_counts_say_where_the_ties_went(small_fit):
    from attnmodel.filtering import filter_users

    n, s, t, res = small_fit
    out = filter_users(res, rule="prob", eta_star=0.5)
    keep = out.keep.to_numpy()
    assert out.counts["ties_kept"] == int(t.sum(axis=1)[keep].sum())
    # Every tie is in one of the four groups (the default min_evidence=1 sets users
    # with too little evidence apart from those kept and dropped).
    little = np.zeros_like(keep)
    if out.little_evidence is not None:
        little = out.little_evidence.to_numpy()
    assert out.counts["ties_little_evidence"] == int(t.sum(axis=1)[little].sum())
    groups = ("kept", "dropped", "undetermined", "little_evidence")
    assert sum(out.counts[f"ties_{g}"] for g in groups) == int(t.sum())
