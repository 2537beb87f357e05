"""The NUTS model's gradient against Richardson-extrapolated central differences.

For each family with an identified parameterisation (``beta``, ``two_point``,
``k_point``), in the default ``identified`` coordinates and in the
``standard`` ones, at several random points of the sampler's unconstrained
space, the compiled ``dlogp`` of the PyMC model (:func:`attnmodel.build_model`,
marginal variant, every ``mu`` under a prior) is compared with central
differences of the compiled ``logp``.

Derivative estimate: ``D(h) = (f(x + h) - f(x - h)) / (2 h)`` has an error
series in ``h^2, h^4, ...``; with ``h_i = h_0 / 2^i`` (i = 0..3, ``h_0 = 1e-2``)
Richardson's table removes the first three terms. Its last entry is the
reference; the difference between the last two entries of its last row,
``E``, estimates the reference's error. Tolerance: ``|dlogp - reference| <=
8 E + 1e-12 (1 + |logp|) / h_3`` per coordinate, the second term bounding the
rounding error of the differences (a relative error of 1e-12 per logp, a
sum over count rows and quadrature nodes, amplified by 1 / h). An error of a
percent in one term of the gradient is off by orders of magnitude more.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import get_default_mode

import attnmodel as am

SEEDS = {"beta": 1, "two_point": 2, "k_point": 3}

H0 = 1e-2
LEVELS = 4
N_POINTS = 3
SPREAD = 0.4
#: Relative rounding error of one logp evaluation assumed in the tolerance.
ROUNDING = 1e-12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(31)
    eta = rng.beta(3.0, 4.0, size=60)
    n = rng.integers(5, 25, size=(60, 2))
    s = rng.binomial(n, 0.5 + eta[:, None] * (np.array([0.8, 0.65]) - 0.5))
    return am.VoteData.from_counts(n, s)


def richardson(f, x, i):
    """Derivative of ``f`` along coordinate ``i`` at ``x`` and its error estimate."""
    table = []
    for level in range(LEVELS):
        h = H0 / 2**level
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        row = [(f(up) - f(down)) / (2.0 * h)]
        for k in range(1, level + 1):
            factor = 4.0**k
            row.append((factor * row[k - 1] - table[level - 1][k - 1]) / (factor - 1.0))
        table.append(row)
    return table[-1][-1], abs(table[-1][-1] - table[-1][-2])


def check_gradient(attn, seed):
    model = attn.model
    # The mode the sampler compiles with: PyTensor's default without the in-place rewrite.
    mode = get_default_mode().excluding("inplace")
    logp_fn = model.compile_logp(mode=mode)
    dlogp_fn = model.compile_dlogp(mode=mode)
    start = model.initial_point()
    names = [v.name for v in model.value_vars]
    shapes = [np.shape(start[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    x0 = np.concatenate([np.ravel(start[n]) for n in names]).astype(float)

    def as_point(x):
        out, pos = {}, 0
        for name, shape, size in zip(names, shapes, sizes, strict=True):
            out[name] = x[pos : pos + size].reshape(shape)
            pos += size
        return out

    def f(x):
        return float(logp_fn(as_point(x)))

    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(50):
        x = x0 + SPREAD * rng.standard_normal(x0.size)
        # Points whose whole difference stencil lies where the density is finite.
        if not np.isfinite(f(x)) or not all(
            np.isfinite(f(x + d * H0 * e)) for e in np.eye(x.size) for d in (-1, 1)
        ):
            continue
        grad = np.asarray(dlogp_fn(as_point(x)), dtype=float)
        assert grad.shape == x.shape
        value = f(x)
        for i in range(x.size):
            ref, err = richardson(f, x, i)
            tol = 8.0 * err + ROUNDING * (1.0 + abs(value)) / (H0 / 2 ** (LEVELS - 1))
            assert abs(grad[i] - ref) <= tol, (
                f"{attn.family.name} ({attn.parameterization}) at {as_point(x)}: d logp / "
                f"d x[{i}] is {grad[i]!r}, Richardson gives {ref!r} (error estimate {err:.2e}, "
                f"tolerance {tol:.2e})"
            )
        checked += 1
        if checked == N_POINTS:
            return
    pytest.fail(f"fewer than {N_POINTS} points with a finite stencil")


@pytest.mark.parametrize("family", ["beta", "two_point", "k_point"])
@pytest.mark.parametrize("parameterization", ["identified", "standard"])
def test_gradient_matches_richardson(data, family, parameterization):
    attn = am.build_model(
        data,
        family,
        mu_prior=am.BetaPrior(8.0, 2.0),
        n_components=3 if family == "k_point" else None,
        parameterization=parameterization,
    )
    assert attn.parameterization == parameterization
    check_gradient(attn, seed=SEEDS[family] + 10 * (parameterization == "standard"))
