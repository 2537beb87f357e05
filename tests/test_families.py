"""The attentiveness families: densities, sampling, quantiles and M-steps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from attnmodel.model.families import FAMILY_NAMES, get_family
from attnmodel.model.grid import make_logit_grid

EXAMPLES = {
    "two_point": {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98},
    "k_point": {"weights": np.array([0.2, 0.6, 0.2]), "locations": np.array([0.2, 0.6, 0.9])},
    "beta": {"alpha": 3.0, "beta": 5.0},
    "beta_mixture": {
        "weights": np.array([0.6, 0.4]),
        "alpha": np.array([4.0, 16.0]),
        "beta": np.array([16.0, 4.0]),
    },
    "logistic_normal_mixture": {
        "weights": np.array([0.3, 0.7]),
        "logit_mean": np.array([-1.5, 0.8]),
        "logit_sd": np.array([0.6, 0.9]),
    },
}
N_COMPONENTS = {"k_point": 3, "beta_mixture": 2, "logistic_normal_mixture": 2}


def _family(name):
    return get_family(name, N_COMPONENTS.get(name))


def test_every_family_has_an_example():
    assert set(EXAMPLES) == set(FAMILY_NAMES)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_samples_follow_the_cdf(name):
    # Dvoretzky-Kiefer-Wolfowitz: P(sup|F_n - F| > eps) <= 2 exp(-2 n eps^2);
    # eps = 0.0139 at n = 20000 makes a false failure a 1-in-1000 event (fixed seed).
    fam = _family(name)
    params = fam.validate(EXAMPLES[name])
    x = np.sort(fam.sample(params, 20000, np.random.default_rng(1)))
    ecdf = np.searchsorted(x, x, side="right") / x.size
    f = fam.cdf(x, params)
    assert np.max(np.abs(ecdf - f)) <= 0.0139
    assert np.mean(x) == pytest.approx(fam.mean(params), abs=4 * x.std() / np.sqrt(x.size))


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_quantiles_invert_the_cdf(name):
    fam = _family(name)
    params = fam.validate(EXAMPLES[name])
    q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    x = fam.ppf(q, params)
    assert np.all(np.diff(x) >= 0)
    if fam.discrete:
        # Smallest atom whose CDF reaches q.
        assert np.all(fam.cdf(x, params) >= q - 1e-12)
        assert np.all(fam.cdf(x - 1e-9, params) < q)
    else:
        np.testing.assert_allclose(fam.cdf(x, params), q, atol=1e-12)


@pytest.mark.parametrize("name", ["beta", "beta_mixture", "logistic_normal_mixture"])
def test_density_integrates_to_one_on_the_grid(name):
    fam = _family(name)
    params = fam.validate(EXAMPLES[name])
    grid = make_logit_grid(100)
    total = np.exp(grid.log_weight + fam.log_density_logit(grid.u, params)).sum()
    assert total == pytest.approx(1.0, abs=1e-9)
    # The eta-space density is the logit-space one without the Jacobian.
    eta = np.array([0.1, 0.5, 0.93])
    if name == "beta":
        np.testing.assert_allclose(
            fam.log_pdf(eta, params), stats.beta.logpdf(eta, 3, 5), rtol=1e-12
        )


@pytest.mark.parametrize("name", ["beta", "beta_mixture", "logistic_normal_mixture"])
def test_m_step_does_not_lower_the_weighted_likelihood(name):
    fam = _family(name)
    grid = make_logit_grid(100)
    rng = np.random.default_rng(4)
    truth = fam.validate(EXAMPLES[name])
    weight = np.exp(grid.log_weight + fam.log_density_logit(grid.u, truth)) * 1000
    weight *= rng.uniform(0.8, 1.2, size=weight.size)
    start = fam.init_params(special.expit(rng.normal(size=50)), np.ones(50), rng, start=1)

    def q(p):
        return float(np.dot(weight, fam.log_density_logit(grid.u, p)))

    p = start
    values = [q(p)]
    for _ in range(30):
        p = fam.m_step(grid, weight, p)
        values.append(q(p))
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[1:]))


def test_beta_m_step_solves_the_digamma_equations():
    fam = _family("beta")
    grid = make_logit_grid(100)
    weight = np.exp(grid.log_weight + fam.log_density_logit(grid.u, {"alpha": 2.5, "beta": 7.0}))
    weight = weight * (1 + 0.3 * np.sin(grid.u))
    p = fam.m_step(grid, weight, {"alpha": 1.0, "beta": 1.0})
    t1 = np.dot(weight, grid.log_eta) / weight.sum()
    t2 = np.dot(weight, grid.log_one_minus_eta) / weight.sum()
    a, b = p["alpha"], p["beta"]
    assert special.digamma(a) - special.digamma(a + b) == pytest.approx(t1, abs=1e-11)
    assert special.digamma(b) - special.digamma(a + b) == pytest.approx(t2, abs=1e-11)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_unconstrained_round_trip(name):
    fam = _family(name)
    params = fam.validate(EXAMPLES[name])
    back = fam.from_vector(fam.to_vector(params))
    for key in fam.param_names:
        np.testing.assert_allclose(back[key], params[key], rtol=1e-12)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="missing \\['beta'\\]"):
        get_family("beta").validate({"alpha": 1.0})
    with pytest.raises(ValueError, match="'alpha' must be > 0"):
        get_family("beta").validate({"alpha": -1.0, "beta": 2.0})
    with pytest.raises(ValueError, match="weights must be >= 0 and sum to 1"):
        get_family("k_point", 2).validate({"weights": [0.5, 0.6], "locations": [0.1, 0.2]})
    with pytest.raises(ValueError, match="unknown family 'gamma'"):
        get_family("gamma")
