"""The free coordinates of increasing points in an interval (attnmodel.model.transforms)."""

from __future__ import annotations

import math

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import special, stats

import attnmodel as am
from attnmodel.model.pymc_model import build_model
from attnmodel.model.transforms import OrderedInterval

BOUNDS = [(0.0, 1.0), (0.05, 0.9)]


def _compiled(lo, hi):
    import pytensor

    z = pt.dvector("z")
    x = pt.dvector("x")
    tr = OrderedInterval(lo, hi)
    backward = pytensor.function([z], tr.backward(z))
    forward = pytensor.function([x], tr.forward(x))
    log_jac = pytensor.function([z], tr.log_jac_det(z))
    return backward, forward, log_jac


def _points(lo, hi, k, rng):
    """Increasing points in (lo, hi), one of them near lo."""
    x = np.sort(rng.uniform(lo, hi, k))
    x[0] = lo + 1e-4 * (hi - lo)
    return x


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("lo, hi", BOUNDS)
def test_round_trip_and_order(lo, hi, k):
    backward, forward, _ = _compiled(lo, hi)
    rng = np.random.default_rng(k)
    for _ in range(20):
        x = _points(lo, hi, k, rng)
        np.testing.assert_allclose(backward(forward(x)), x, rtol=1e-12, atol=1e-15)
        z = rng.normal(0.0, 4.0, k)
        eta = backward(z)
        assert np.all(np.diff(eta) > 0) and lo < eta[0] and eta[-1] < hi


def _numeric_log_det(backward, z):
    """log |det d eta / d z| by central differences (steps for ~1e-9 relative accuracy)."""
    h = 1e-6
    jac = np.empty((z.size, z.size))
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        jac[:, i] = (backward(z + e) - backward(z - e)) / (2 * h)
    sign, logdet = np.linalg.slogdet(jac)
    assert sign != 0
    return logdet


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("lo, hi", BOUNDS)
def test_log_jacobian_is_the_order_statistics_density(lo, hi, k):
    """Flat on the increasing points means ``r_k = sigmoid(z_k)`` independent Beta(k, 1).

    The density of ``z`` is then ``(hi - lo)^K / K! * prod_k Beta(k, 1).pdf(r_k)
    r_k (1 - r_k)``, written here with scipy; it must equal the transform's
    log Jacobian, and a numerical determinant of the backward map's Jacobian.
    """
    backward, _, log_jac = _compiled(lo, hi)
    rng = np.random.default_rng(10 + k)
    for _ in range(10):
        z = rng.normal(0.0, 2.0, k)
        r = special.expit(z)
        ref = k * np.log(hi - lo) - math.lgamma(k + 1)
        ref += sum(
            stats.beta.logpdf(r[i], i + 1, 1) + np.log(r[i]) + np.log1p(-r[i]) for i in range(k)
        )
        assert float(log_jac(z)) == pytest.approx(ref, rel=1e-12, abs=1e-12)
        assert float(log_jac(z)) == pytest.approx(_numeric_log_det(backward, z), abs=1e-7)


def test_two_point_top_location_keeps_its_scale_near_zero():
    """The log density's curvature along eta_high's coordinate does not grow as eta_low nears 0.

    With PyMC's ordered transform on top of logits it grew with
    ``(logit eta_high - logit eta_low)^2`` (25 times here between eta_low = 0.3 and
    1e-4), the geometry in which NUTS chains stalled.
    """
    data = am.VoteData.from_counts([8] * 30, [6] * 15 + [4] * 15)
    attn = build_model(data, "two_point", mu=0.8)
    model = attn.model
    logp = model.compile_logp()
    rv = model["_locations"]

    def free_point(eta_low):
        model.set_initval(rv, np.array([eta_low, 0.7]))
        return model.initial_point()

    def curvature(eta_low):
        point = free_point(eta_low)
        (name,) = [k for k in point if k.startswith("_locations")]
        h = 1e-3
        vals = []
        for d in (-h, 0.0, h):
            p = dict(point)
            p[name] = point[name] + np.array([0.0, d])
            vals.append(float(logp(p)))
        return (vals[0] - 2 * vals[1] + vals[2]) / h**2

    near, inside = curvature(1e-4), curvature(0.3)
    assert near < 0 and inside < 0
    assert abs(near) < 2 * abs(inside), (near, inside)
