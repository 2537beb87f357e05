"""The logit-space quadrature and the 1-D maximiser that the M-steps rely on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from attnmodel.model.families import Beta
from attnmodel.model.grid import make_logit_grid, maximize_concave_1d, pair_log_probs


def _grid_log_marginal(grid, n, s, mu, a, b):
    lg, lf = pair_log_probs(grid.eta, grid.one_minus_eta, np.array([mu]))
    terms = s * lg[0] + (n - s) * lf[0] + grid.log_weight
    terms = terms + Beta().log_density_logit(grid.u, {"alpha": a, "beta": b})
    peak = terms.max()
    return peak + np.log(np.exp(terms - peak).sum())


def _quad_log_marginal(n, s, mu, a, b, shift):
    def f(e):
        g = 0.5 + e * (mu - 0.5)
        return np.exp(s * np.log(g) + (n - s) * np.log1p(-g) - shift) * stats.beta.pdf(e, a, b)

    centre = (s / n - 0.5) / (mu - 0.5)
    points = [centre] if 0 < centre < 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        val, _ = integrate.quad(f, 0, 1, points=points, limit=500, epsabs=0, epsrel=1e-13)
    return shift + np.log(val)


@pytest.mark.parametrize("max_votes", [50, 500, 5000])
@pytest.mark.parametrize(
    ("a", "b"), [(3.0, 5.0), (0.3, 0.5), (40.0, 40.0), (0.2, 30.0), (0.1, 30.0)]
)
@pytest.mark.parametrize("mu", [0.6, 0.8, 0.999])
def test_marginal_likelihood_matches_adaptive_quadrature(max_votes, a, b, mu):
    # The sinh-stretched trapezoid rule against scipy's adaptive quadrature of
    # the same integral in eta. 2e-8 relative on the likelihood (not its log)
    # covers both rules' errors; the grid alone is far more accurate where the
    # integrand is smooth.
    grid = make_logit_grid(max_votes)
    n = max_votes
    for s in (int(0.55 * n), int(0.8 * n), n, 0):
        ours = _grid_log_marginal(grid, n, s, mu, a, b)
        ref = _quad_log_marginal(n, s, mu, a, b, shift=ours)
        assert abs(ours - ref) <= 2e-8, (s, ours, ref)


def test_vote_probabilities_keep_their_digits_near_one():
    # 1 - g with eta and mu near 1 must not be computed as 1 - (almost 1).
    # (1 - mu) is exact in floating point here (Sterbenz), so the reference is too.
    mu = 1 - 1e-9
    lg, lf = pair_log_probs(np.array([1 - 1e-12]), np.array([1e-12]), np.array([mu]))
    one_minus_g = 0.5 * 1e-12 + (1 - 1e-12) * (1.0 - mu)
    assert lf[0, 0] == pytest.approx(np.log(one_minus_g), rel=1e-13)
    assert lg[0, 0] == pytest.approx(np.log1p(-one_minus_g), abs=1e-15)
    # The naive 1 - g loses about 7 of the 16 digits here.
    naive = np.log(1.0 - (0.5 + (1 - 1e-12) * (mu - 0.5)))
    assert abs(naive - np.log(one_minus_g)) > 1e-9


def test_grid_spacing_follows_the_largest_vote_count():
    assert make_logit_grid(50).spacing == pytest.approx(0.1)
    assert make_logit_grid(10_000).spacing == pytest.approx(0.025)
    big = make_logit_grid(10_000)
    assert big.u[0] == pytest.approx(-200.0, rel=1e-2) and big.u[-1] == pytest.approx(
        200.0, rel=1e-2
    )
    with pytest.raises(ValueError, match="spacing"):
        make_logit_grid(10, spacing=0.0)


def test_concave_maximiser_agrees_with_scipy(rng):
    # Random concave functions c1 x + c2 log(x - l) + c3 log(h - x) - q x^2 on (l, h),
    # including maxima pinned at a bound.
    k = 200
    lo = rng.uniform(-1, 0, size=k)
    hi = lo + rng.uniform(0.1, 2, size=k)
    c1 = rng.normal(0, 20, size=k)
    c2 = np.where(rng.random(k) < 0.3, 0.0, rng.uniform(0, 3, size=k))
    c3 = np.where(rng.random(k) < 0.3, 0.0, rng.uniform(0, 3, size=k))
    q = rng.uniform(0, 2, size=k)

    def term(c, d, power):
        # c / d**power, with 0 where c == 0 (no log term, even at its bound).
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 0, c / d**power, 0.0)

    def grad(x):
        return c1 + term(c2, x - lo, 1) - term(c3, hi - x, 1) - 2 * q * x

    def hess(x):
        return -term(c2, x - lo, 2) - term(c3, hi - x, 2) - 2 * q

    x = maximize_concave_1d(grad, hess, lo, hi, 0.5 * (lo + hi))
    for i in range(k):

        def f(y, i=i):
            with np.errstate(divide="ignore"):
                return -(
                    c1[i] * y
                    + (c2[i] * np.log(y - lo[i]) if c2[i] else 0.0)
                    + (c3[i] * np.log(hi[i] - y) if c3[i] else 0.0)
                    - q[i] * y**2
                )

        ref = optimize.minimize_scalar(
            f, bounds=(lo[i], hi[i]), method="bounded", options={"xatol": 1e-12}
        )
        # Our answer must be at least as good as scipy's bounded Brent search.
        assert f(x[i]) <= ref.fun + 1e-9 * (1 + abs(ref.fun)), i
