"""Priors of the family parameters: numpy log densities against PyMC's, and the EM import path."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from attnmodel.model.families import get_family
from attnmodel.model.priors import NUMPY_PRIORS, Prior, default_priors

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


@pytest.mark.parametrize("family", ["two_point", "k_point", "beta_mixture"])
def test_default_priors_are_flat_on_the_box(family):
    fam = get_family(family)
    pri = default_priors(fam, None)
    for name, (lo, hi) in fam.box(None).items():
        assert pri[name] == Prior("Uniform", lower=lo, upper=hi)
    if "weights" in fam.param_names:
        assert pri["weights"] == Prior("Dirichlet", a=[1.0] * fam.n_components)


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
