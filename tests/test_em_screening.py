"""MAP-EM on tables with many rows.

Starts screened on a subsample, the stationarity stop, no final posterior matrix.

These paths run on tables above :data:`attnmodel.inference.em.SCREEN_ROWS`
distinct rows (and :data:`~attnmodel.inference.em.FINAL_POSTERIOR_CELLS`
posterior values); the tests lower those limits on a small table and compare
with the fit that screens every row.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from attnmodel.inference import em
from attnmodel.inference.em import fit_em, screening_rows
from attnmodel.model.kernels import STRIDE_TOL
from attnmodel.model.simulate import simulate_votes

MU = {"gpt vs llama": 0.85, "claude vs alpaca": 0.7, "vicuna vs alpaca": 0.62}


@pytest.fixture(scope="module")
def data():
    """600 users with 1 to 60 votes on three pairs: several hundred distinct rows."""
    sim = simulate_votes(
        "beta", {"alpha": 3.0, "beta": 1.2}, 600, (1, 60), MU, layout="raw", seed=11
    )
    return sim.to_data()


def _dense_rows(counts):
    """Each row's (n, s) over the pairs as a tuple, written with numpy alone."""
    n = np.zeros((counts.n_rows, counts.n_pairs), dtype=np.int64)
    s = np.zeros_like(n)
    rows = np.repeat(np.arange(counts.n_rows), np.diff(counts.row_ptr))
    n[rows, counts.entry_pair] = counts.entry_n
    s[rows, counts.entry_pair] = counts.entry_s
    return [tuple(a) + tuple(b) for a, b in zip(n, s, strict=True)]


def test_screening_rows_are_rows_of_the_table_weighted_to_its_users(data):
    counts = data.counts
    assert counts.n_rows > 150
    assert screening_rows(counts, counts.n_rows) is None
    sub = screening_rows(counts, 150)
    assert sub.n_rows == 150 and sub.n_pairs == counts.n_pairs
    full = {row: k for k, row in enumerate(_dense_rows(counts))}
    picked = [full[row] for row in _dense_rows(sub)]  # KeyError: a row not in the table
    assert len(set(picked)) == 150
    assert picked == sorted(picked)
    # Weights: the rows' own, scaled so that they stand for every user.
    ratio = sub.row_weight / counts.row_weight[picked]
    np.testing.assert_allclose(ratio, counts.n_users / counts.row_weight[picked].sum(), rtol=1e-14)
    assert sub.row_weight.sum() == pytest.approx(counts.n_users, rel=1e-14)
    # A fixed draw: the same rows every time.
    again = screening_rows(counts, 150)
    np.testing.assert_array_equal(again.row_ptr, sub.row_ptr)
    np.testing.assert_array_equal(again.entry_s, sub.entry_s)


def test_users_by_weight_stand_for_the_users_and_keep_the_heavy_rows(data):
    counts = data.counts
    votes = np.add.reduceat(counts.entry_n, counts.row_ptr[:-1])
    heavy = 40
    assert 0 < np.sum(votes > heavy) < counts.n_rows
    sub = em.users_by_weight(counts, 5_000, heavy, seed=4)
    full = {row: k for k, row in enumerate(_dense_rows(counts))}
    picked = np.array([full[row] for row in _dense_rows(sub)])  # KeyError: not a row of the table
    assert np.all(np.diff(picked) > 0)
    # Every heavy row, with its own weight.
    is_heavy = votes[picked] > heavy
    assert set(picked[is_heavy]) == set(np.flatnonzero(votes > heavy))
    np.testing.assert_array_equal(sub.row_weight[is_heavy], counts.row_weight[picked[is_heavy]])
    # The light ones stand for the light users: weights in steps of their count / 5,000.
    light_users = counts.row_weight[votes <= heavy].sum()
    draws = sub.row_weight[~is_heavy] / (light_users / 5_000)
    np.testing.assert_allclose(draws, np.round(draws), atol=1e-9)
    assert np.round(draws).sum() == 5_000
    assert sub.row_weight.sum() == pytest.approx(counts.n_users, rel=1e-12)
    # Drawn by weight: the light rows' share of the draws is their share of the users,
    # within 4 binomial standard deviations of 5,000 draws for the commonest row.
    k = int(np.argmax(np.where(votes <= heavy, counts.row_weight, 0)))
    share = counts.row_weight[k] / light_users
    got = draws[picked[~is_heavy] == k].sum() / 5_000 if k in picked else 0.0
    assert abs(got - share) <= 4 * np.sqrt(share * (1 - share) / 5_000)


@pytest.mark.parametrize("finish", ["profile", "subsample", "em"])
def test_starts_screened_on_a_subsample_reach_the_same_maximum(data, monkeypatch, finish):
    kw = {"n_init": 4, "seed": 3, "warn": False}
    whole = fit_em(data, "beta", **kw)
    monkeypatch.setattr(em, "SCREEN_ROWS", 120)
    # Without the curvature finish (more coordinates than its limit) the whole
    # table's path is EM's, with the gradient stop and the extrapolations.
    curved = finish != "em"
    monkeypatch.setattr(em, "CURVED_MAX_COORDS", 64 if curved else 0)
    if finish == "subsample":
        # Where the products-held profile does not apply, the start comes from the subsample.
        monkeypatch.setattr(em.ProductProfile, "build", classmethod(lambda cls, p, v: None))
    sampled = fit_em(data, "beta", **kw)
    k = sampled.best_start_
    assert sampled.converged_
    whole_steps = set(sampled.history_["step"]) - {"start", "sample_start"}
    allowed = {
        "profile": {"profile", "bfgs", "sample_em", "sample_squarem"},
        "subsample": {"bfgs", "sample_bfgs", "sample_em", "sample_squarem"},
        "em": {"em", "squarem", "secant", "lbfgs", "sample_em", "sample_squarem"},
    }
    assert whole_steps <= allowed[finish]
    assert ("bfgs" in whole_steps) == curved
    assert ("profile" in whole_steps) == (finish == "profile")
    # Screening on the subsample picks the start full screening picks. The case is
    # no near-tie, where either pick would do: after screening the best start
    # leads the next by over a log unit on the whole table.
    assert k == whole.best_start_
    ends = sorted(r["objective"].iloc[-1] for j, r in enumerate(whole.runs_) if j != k)
    led = whole.runs_[k]["objective"][whole.runs_[k]["step"] == "em"].iloc[9]
    assert led > ends[-1] + 1.0
    # The subsample's path, then the whole table's from where it ended.
    steps = sampled.history_["step"]
    assert steps.iloc[0] == "sample_start"
    start = int(np.flatnonzero(steps == "start")[0])
    profile = int(np.flatnonzero(steps == "profile")[0]) if finish == "profile" else start
    assert steps.iloc[:profile].str.startswith("sample_").all()
    assert (steps.iloc[profile:start] == "profile").all()
    assert not steps.iloc[start:].str.startswith("sample_").any()
    # On every row from the profile's first step on: L never drops (the profile's
    # objective is L itself, the start the same point's E-step).
    whole_path = sampled.history_["objective"].iloc[profile:].to_numpy()
    assert np.all(np.diff(whole_path) >= -1e-11 * abs(whole_path[-1]))
    for j in range(4):
        if j != k:
            assert sampled.runs_[j]["step"].str.startswith("sample_").all()
            assert sampled.settings["all_converged"][j] is None
    # The same maximum: both stop on the polish's gradient test (1e-9 per vote), which
    # leaves the objective within 1e-10 relative and the parameters within 1e-5 relative
    # (a 1e-9 gradient per vote moves a parameter by about 1e-9 over its information per vote).
    assert sampled.objective_ == pytest.approx(whole.objective_, rel=1e-10)
    for key, value in whole.params_.items():
        assert sampled.params_[key] == pytest.approx(value, rel=1e-5), key
    np.testing.assert_allclose(sampled.mu_.to_numpy(), whole.mu_.to_numpy(), rtol=1e-5)
    scale = em._vote_scale(sampled.problem)
    assert sampled.problem.is_stationary(
        sampled.state_, sampled.problem.e_step(sampled.state_), scale, em.POLISH_GTOL
    )


def _two_runs(data, first: dict, second: dict):
    """The problem, and ``(end, run)`` of EM from its first start with each set of options."""
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    start = problem.initial_state(0, np.random.default_rng(0))
    options = {"max_iter": 500, "tol": 1e-13, "xtol": 1e-8, "accelerate": True, "polish_after": 30}
    out = []
    for extra in (first, second):
        run = em._Run()
        out.append((em._finish(em._run_em(problem, start, run=run, **options, **extra)), run))
    return problem, *out


def test_stationary_stop_ends_where_the_polish_would(data):
    # From the same state, the run with the stop ends at an iterate that passes the test,
    # and no earlier iterate of the run without it passed.
    problem, (stopped, stopped_run), (_, plain_run) = _two_runs(data, {"stationary_stop": True}, {})
    assert stopped[2] is True
    scale = em._vote_scale(problem)
    assert problem.is_stationary(stopped[0], stopped[1], scale, em.POLISH_GTOL)
    n = len(stopped_run.records)
    # Up to its end the stopped run took the plain run's path.
    np.testing.assert_array_equal(
        [r["objective"] for r in stopped_run.records],
        [r["objective"] for r in plain_run.records[:n]],
    )
    assert n <= len(plain_run.records)


def test_without_a_final_posterior_matrix_the_summaries_are_the_same(data, monkeypatch):
    kept = fit_em(data, "beta", n_init=2, warn=False)
    monkeypatch.setattr(em, "FINAL_POSTERIOR_CELLS", 0)
    lean = fit_em(data, "beta", n_init=2, warn=False)
    assert kept.estep_.posterior is not None and lean.estep_.posterior is None
    assert lean.params_ == kept.params_
    # The last E-step of the run, on strided sub-grids: each row's log marginal
    # within 3 STRIDE_TOL of the full grid's (tests/test_strides.py).
    assert lean.objective_ == pytest.approx(
        kept.objective_, rel=0, abs=3 * STRIDE_TOL * data.counts.n_users
    )
    a, b = lean.posterior(), kept.posterior()
    for name in ("eta_mean", "eta_sd", "eta_hdi", "p_above", "log_bf"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-12, atol=1e-15)


def test_secant_steps_reach_the_maximum_without_lowering_it(data):
    # From the same start, the run with extrapolations ends at the maximum the
    # plain run ends at (both stop on the polish's gradient test, 1e-9 per vote: within
    # 1e-10 relative in L, 1e-5 in the parameters), and its every iterate is higher or level.
    problem, (ridge, ridge_run), (plain, _) = _two_runs(
        data, {"stationary_stop": True, "line_search": True}, {"stationary_stop": True}
    )
    steps = [r["step"] for r in ridge_run.records]
    assert "secant" in steps
    assert np.all(np.diff([r["objective"] for r in ridge_run.records]) >= 0)
    assert ridge[2] and plain[2]
    assert ridge[1].objective == pytest.approx(plain[1].objective, rel=1e-10)
    for key, value in plain[0].params.items():
        assert ridge[0].params[key] == pytest.approx(value, rel=1e-5), key
    np.testing.assert_allclose(ridge[0].mu, plain[0].mu, rtol=1e-5)
    scale = em._vote_scale(problem)
    assert problem.is_stationary(ridge[0], ridge[1], scale, em.POLISH_GTOL)


def test_the_polish_reports_convergence_only_at_the_maximum(data):
    # From Beta(3, 1.2) with two mu at the ends of (1/2, 1), where the gradient of their
    # logits all but vanishes, L-BFGS-B stalls far from the maximum and says it
    # succeeded ("relative reduction of f <= factr * epsmch"); the polish must go on
    # from there and end where EM from the moment start ends, or not claim convergence.
    fit = fit_em(data, "beta", n_init=1, warn=False)
    problem = fit.problem
    assert fit.converged_
    for mu in ([0.9999999999, 0.5000000001, 0.62], [0.85, 0.500011, 0.62]):
        start = em.EMState({"alpha": 3.0, "beta": 1.2}, np.array(mu), None, None)
        state, estep, converged = em._polish(
            problem, start, problem.e_step(start), em._Run(), max_iter=5000, tol=1e-13
        )
        scale = em._vote_scale(problem)
        # Converged means the stationarity test passes there ...
        assert converged and problem.is_stationary(state, estep, scale)
        # ... and the maximum is EM's: both within 1e-7 per vote of a zero gradient,
        # which leaves L within 1e-10 relative (the test above's tolerances).
        assert estep.objective == pytest.approx(fit.objective_, rel=1e-10)
        np.testing.assert_allclose(state.mu, fit.mu_.to_numpy(), rtol=1e-5)


def _ridge_inverse_numpy(coords: np.ndarray) -> np.ndarray:
    """Ridge coordinates of a Beta fit back to ``(log a, log b, logit c_k)``, in numpy alone."""
    a, b = np.exp(coords[0]), np.exp(coords[1])
    c = np.exp(coords[2:]) * (a + b) / a
    return np.concatenate([coords[:2], np.log(c / (1.0 - c))])


def test_ridge_map_moves_each_pair_by_its_product_with_the_mean(data):
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    ridge = em.RidgeMap(problem)
    assert ridge.active and ridge.pairs == slice(2, 2 + len(MU))
    vec = np.array([np.log(2.5), np.log(1.5), *special.logit([0.7, 0.4, 0.24])])
    coords = ridge.forward(vec)
    # log(E[eta] c_k) with E[eta] = a / (a + b); the family's coordinates kept.
    np.testing.assert_allclose(coords[:2], vec[:2], rtol=0, atol=0)
    products = np.array([0.7, 0.4, 0.24]) * 2.5 / 4.0
    np.testing.assert_allclose(coords[2:], np.log(products), rtol=1e-13)
    np.testing.assert_allclose(ridge.inverse(coords), vec, rtol=1e-12)
    np.testing.assert_allclose(_ridge_inverse_numpy(coords), vec, rtol=1e-12)
    # The Jacobian against central differences of the numpy inverse (step 1e-6:
    # truncation and rounding both below 1e-8 on these second derivatives).
    h = 1e-6
    steps = np.eye(coords.size) * h
    numeric = np.column_stack(
        [
            (_ridge_inverse_numpy(coords + d) - _ridge_inverse_numpy(coords - d)) / (2 * h)
            for d in steps
        ]
    )
    np.testing.assert_allclose(ridge.jacobian(vec), numeric, atol=1e-7)
    # Moving the family alone keeps every product E[eta] c_k, so every pair's vote share.
    moved = ridge.inverse(coords + np.array([0.3, -0.2, 0.0, 0.0, 0.0]))
    a, b = np.exp(moved[:2])
    kept = a / (a + b) * special.expit(moved[2:])
    np.testing.assert_allclose(kept, np.exp(coords[2:]), rtol=1e-12)


def test_ridge_map_puts_the_products_at_the_vote_shares(data):
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    ridge = em.RidgeMap(problem)
    counts = data.counts
    vec = np.array([np.log(2.5), np.log(1.5), 0.0, 0.0, 0.0])
    out = ridge.with_pair_shares(vec, counts)
    users = counts.row_weight[np.repeat(np.arange(counts.n_rows), np.diff(counts.row_ptr))]
    n = np.bincount(counts.entry_pair, weights=users * counts.entry_n, minlength=counts.n_pairs)
    s = np.bincount(counts.entry_pair, weights=users * counts.entry_s, minlength=counts.n_pairs)
    a, b = np.exp(out[:2])
    assert out[:2] == pytest.approx(vec[:2], abs=0)
    np.testing.assert_allclose(a / (a + b) * special.expit(out[2:]), 2 * s / n - 1, rtol=1e-12)


def test_ridge_map_is_the_identity_without_independent_unknown_mu(data):
    for kw in ({"mu_structure": "bradley_terry"}, {"mu_structure": "pooled"}, {"mu": MU}):
        problem = fit_em(data, "beta", n_init=1, max_iter=3, warn=False, **kw).problem
        ridge = em.RidgeMap(problem)
        vec = problem.to_vector(problem.initial_state(0, np.random.default_rng(0)))
        assert not ridge.active
        np.testing.assert_array_equal(ridge.forward(vec), vec)
        np.testing.assert_array_equal(ridge.jacobian(vec), np.eye(vec.size))


def test_quasi_newton_keeps_held_coordinates_and_climbs_the_others(data):
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    ridge = em.RidgeMap(problem)
    start = problem.initial_state(0, np.random.default_rng(0))
    hold = np.zeros(problem.to_vector(start).size, dtype=bool)
    hold[ridge.pairs] = True
    estep = problem.e_step(start)
    end, e_end, converged = em._quasi_newton(
        problem, start, estep, em._hessian(problem, start), em._Run(), hold=hold
    )
    assert converged
    assert e_end.objective > estep.objective
    # Held: each pair's product E[eta] c_k (its ridge coordinate); the family moved.
    u_start, u_end = ridge.forward(problem.to_vector(start)), ridge.forward(problem.to_vector(end))
    np.testing.assert_allclose(u_end[ridge.pairs], u_start[ridge.pairs], rtol=1e-12)
    assert np.max(np.abs(u_end[:2] - u_start[:2])) > 0.01
    # The family's gradient in ridge coordinates, J^T g, passes the polish's test; the
    # held coordinates' does not (J written again: d logit(c_k) / d u = 1 / (1 - c_k)
    # on the diagonal, minus that times d log E[eta] / d(log a, log b) = (b, -b) / (a + b)).
    vec = problem.to_vector(end)
    a, b = end.params["alpha"], end.params["beta"]
    slope = 1.0 / (1.0 - special.expit(vec[2:]))
    jac = np.eye(vec.size)
    jac[2:, 2:] = np.diag(slope)
    jac[2:, :2] = -np.outer(slope, [b / (a + b), -b / (a + b)])
    grad = jac.T @ problem.gradient(end, e_end) / em._vote_scale(problem)
    assert np.max(np.abs(grad[:2])) <= em.POLISH_GTOL
    assert np.max(np.abs(grad[2:])) > 100 * em.POLISH_GTOL


# -- the products-held profile (ProductProfile) ----------------------------------------


def _row_likelihood_numpy(counts, r, x, win1, loss1):
    """Row ``r``'s likelihood at ``x``: each vote 1/2 + (win1 - 1/2) x or 1/2 + (loss1 - 1/2) x."""
    lo, hi = counts.row_ptr[r], counts.row_ptr[r + 1]
    pair, n, s = counts.entry_pair[lo:hi], counts.entry_n[lo:hi], counts.entry_s[lo:hi]
    x = np.asarray(x)[:, None]
    return np.prod(
        (0.5 + (win1[pair] - 0.5) * x) ** s * (0.5 + (loss1[pair] - 0.5) * x) ** (n - s), axis=1
    )


def test_bernstein_coefficients_give_each_rows_likelihood(data):
    from attnmodel.model.kernels import bernstein_coefs

    counts = data.counts
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(counts.n_rows, 40, replace=False))
    rho = np.array([1.0, 0.55, 0.2])  # the first pair's loss has probability 0 at x = 1
    half = np.full(3, 0.5)
    win, loss = np.column_stack([half, (1 + rho) / 2]), np.column_stack([half, (1 - rho) / 2])
    coefs, start, log_scale = bernstein_coefs(counts, rows, win, loss)
    votes = np.add.reduceat(counts.entry_n, counts.row_ptr[:-1])[rows]
    np.testing.assert_array_equal(np.diff(start), votes + 1)
    x = np.array([0.0, 0.13, 0.5, 0.91, 1.0])
    for i, r in enumerate(rows):
        n, b = votes[i], coefs[start[i] : start[i + 1]]
        k = np.arange(n + 1)
        basis = x[:, None] ** k * (1 - x[:, None]) ** (n - k)
        got = np.exp(log_scale[i]) * basis @ b
        want = _row_likelihood_numpy(counts, r, x, (1 + rho) / 2, (1 - rho) / 2)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        assert np.all(b >= 0)


def test_bernstein_sums_contract_every_row_and_count_the_failed(data):
    from attnmodel.model.kernels import bernstein_offsets, bernstein_sums

    rng = np.random.default_rng(8)
    degrees = np.array([0, 3, 1, 5, 2])
    start = np.concatenate([[0], np.cumsum(degrees + 1)])
    coefs = rng.uniform(0.1, 2.0, start[-1])
    weight = rng.uniform(1, 5, degrees.size)
    off = bernstein_offsets(5)
    tables = rng.uniform(0.1, 1.0, (3, int(off[-1])))
    sums, failed = bernstein_sums(coefs, start, weight, tables)
    z = np.array(
        [
            coefs[start[i] : start[i + 1]] @ tables[:, off[d] : off[d] + d + 1].T
            for i, d in enumerate(degrees)
        ]
    )  # (rows, 3)
    assert failed == 0
    assert sums[0] == pytest.approx(weight @ np.log(z[:, 0]), rel=1e-14)
    np.testing.assert_allclose(sums[1:], weight @ (z[:, 1:] / z[:, :1]), rtol=1e-14)
    # With the products of the ratios of the two tables after the moments.
    more, failed = bernstein_sums(coefs, start, weight, tables, outer=2)
    ratio = z[:, 1:] / z[:, :1]
    np.testing.assert_array_equal(more[:3], sums)
    np.testing.assert_allclose(more[3:].reshape(2, 2), (ratio.T * weight) @ ratio, rtol=1e-14)
    with pytest.raises(ValueError, match="outer=3"):
        bernstein_sums(coefs, start, weight, tables, outer=3)
    # A row whose moments vanish is left out and counted.
    tables[0, off[3] : off[3] + 4] = 0.0
    sums, failed = bernstein_sums(coefs, start, weight, tables)
    assert failed == 1
    keep = np.arange(5) != 1
    assert sums[0] == pytest.approx(weight[keep] @ np.log(z[keep, 0]), rel=1e-14)


def _profile_loglik_numpy(problem, state):
    """Every row's log marginal at ``state`` on the problem's grid, written with numpy and scipy."""
    counts, grid = problem.counts, problem.grid
    eta = special.expit(grid.u)
    log_eta, log_1m = -np.logaddexp(0.0, -grid.u), -np.logaddexp(0.0, grid.u)
    a, b = state.params["alpha"], state.params["beta"]
    # The Beta density in u = logit(eta): pdf(eta) eta (1 - eta).
    log_mass = grid.log_weight + a * log_eta + b * log_1m - special.betaln(a, b)
    total = 0.0
    for r in range(counts.n_rows):
        like = _row_likelihood_numpy(counts, r, eta, state.mu, 1 - state.mu)
        with np.errstate(divide="ignore"):
            total += counts.row_weight[r] * special.logsumexp(log_mass + np.log(like))
    return total


@pytest.mark.parametrize("n_max", [64, 20], ids=["all-light", "light-and-heavy"])
def test_product_profile_is_l_with_the_products_held(data, monkeypatch, n_max):
    # Up to 60 votes a row: all light at 64; beyond 20 votes the rows take the E-step.
    monkeypatch.setattr(em, "PROFILE_MAX_VOTES", n_max)
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    ridge = em.RidgeMap(problem)
    profile = em.ProductProfile.build(problem, np.array([np.log(1.3), np.log(0.8), 0, 0, 0]))
    votes = data.counts.votes_per_row()
    # The products held: every pair's 2 share - 1, from a numpy bincount.
    counts = data.counts
    users = counts.row_weight[np.repeat(np.arange(counts.n_rows), np.diff(counts.row_ptr))]
    n = np.bincount(counts.entry_pair, weights=users * counts.entry_n, minlength=counts.n_pairs)
    s = np.bincount(counts.entry_pair, weights=users * counts.entry_s, minlength=counts.n_pairs)
    products = 2 * s / n - 1
    assert (profile.heavy is None) == (n_max == 64)
    if profile.heavy is not None:
        assert profile.heavy.counts.n_rows == np.sum(votes > n_max) > 0
    for fam in ([np.log(1.3), np.log(0.8)], [np.log(4.0), np.log(2.5)]):
        fam = np.array(fam)
        value, grad, log_prior, state = profile.value(fam)
        # The state holds the products and has the family asked for.
        u = ridge.forward(problem.to_vector(state))
        np.testing.assert_allclose(np.exp(u[2:]), products, rtol=1e-12)
        np.testing.assert_allclose(u[:2], fam, rtol=1e-14)
        # Its value is L there: the log likelihood of every row by numpy quadrature plus
        # the log prior (sums of ~1e4 in log units agree to rounding, 1e-11 relative).
        assert log_prior == problem.log_prior(state)
        assert value == pytest.approx(_profile_loglik_numpy(problem, state) + log_prior, rel=1e-11)
        # The gradient against central differences of the value (step 1e-5: truncation
        # ~1e-10 relative on these smooth functions, rounding 1e-16 L / 1e-5 ~ 1e-7).
        h = 1e-5
        numeric = [
            (profile.value(fam + d)[0] - profile.value(fam - d)[0]) / (2 * h) for d in np.eye(2) * h
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


def test_product_profile_light_hessian_is_the_curvature_of_the_rows_likelihood(data):
    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    fam = np.array([np.log(4.0), np.log(2.5)])
    profile = em.ProductProfile.build(problem, np.array([*fam, 0.0, 0.0, 0.0]))
    assert profile.heavy is None  # every row light: their L is all of it
    hess = profile._light_hessian(fam)

    def loglik(x):
        return _profile_loglik_numpy(problem, profile.state(x))

    # Second differences of numpy quadrature, step 1e-3: truncation ~1e-6 relative,
    # rounding ~1e-11 / 4e-6 in entries of a few hundred; 1e-4 covers the Hessian's
    # own differences (1e-7) with room.
    h = 1e-3
    ref = np.empty((2, 2))
    for j, k in np.ndindex(2, 2):
        ej, ek = np.eye(2)[j] * h, np.eye(2)[k] * h
        ref[j, k] = (
            loglik(fam + ej + ek) - loglik(fam + ej - ek)
            - loglik(fam - ej + ek) + loglik(fam - ej - ek)
        ) / (4 * h * h)  # fmt: skip
    np.testing.assert_allclose(hess, ref, rtol=1e-4)
    assert np.all(np.linalg.eigvalsh(hess) < 0)


@pytest.mark.parametrize("shapes", [(0.6, 0.4), (0.3, 3.0)], ids=["admissible", "c-above-1"])
def test_product_profile_maximise_reaches_the_profiles_maximum(data, shapes):
    from scipy import optimize

    problem = fit_em(data, "beta", n_init=1, warn=False).problem
    ridge = em.RidgeMap(problem)
    profile = em.ProductProfile.build(problem, np.array([*np.log(shapes), 0.0, 0.0, 0.0]))
    # With E[eta] = 0.09 the vote shares ask for some c_k above 1: the climb starts
    # where raising E[eta] first admits them.
    mean = shapes[0] / sum(shapes)
    assert (profile.p_max / mean < 1) == (shapes == (0.6, 0.4))
    run = em._Run()
    end = profile.maximise(run, em._vote_scale(problem))
    steps = [r["step"] for r in run.records]
    assert steps and set(steps) == {"profile"}
    path = [r["objective"] for r in run.records]
    assert np.all(np.diff(path) >= 0)
    fam = ridge.forward(problem.to_vector(end))[:2]
    # The profile's maximum by Nelder-Mead on its value alone.
    ref = optimize.minimize(
        lambda f: -profile.value(f)[0], fam + 0.3, method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 2000},
    )  # fmt: skip
    assert path[-1] >= -ref.fun - 1e-8 * abs(ref.fun)
    np.testing.assert_allclose(fam, ref.x, atol=1e-3)
    # The gradient test it stops at: PROFILE_GTOL per vote.
    grad = profile.value(fam)[1]
    assert np.max(np.abs(grad)) <= em.PROFILE_GTOL * em._vote_scale(problem)


def test_product_profile_applies_only_with_every_mu_unknown_and_independent(data, monkeypatch):
    cases = [
        ({"mu_structure": "bradley_terry"}, "beta"),
        ({"mu_structure": "pooled"}, "beta"),
        ({"mu": {"gpt vs llama": 0.85}}, "beta"),
        ({}, "two_point"),
        ({}, "beta"),
    ]
    for kw, family in cases:
        problem = fit_em(data, family, n_init=1, max_iter=3, warn=False, **kw).problem
        vec = problem.to_vector(problem.initial_state(0, np.random.default_rng(0)))
        applies = em.ProductProfile.build(problem, vec) is not None
        assert applies == (not kw and family == "beta"), (kw, family)
    # Nor when its coefficients would take more than their budget: each light row keeps
    # one more than its votes.
    coefs = int(data.counts.votes_per_row().sum()) + data.counts.n_rows
    for budget, applies in ((coefs, True), (coefs - 1, False)):
        monkeypatch.setattr(em, "PROFILE_MAX_COEFS", budget)
        assert (em.ProductProfile.build(problem, vec) is not None) == applies


@pytest.mark.parametrize("family", ["beta_mixture", "logistic_normal_mixture"])
def test_the_profile_finish_of_a_mixture_reaches_the_same_maximum(data, monkeypatch, family):
    # The profile moves all of a mixture's coordinates (five); the maximum is the one
    # the unscreened fit reaches, both at the polish's gradient test (1e-10 relative
    # in L, as in the test of the finishes above).
    kw = {"n_init": 4, "seed": 3, "warn": False}
    whole = fit_em(data, family, **kw)
    monkeypatch.setattr(em, "SCREEN_ROWS", 120)
    sampled = fit_em(data, family, **kw)
    assert "profile" in set(sampled.history_["step"])
    assert sampled.converged_
    assert sampled.objective_ == pytest.approx(whole.objective_, rel=1e-10)
