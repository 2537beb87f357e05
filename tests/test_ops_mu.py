"""The fused Op (``log g`` formed from ``mu`` in the kernel) against the E-step Op.

:class:`attnmodel.model.ops.MarginalVotesMu` must give the log-likelihood of
:class:`attnmodel.model.ops.MarginalVotes` fed with ``log g`` and
``log(1 - g)`` that PyTensor forms from ``mu``, and the same gradient in
``mu``, the row weights and the log node masses (the reference's gradient in
``mu`` is PyTensor's chain rule through those logs, not the fused kernel's
sum). Data: many pairs with votes per user from 1 to thousands, so that rows
take every stride level and the heavy ones the support cut. Tolerance 1e-10
relative: both sum the same terms in another order (rounding, about 1e-13).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import attnmodel as am
from attnmodel.model import kernels
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.ops import marginal_votes, marginal_votes_mu


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n_users, n_pairs = 120, 12
    eta = rng.beta(4.0, 1.5, n_users)
    mu = rng.uniform(0.55, 0.95, n_pairs)
    votes = np.clip(np.exp(rng.normal(np.log(20.0), 1.6, n_users)), 1, 5000).astype(int)
    votes[0] = 5000
    n = np.stack([rng.multinomial(v, np.full(n_pairs, 1.0 / n_pairs)) for v in votes])
    s = rng.binomial(n, 0.5 + eta[:, None] * (mu - 0.5))
    return am.VoteData.from_counts(n, s)


NAMES = ("total", "d/d mu", "d/d log_mass", "d/d weight")


def _graphs(counts, grid):
    mu = pt.dvector("mu")
    log_mass = pt.dvector("log_mass")
    weight = pt.dvector("weight")
    eta = pt.as_tensor_variable(grid.eta)
    half = 0.5 * pt.as_tensor_variable(grid.one_minus_eta)
    log_g = pt.log(half[None, :] + eta[None, :] * mu[:, None])
    log_1mg = pt.log(half[None, :] + eta[None, :] * (1.0 - mu[:, None]))
    old = marginal_votes(counts, weight, log_g, log_1mg, log_mass, grid.spacing)
    new = marginal_votes_mu(counts, weight, mu, grid, log_mass)
    out = []
    for total in (old, new):
        grads = pytensor.grad(total, [mu, log_mass, weight])
        out.append(pytensor.function([mu, log_mass, weight], [total, *grads]))
    return out


def test_fused_op_equals_the_e_step_op(data):
    counts = data.counts
    votes = counts.row_sum((counts.entry_n).astype(float))
    grid = make_logit_grid(int(votes.max()))
    assert not kernels.fused_pays(counts, grid.size)  # below the size rule: the kernel alone
    old, new = _graphs(counts, grid)
    rng = np.random.default_rng(3)
    weight = counts.row_weight.astype(float)
    for _ in range(3):
        mu = rng.uniform(0.52, 0.99, counts.n_pairs)
        a, b = rng.uniform(0.5, 6.0, 2)
        u = grid.u
        log_mass = grid.log_weight + a * -np.logaddexp(0, -u) + b * -np.logaddexp(0, u)
        ref = old(mu, log_mass, weight)
        got = new(mu, log_mass, weight)
        for name, r, g in zip(NAMES, ref, got, strict=True):
            r, g = np.asarray(r), np.asarray(g)
            assert np.isfinite(r).all()
            scale = max(1.0, float(np.abs(r).max()))
            assert np.abs(g - r).max() <= 1e-10 * scale, name


@pytest.mark.parametrize("n_pairs", [12, 80])
def test_model_takes_the_op_the_rule_picks(n_pairs):
    """The model's potential goes through the fused Op exactly when ``fused_pays`` says so."""
    from pytensor.graph.traversal import ancestors

    from attnmodel.model.ops import MarginalVotes, MarginalVotesMu

    rng = np.random.default_rng(n_pairs)
    eta = rng.beta(4.0, 1.5, 40)
    n = rng.integers(0, 60, size=(40, n_pairs))
    s = rng.binomial(n, 0.5 + eta[:, None] * 0.3)
    attn = am.build_model(am.VoteData.from_counts(n, s), "beta")
    ops = {type(v.owner.op) for v in ancestors(attn.model.potentials) if v.owner is not None}
    fused = kernels.fused_pays(attn.counts, attn.grid.size)
    assert fused == (n_pairs * attn.grid.size >= kernels.FUSED_MIN_CELLS)
    assert (MarginalVotesMu in ops) == fused
    assert (MarginalVotes in ops) == (not fused)
