"""Priors of the family parameters: numpy log densities against PyMC's, and the EM import path."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from attnmodel.model.families import get_family
from attnmodel.model.priors import (
    DEFAULT_MEAN_CONCENTRATION,
    MEAN_CONCENTRATION,
    NUMPY_PRIORS,
    MeanConcentration,
    Prior,
    default_priors,
    flat_priors,
    resolve_priors,
)

#: One prior per distribution with a numpy density, in PyMC's parameterisation, and a
#: box to truncate it to (as the model truncates a family parameter's prior).
SCALAR_CASES = [
    (Prior("Uniform", lower=0.5, upper=30.0), (0.2, 20.0)),
    (Prior("Normal", mu=6.0, sigma=2.0), (0.2, 50.0)),
    (Prior("Normal", mu=-1.0, tau=4.0), (-50.0, 50.0)),
    (Prior("HalfNormal", sigma=5.0), (0.2, 50.0)),
    (Prior("Gamma", alpha=2.0, beta=0.2), (0.2, 50.0)),
    (Prior("Gamma", mu=4.0, sigma=3.0), (0.2, 50.0)),
    (Prior("Exponential", lam=0.3), (0.2, 50.0)),
    (Prior("Exponential", scale=2.0), (0.2, 50.0)),
    (Prior("LogNormal", mu=1.0, sigma=0.7), (0.2, 50.0)),
    (Prior("Beta", alpha=2.0, beta=5.0), (0.0, 1.0)),
    (Prior("HalfCauchy", beta=2.0), (0.05, 148.0)),
    (Prior("Cauchy", alpha=0.5, beta=1.5), (-50.0, 50.0)),
    (Prior("TruncatedNormal", mu=1.0, sigma=2.0, lower=0.0, upper=10.0), (0.2, 50.0)),
]

#: PyMC writes some constants of its densities as integers (``pt.log(2)`` in HalfNormal
#: and HalfCauchy, ...) and PyTensor keeps Python numbers that are exact in float32
#: (``sigma=9``) as float32 constants, evaluating such terms in float32: its log
#: densities are off by up to ~4e-8 from the exact values scipy gives. A wrong
#: parameterisation is off by far more.
ATOL = 1e-7


def _pymc_logp(prior: Prior, x: np.ndarray, box) -> np.ndarray:
    """``pm.logp`` of the variable the model creates for ``prior`` on ``box``."""
    import pymc as pm

    # Float64 arrays: PyTensor would store Python floats that are exact in float32
    # (0.5, 20.0, ...) as float32 constants and round the result to float32.
    f64 = {k: np.asarray(v, dtype=np.float64) for k, v in prior.params.items()}
    if box is None:
        dist = getattr(pm, prior.dist).dist(**f64)
    elif prior.dist == "Uniform":
        lo, hi = np.asarray(prior.uniform_bounds(*box), dtype=np.float64)
        dist = pm.Uniform.dist(lower=lo, upper=hi)
    else:
        lo, hi = np.asarray(box, dtype=np.float64)
        dist = pm.Truncated.dist(getattr(pm, prior.dist).dist(**f64), lower=lo, upper=hi)
    return np.array([float(pm.logp(dist, np.float64(v)).eval()) for v in x])


def test_every_numpy_prior_is_checked():
    assert {p.dist for p, _ in SCALAR_CASES} | {"Dirichlet"} == set(NUMPY_PRIORS)


@pytest.mark.parametrize("prior, box", SCALAR_CASES, ids=[str(p) for p, _ in SCALAR_CASES])
def test_numpy_log_prior_equals_pymc_logp(prior, box):
    assert prior.has_numpy_density
    lo, hi = box
    # Inside the box, at its edges and outside it (below and above).
    x = np.array([lo, lo + 0.3 * (hi - lo), 0.5 * (lo + hi), hi, lo - 0.1, hi + 0.5])
    got = prior.logpdf(x, lo, hi)
    want = _pymc_logp(prior, x, box)
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-12, atol=ATOL)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    assert np.all(np.isneginf(got[-2:]))
    # Untruncated, within the distribution's own support.
    inside = x[:4] if prior.dist != "Uniform" else x[1:3]
    want = _pymc_logp(prior, inside, None)
    np.testing.assert_allclose(prior.logpdf(inside), want, rtol=1e-12, atol=ATOL)


def test_dirichlet_log_prior_equals_pymc_logp():
    import pymc as pm

    prior = Prior("Dirichlet", a=[1.0, 2.5, 0.7])
    dist = prior.pymc_dist()
    for w in ([0.2, 0.5, 0.3], [0.0, 0.6, 0.4], [0.6, 0.6, -0.2]):
        want = float(pm.logp(dist, np.array(w)).eval())
        got = float(prior.logpdf(w))
        if np.isfinite(want):
            assert got == pytest.approx(want, rel=1e-12)
        else:
            assert np.isneginf(got)


def test_prior_without_numpy_density_falls_back_to_pymc():
    prior = Prior("StudentT", nu=3.0, mu=5.0, sigma=2.0)
    assert not prior.has_numpy_density
    x = np.array([0.3, 5.0, 40.0, 60.0])
    np.testing.assert_allclose(
        prior.logpdf(x, 0.2, 50.0), _pymc_logp(prior, x, (0.2, 50.0)), rtol=1e-12, atol=ATOL
    )


def test_family_log_prior_equals_the_pymc_model(beta_data):
    """``Family.log_prior`` is ``pm.logp`` of the model's family variables."""
    import pymc as pm

    from attnmodel.model.pymc_model import build_model

    priors = {"alpha": Prior("Gamma", alpha=2.0, beta=0.2), "beta": Prior("HalfNormal", sigma=9)}
    attn = build_model(beta_data, "beta", mu=0.8, priors=priors, likelihood=False)
    fam, rvs = attn.family, {v.name: v for v in attn.model.free_RVs}
    for a, b in [(0.5, 1.0), (3.0, 40.0), (0.1, 2.0)]:
        params = {"alpha": a, "beta": b}
        want = sum(float(pm.logp(rvs[k], v).eval()) for k, v in params.items())
        got = fam.log_prior(params, attn.priors, attn.grid)
        if np.isfinite(want):
            assert got == pytest.approx(want, rel=1e-12, abs=ATOL)
        else:
            assert np.isneginf(got)


@pytest.mark.parametrize("family", ["two_point", "k_point"])
def test_discrete_default_priors_are_flat_on_eta_range(family):
    fam = get_family(family)
    pri = default_priors(fam, None)
    assert pri == flat_priors(fam, None)
    for name, (lo, hi) in fam.box(None).items():
        assert pri[name] == Prior("Uniform", lower=lo, upper=hi)
    if "weights" in fam.param_names:
        assert pri["weights"] == Prior("Dirichlet", a=[1.0] * fam.n_components)


def _joint_reference(a, b, lo, hi):
    """The default mean/concentration prior written again: scipy densities, 2-D normaliser.

    ``m ~ Beta(1.5, 1.5)``, ``kappa ~ LogNormal(log 8, 0.8)``; in ``(alpha, beta)`` the
    density is ``p(m) p(kappa) / kappa``, normalised over the box by ``dblquad``. The
    integrand is the same density in closed form with ``math`` (scipy's
    ``pdf`` costs 0.3 ms a call, and ``dblquad`` calls it 7e4 times); it is checked
    against the scipy densities at the points asked for.
    """
    import math

    from scipy import integrate, special, stats

    def dens(x, y):
        k = x + y
        return stats.beta.pdf(x / k, 1.5, 1.5) * stats.lognorm.pdf(k, 0.8, scale=8.0) / k

    log_b, sd, log_scale = special.betaln(1.5, 1.5), 0.8, math.log(8.0)
    log_c = math.log(sd * math.sqrt(2.0 * math.pi))

    def dens_closed(x, y):
        k = x + y
        m, lk = x / k, math.log(k)
        log_pm = 0.5 * math.log(m) + 0.5 * math.log1p(-m) - log_b
        log_pk = -((lk - log_scale) ** 2) / (2.0 * sd * sd) - lk - log_c
        return math.exp(log_pm + log_pk - lk)

    closed = [dens_closed(x, y) for x, y in zip(np.ravel(a), np.ravel(b), strict=True)]
    np.testing.assert_allclose(closed, dens(np.ravel(a), np.ravel(b)), rtol=1e-12)
    mass, _ = integrate.dblquad(dens_closed, lo, hi, lo, hi, epsabs=1e-13, epsrel=1e-11)
    return np.log(dens(np.asarray(a), np.asarray(b))) - np.log(mass)


@pytest.mark.parametrize("family", ["beta", "beta_mixture"])
def test_beta_default_prior_is_mean_and_concentration(family):
    fam = get_family(family)
    pri = default_priors(fam, None)
    assert pri[MEAN_CONCENTRATION] == DEFAULT_MEAN_CONCENTRATION == MeanConcentration()
    assert pri[MEAN_CONCENTRATION].mean == Prior("Beta", alpha=1.5, beta=1.5)
    # The shapes themselves are flat: they carry the box.
    flat = flat_priors(fam, None)
    assert {k: v for k, v in pri.items() if k != MEAN_CONCENTRATION} == flat
    a = np.array([0.2, 0.5, 3.0, 6.7, 30.0, 50.0])
    b = np.array([1.0, 0.3, 40.0, 0.2, 30.0, 49.0])
    got = DEFAULT_MEAN_CONCENTRATION.logpdf(a, b, 0.2, 50.0)
    np.testing.assert_allclose(got, _joint_reference(a, b, 0.2, 50.0), rtol=1e-9, atol=1e-9)
    outside = DEFAULT_MEAN_CONCENTRATION.logpdf([0.1, 3.0, 51.0], [3.0, 0.19, 2.0], 0.2, 50.0)
    assert np.all(np.isneginf(outside))


def test_default_prior_keeps_mass_off_the_box():
    """Draws of the truncated default prior: under 1% of them within 1% of a bound.

    Measured as fit_warnings measures it (shapes on the log scale); 4e5 draws put the
    fraction, 0.3%, within 0.02% (one binomial sd 9e-5).
    """
    lo, hi = 0.2, 50.0
    a, b = DEFAULT_MEAN_CONCENTRATION.sample(400_000, np.random.default_rng(0), lo, hi)
    tol = 0.01 * np.log(hi / lo)

    def near(x):
        return (np.log(x / lo) <= tol) | (np.log(hi / x) <= tol)

    assert np.mean(near(a) | near(b)) < 0.01
    assert np.all((a >= lo) & (a <= hi) & (b >= lo) & (b <= hi))
    # 97% of the untruncated prior lies in the box.
    assert np.exp(DEFAULT_MEAN_CONCENTRATION.log_box_mass(lo, hi)) > 0.95


def test_logistic_normal_default_priors():
    fam = get_family("logistic_normal_mixture")
    pri = default_priors(fam, None)
    assert pri["logit_mean"] == Prior("Normal", mu=1.0, sigma=2.5)
    assert pri["logit_sd"] == Prior("LogNormal", mu=0.0, sigma=0.6)
    assert pri["weights"] == Prior("Dirichlet", a=[1.0, 1.0])


def test_resolve_priors_rules():
    beta = get_family("beta")
    flat = flat_priors(beta, None)
    assert resolve_priors(beta, None, "flat") == flat
    assert resolve_priors(beta, None, None) == default_priors(beta, None)
    # A prior on one shape replaces the joint prior (which is a prior on both).
    gamma = Prior("Gamma", alpha=2.0, beta=0.2)
    assert resolve_priors(beta, None, {"alpha": gamma}) == {**flat, "alpha": gamma}
    joint = MeanConcentration(
        Prior("Beta", alpha=4.0, beta=2.0), Prior("Gamma", alpha=3.0, beta=0.3)
    )
    got = resolve_priors(beta, None, {MEAN_CONCENTRATION: joint})
    assert got == {**flat, MEAN_CONCENTRATION: joint}
    with pytest.raises(ValueError, match="give one or the other"):
        resolve_priors(beta, None, {MEAN_CONCENTRATION: joint, "alpha": gamma})
    with pytest.raises(ValueError, match="'mean_concentration'.*not parameters of 'two_point'"):
        resolve_priors(get_family("two_point"), None, {MEAN_CONCENTRATION: joint})
    with pytest.raises(TypeError, match="MeanConcentration"):
        resolve_priors(beta, None, {MEAN_CONCENTRATION: gamma})
    with pytest.raises(ValueError, match="'flat'"):
        resolve_priors(beta, None, "uniform")
    with pytest.raises(ValueError, match="scipy density"):
        MeanConcentration(Prior("StudentT", nu=3.0), Prior("Gamma", alpha=2.0, beta=1.0))


def test_em_imports_neither_pymc_nor_pytensor():
    """``fit_em`` and ``fit(method="em")`` run in a fresh interpreter without PyMC."""
    code = textwrap.dedent(
        """
        import sys
        import attnmodel as am
        from attnmodel.model.priors import Prior

        sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 60, 20, mu=0.8, seed=1)
        data = sim.to_data()
        am.fit_em(data, "beta", mu_prior=(8, 2), n_init=1)
        gamma = {"alpha": Prior("Gamma", alpha=2.0, beta=0.2)}
        am.fit_em(data, "beta", mu=0.8, n_init=1, priors=gamma)
        am.fit_em(data, "k_point", mu=0.8, n_init=1)
        print(sorted(m for m in ("pymc", "pytensor") if m in sys.modules))
        am.fit(data, "beta", mu=0.8, method="em")
        print(sorted(m for m in ("pymc", "pytensor") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    ).stdout.split("\n")
    assert out[0] == "[]", "fit_em imported " + out[0]
    assert out[1] == "[]", "fit(method='em') imported " + out[1]


@pytest.mark.parametrize(
    ("prior", "reference"),
    [
        (Prior("Normal", mu=1.0, sigma=2.5), stats.norm(1.0, 2.5)),
        (Prior("Normal", mu=-0.5, tau=4.0), stats.norm(-0.5, 0.5)),
        (Prior("LogNormal", mu=float(np.log(8.0)), sigma=0.8), stats.lognorm(0.8, scale=8.0)),
        (Prior("Beta", alpha=1.5, beta=1.5), stats.beta(1.5, 1.5)),
        (Prior("Beta", alpha=1.0, beta=3.0), stats.beta(1.0, 3.0)),
        (Prior("Beta", alpha=0.5, beta=2.0), stats.beta(0.5, 2.0)),
    ],
)
def test_closed_form_log_densities_match_scipy(prior, reference):
    # Normal, LogNormal and Beta are evaluated in closed form (not through scipy):
    # the same values to rounding, -inf at the same places, truncated alike.
    x = np.array([-1.0, 0.0, 1e-9, 0.2, 0.5, 0.99, 1.0, 2.0, 40.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = reference.logpdf(x)
    got = prior.logpdf(x)
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    assert np.array_equal(got == -np.inf, want == -np.inf)
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-13, atol=1e-13)
    lo, hi = 0.1, 0.9
    mass = reference.cdf(hi) - reference.cdf(lo)
    inside = (x >= lo) & (x <= hi)
    np.testing.assert_allclose(
        prior.logpdf(x, lo, hi)[inside], want[inside] - np.log(mass), rtol=1e-12
    )
    assert np.all(prior.logpdf(x, lo, hi)[~inside] == -np.inf)
