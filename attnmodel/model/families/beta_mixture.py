"""Mixtures of K Beta distributions."""

from __future__ import annotations

import numpy as np
from scipy import stats

from attnmodel.model.families.base import (
    MixtureFamily,
    weighted_quantile,
    weights_bounds,
    weights_from_vector,
    weights_to_vector,
)
from attnmodel.model.families.beta import (
    BETA_SHAPE_MIN,
    beta_box,
    beta_log_density_logit,
    beta_mle,
    beta_moments,
    beta_shape_max,
    pymc_beta_log_density_logit,
)

__all__ = ["BetaMixture"]


class BetaMixture(MixtureFamily):
    """``P_eta = sum_k weights[k] * Beta(alpha[k], beta[k])``."""

    name = "beta_mixture"
    mean_concentration = ("alpha", "beta")
    component_params = ("alpha", "beta")
    positive_params = ("alpha", "beta")

    def component_log_density_logit(self, u, params):
        with np.errstate(divide="ignore"):
            logw = np.log(params["weights"])
        return logw + beta_log_density_logit(u, params["alpha"], params["beta"])

    def cdf(self, eta, params):
        eta = np.asarray(eta, dtype=np.float64)[..., None]
        return np.sum(
            params["weights"] * stats.beta.cdf(eta, params["alpha"], params["beta"]), axis=-1
        )

    def sample(self, params, size, rng):
        k = rng.choice(self.n_components, size=size, p=params["weights"])
        return rng.beta(params["alpha"][k], params["beta"][k])

    def mean(self, params):
        return float(
            np.dot(params["weights"], params["alpha"] / (params["alpha"] + params["beta"]))
        )

    def m_step(self, grid, weight, params):
        r = self.responsibilities(grid.u, params)
        wk = weight[:, None] * r
        tot = wk.sum(axis=0)
        new_w = tot / tot.sum()
        alpha = np.array(params["alpha"], float)
        beta = np.array(params["beta"], float)
        hi = beta_shape_max(grid)
        for k in range(self.n_components):
            if tot[k] <= 0:
                continue
            t1 = float(np.dot(wk[:, k], grid.log_eta) / tot[k])
            t2 = float(np.dot(wk[:, k], grid.log_one_minus_eta) / tot[k])
            alpha[k], beta[k] = beta_mle(t1, t2, alpha[k], beta[k], BETA_SHAPE_MIN, hi)
        out = {"weights": new_w, "alpha": alpha, "beta": beta}
        return self.sort_components(out, alpha / (alpha + beta))

    def init_params(self, eta_hat, weight, rng, start):
        k = self.n_components
        if start == 0:
            edges = weighted_quantile(eta_hat, weight, np.linspace(0, 1, k + 1)[1:-1])
            group = np.searchsorted(edges, eta_hat, side="right")
            a, b, w = np.empty(k), np.empty(k), np.empty(k)
            for c in range(k):
                sel = group == c
                if sel.sum() < 2:
                    sel = np.ones_like(sel)
                a[c], b[c] = beta_moments(eta_hat[sel], weight[sel])
                w[c] = max(weight[group == c].sum(), 1e-3)
            w = w / w.sum()
        else:
            m = np.sort(rng.uniform(0.05, 0.95, size=k))
            c = np.exp(rng.uniform(np.log(3.0), np.log(30.0), size=k))
            a, b = m * c, (1 - m) * c
            w = rng.dirichlet(np.full(k, 2.0))
        lo, hi = BETA_SHAPE_MIN, beta_shape_max(None)
        out = {"weights": w, "alpha": np.clip(a, lo, hi), "beta": np.clip(b, lo, hi)}
        return self.sort_components(out, out["alpha"] / (out["alpha"] + out["beta"]))

    def to_vector(self, params):
        return np.concatenate(
            [weights_to_vector(params["weights"]), np.log(params["alpha"]), np.log(params["beta"])]
        )

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = weights_from_vector(vec[: k - 1])
        lo, hi = BETA_SHAPE_MIN, beta_shape_max(grid)
        a = np.clip(np.exp(np.clip(vec[k - 1 : 2 * k - 1], -30.0, 30.0)), lo, hi)
        b = np.clip(np.exp(np.clip(vec[2 * k - 1 :], -30.0, 30.0)), lo, hi)
        return self.sort_components({"weights": w, "alpha": a, "beta": b}, a / (a + b))

    def box(self, grid=None):
        return beta_box(grid)

    def vector_bounds(self, grid=None):
        k = self.n_components
        lo, hi = np.log(self.box(grid)["alpha"])
        w_lo, w_hi = weights_bounds(k)
        return (
            np.concatenate([w_lo, np.full(2 * k, lo)]),
            np.concatenate([w_hi, np.full(2 * k, hi)]),
        )

    # -- the PyMC model ----------------------------------------------------
    ordered_params = ("alpha",)

    def pymc_initval(self, name, lo, hi):
        if name in ("alpha", "beta"):
            return {"initval": np.clip(np.geomspace(1.0, 10.0, self.n_components), lo, hi)}
        return super().pymc_initval(name, lo, hi)

    def pymc_component_log_density_logit(self, params, u):
        a = params["alpha"][:, None]
        b = params["beta"][:, None]
        return pymc_beta_log_density_logit(u[None, :], a, b)

    def pymc_latent_eta(self, params):
        import pymc as pm

        comps = [
            pm.Beta.dist(alpha=params["alpha"][k], beta=params["beta"][k])
            for k in range(self.n_components)
        ]
        return pm.Mixture("eta", w=params["weights"], comp_dists=comps, dims="user")
