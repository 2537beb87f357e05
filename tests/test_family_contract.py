"""The contract every registered family keeps (a new family is checked by being registered).

Significance level of the goodness-of-fit tests: 1e-3 per test, with fixed seeds (so a
run either passes or fails, and a correct family fails with probability ~1e-3 only
if the seeds are changed).
"""

import numpy as np
import pytest
from scipy import integrate, stats

from attnmodel.inference.em import EMProblem, EMState
from attnmodel.model.families import FAMILIES, FAMILY_NAMES, get_family
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.priors import resolve_mu
from attnmodel.model.simulate import simulate_votes

ALPHA = 1e-3
SEED = 20261201


def _starts(fam, n=3, seed=SEED):
    """Parameter sets from the family's own random EM starts (generic for any family)."""
    rng = np.random.default_rng(seed)
    eta_hat = rng.beta(2.0, 3.0, size=200)
    weight = rng.integers(1, 5, size=200).astype(float)
    return [fam.validate(fam.init_params(eta_hat, weight, rng, s)) for s in range(n + 1)]


@pytest.fixture(params=FAMILY_NAMES)
def fam(request):
    return get_family(request.param)


def test_registry_is_consistent():
    for name, cls in FAMILIES.items():
        assert cls.name == name
        assert get_family(name).name == name
    assert FAMILY_NAMES == tuple(FAMILIES)


def test_density_integrates_to_one(fam):
    for params in _starts(fam):
        if fam.discrete:
            w, loc = fam.components(params)
            mass = np.exp(fam.log_pdf(np.unique(loc), params)).sum()
            assert mass == pytest.approx(1.0, abs=1e-12)
            continue

        def dens(u, params=params):
            return float(np.exp(fam.log_density_logit(np.array([u]), params))[0])

        total, err = integrate.quad(dens, -np.inf, np.inf, limit=200)
        assert total == pytest.approx(1.0, abs=1e-6), params
        # The CDF is the integral of the density (log_pdf on the eta scale).
        for x in (0.2, 0.5, 0.9):
            part, _ = integrate.quad(
                lambda e, params=params: float(np.exp(fam.log_pdf(np.array([e]), params))[0]),
                0.0,
                x,
                limit=200,
            )
            assert float(fam.cdf(np.array(x), params)) == pytest.approx(part, abs=1e-6)


def test_sampling_matches_the_density(fam):
    rng = np.random.default_rng(SEED)
    for params in _starts(fam):
        x = fam.sample(params, 4000, rng)
        assert x.shape == (4000,) and np.all((x >= 0) & (x <= 1))
        if fam.discrete:
            w, loc = fam.components(params)
            atoms, counts = np.unique(x, return_counts=True)
            assert set(atoms) <= set(loc)
            observed = np.array([counts[atoms == a].sum() for a in loc])
            keep = w * x.size >= 5  # chi-square needs expected counts of 5 or more
            assert observed[~keep].sum() <= max(10, 3 * x.size * w[~keep].sum())
            if keep.sum() >= 2:
                exp = w[keep] / w[keep].sum() * observed[keep].sum()
                assert stats.chisquare(observed[keep], exp).pvalue > ALPHA, params
        else:
            p = stats.kstest(x, lambda e, params=params: fam.cdf(e, params)).pvalue
            assert p > ALPHA, params
        assert np.mean(x) == pytest.approx(fam.mean(params), abs=5 * np.std(x) / np.sqrt(x.size))


def test_m_step_does_not_decrease_the_weighted_log_likelihood(fam):
    rng = np.random.default_rng(SEED)
    if not fam.discrete:
        grid = make_logit_grid(40)
        for params in _starts(fam):
            params = fam.from_vector(fam.to_vector(params), grid)  # into the grid's box
            weight = rng.gamma(0.5, size=grid.size) * np.exp(-0.5 * (grid.u / 2.0) ** 2)

            def q(p, weight=weight):
                return float(np.dot(weight, fam.log_density_logit(grid.u, p)))

            new = fam.m_step(grid, weight, params)
            fam.validate(new)
            assert q(new) >= q(params) - 1e-9 * abs(q(params))
    # The M-step EM takes for the family (the family's own one, or the atoms' update by
    # the EM driver), on the E-step of data drawn from a random start.
    truth = _starts(fam)[1]
    data = simulate_votes(fam, truth, 150, (5, 30), mu=0.8, seed=1).to_data()
    problem = EMProblem(data.counts, fam, resolve_mu(list(data.pairs), 0.8))
    for params in _starts(fam, seed=SEED + 1):
        state = EMState(fam.from_vector(fam.to_vector(params), problem.grid), np.array([0.8]))
        estep = problem.e_step(state)
        new = problem.m_step(state, estep)
        q_old = problem.q_value(problem.to_vector(state), estep)
        q_new = problem.q_value(problem.to_vector(new), estep)
        assert q_new >= q_old - 1e-9 * abs(q_old)


def test_box_contains_the_starts_and_vectors_round_trip(fam):
    for grid in (None, make_logit_grid(30)):
        box = fam.box(grid)
        assert set(box) == set(fam.param_names) - {"weights"}
        lo, hi = fam.vector_bounds(grid)
        for params in _starts(fam):
            params = fam.from_vector(fam.to_vector(params), grid)
            for name, (b_lo, b_hi) in box.items():
                assert np.all((params[name] >= b_lo) & (params[name] <= b_hi)), name
            vec = fam.to_vector(params)
            assert np.all((vec >= lo - 1e-12) & (vec <= hi + 1e-12))
            back = fam.from_vector(vec, grid)
            for name in fam.param_names:
                np.testing.assert_allclose(back[name], params[name], rtol=1e-10, atol=1e-12)
    # The raw starts (before any projection) lie in the box the EM search uses.
    for params in _starts(fam):
        for name, (b_lo, b_hi) in fam.box(None).items():
            assert np.all((params[name] >= b_lo) & (params[name] <= b_hi)), name


def _tensors(params):
    import pytensor.tensor as pt

    return {k: pt.as_tensor_variable(np.asarray(v, dtype=np.float64)) for k, v in params.items()}


def test_pymc_log_density_equals_the_numpy_one(fam):
    import pymc as pm

    grid = make_logit_grid(30)
    for params in _starts(fam):
        params = fam.from_vector(fam.to_vector(params), grid)
        if fam.discrete:
            logw, loc = (np.asarray(t.eval()) for t in fam.pymc_atoms(_tensors(params)))
            w, want_loc = fam.components(params)
            np.testing.assert_allclose(loc, want_loc, rtol=1e-14)
            np.testing.assert_allclose(np.exp(logw), w, rtol=1e-12)
            continue
        got = fam.pymc_log_density_logit(_tensors(params), grid.u).eval()
        np.testing.assert_allclose(got, fam.log_density_logit(grid.u, params), rtol=1e-10)
        # The latent variant's eta[user] has the same density.
        eta = np.array([0.05, 0.3, 0.5, 0.77, 0.96])
        with pm.Model(coords={"user": range(eta.size)}) as model:
            fam.pymc_latent_eta(_tensors(params))
        if "eta_logit" in model.named_vars:  # drawn on the logit scale
            u = np.log(eta) - np.log1p(-eta)
            got = pm.logp(model["eta_logit"], u).eval()
            want = fam.log_density_logit(u, params)
        else:
            got = pm.logp(model["eta"], eta).eval()
            want = fam.log_pdf(eta, params)
        np.testing.assert_allclose(got, want, rtol=1e-8)
