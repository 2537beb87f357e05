"""The marginal PyMC model with ties as evidence (see :mod:`attnmodel.model.ties`).

The log density is the one MAP-EM maximises with ties modelled: per distinct
count row, the log-sum-exp over the ``eta`` grid of the prior mass, the
direction part at ``eta' = eta / c(eta)`` and the tie factor of the row's
``(m, T)``, the sum over ``k`` of :class:`~attnmodel.model.ties.TieTerm`
written in PyTensor (padded to the largest ``T`` per key), so NUTS
differentiates it by PyTensor's own gradients. The priors of ``kappa``,
``tau_mean`` and ``tau_conc`` are :data:`~attnmodel.model.ties.TIE_PRIORS`.
Like EM's objective, the likelihood leaves out the multinomial coefficients.
The graph holds (rows x nodes) and (keys x largest T x nodes) tensors: meant
for logs of moderate size.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

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
    # Dense (rows, pairs) counts: the direction part of every row at every node.
    s_rows = np.zeros((counts.n_rows, counts.n_pairs))
    f_rows = np.zeros((counts.n_rows, counts.n_pairs))
    s_rows[counts.entry_row, counts.entry_pair] = counts.entry_s
    f_rows[counts.entry_row, counts.entry_pair] = counts.entry_n - counts.entry_s
    direction = pt.dot(s_rows, log_g) + pt.dot(f_rows, log_1mg)

    m_r, t_r = counts.row_totals()
    term = TieTerm(m_r, t_r)
    width = int(term.T.max()) + 1
    k = np.arange(width)[None, :]
    valid = k <= term.T[:, None]
    kk = np.where(valid, k, 0).astype(float)
    t_d = term.T[:, None].astype(float)
    m_d = term.m[:, None].astype(float)
    from scipy.special import gammaln

    log_binom = np.where(
        valid, gammaln(t_d + 1) - gammaln(kk + 1) - gammaln(np.maximum(t_d - kk, 0) + 1), 0.0
    )
    base = log_binom + _betaln(a + kk, b + m_d) - _betaln(a, b)
    log_c = pt.log(c)
    log_1mc = pt.log(om) + pt.log(kappa)
    terms = (
        base[:, :, None]
        + (kk + m_d)[:, :, None] * log_c[None, None, :]
        + (t_d - kk)[:, :, None] * log_1mc[None, None, :]
    )
    terms = pt.switch(valid[:, :, None], terms, -np.inf)
    tie = pt.logsumexp(terms, axis=1)  # (keys, nodes)

    log_mass = grid.log_weight + fam.pymc_log_density_logit(params, grid.u)
    rows = direction + log_mass[None, :] + tie[term.row_key]
    weight = pm.Data("row_weight", counts.row_weight.astype(np.float64))
    pm.Potential("votes", pt.dot(weight, pt.logsumexp(rows, axis=1)))
