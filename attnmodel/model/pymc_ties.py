"""The marginal PyMC model with ties as evidence (see :mod:`attnmodel.model.ties`).

The log density is the one MAP-EM maximises with ties modelled: per distinct
count row, the log-sum-exp over the ``eta`` grid of the prior mass, the
direction part at ``eta' = eta / c(eta)`` and the tie factor of the row's
``(m, T)`` (the sum over ``k`` of :class:`~attnmodel.model.ties.TieTerm`).
One compiled kernel (:class:`~attnmodel.model.ops.MarginalVotesTies`: the tie
factors by :func:`~attnmodel.model.ties.tie_pass`, then the E-step with one
log mass per key) returns the sum over rows and its gradient, so the graph
around it holds only (pairs x nodes) and per-term tensors. The priors of ``kappa``,
``tau_mean`` and ``tau_conc`` are :data:`~attnmodel.model.ties.TIE_PRIORS`.
Like EM's objective, the likelihood leaves out the multinomial coefficients.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from attnmodel.model.ops import marginal_votes_ties
from attnmodel.model.ties import TIE_PRIORS, TieTerm

__all__ = ["TIE_NAMES", "tie_potential"]

#: Names of the tie parameters in the PyMC model.
TIE_NAMES = ("kappa", "tau_mean", "tau_conc")


def _betaln(a, b):
    return pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)


def tie_potential(fam, params, mu_t, counts, grid) -> None:
    """Add the tie priors and the marginal vote likelihood with ties, as a Potential."""
    kappa = pm.Beta("kappa", *TIE_PRIORS["kappa"][1])
    tau_mean = pm.Beta("tau_mean", *TIE_PRIORS["tau_mean"][1])
    loc, scale = TIE_PRIORS["tau_conc"][1]
    tau_conc = pm.LogNormal("tau_conc", mu=loc, sigma=scale)
    a = tau_mean * tau_conc
    b = (1.0 - tau_mean) * tau_conc

    eta = pt.as_tensor_variable(grid.eta)
    om = pt.as_tensor_variable(grid.one_minus_eta)
    c = 1.0 - om * kappa
    d_eta, d_om = eta / c, om * (1.0 - kappa) / c
    m = mu_t[:, None]
    log_g = pt.log(0.5 * d_om[None, :] + d_eta[None, :] * m)
    log_1mg = pt.log(0.5 * d_om[None, :] + d_eta[None, :] * (1.0 - m))

    term = TieTerm(*counts.row_totals())
    layout = term.terms()
    base = layout["log_binom"] + _betaln(a + layout["k"], b + layout["m"]) - _betaln(a, b)
    log_c = pt.log(c)
    log_1mc = pt.log(om) + pt.log(kappa)

    log_mass = grid.log_weight + fam.pymc_log_density_logit(params, grid.u)
    weight = pm.Data("row_weight", counts.row_weight.astype(np.float64))
    total = marginal_votes_ties(
        counts, term, weight, log_g, log_1mg, log_mass, base, log_c, log_1mc
    )
    pm.Potential("votes", total)
