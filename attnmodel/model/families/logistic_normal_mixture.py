"""Mixtures of K logistic-normal distributions (normal mixtures of ``logit(eta)``)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from attnmodel.model.families.base import (
    MixtureFamily,
    weighted_quantile,
    weights_bounds,
    weights_from_vector,
    weights_to_vector,
)
from attnmodel.model.grid import LogitGrid

__all__ = ["LOGIT_MEAN_MAX", "LOGIT_SD_MAX", "LogisticNormalMixture", "logit_sd_min"]


def logit_sd_min(grid: LogitGrid | None) -> float:
    """Smallest logistic-normal scale: two central grid spacings."""
    h = 0.1 if grid is None else grid.spacing
    return 2.0 * h


#: Upper bound of a logistic-normal component's logit scale.
LOGIT_SD_MAX = float(np.exp(5.0))
#: Bound of a logistic-normal component's logit mean (beyond the grid's reach).
LOGIT_MEAN_MAX = 50.0


class LogisticNormalMixture(MixtureFamily):
    """``logit(eta) ~ sum_k weights[k] * Normal(logit_mean[k], logit_sd[k])``."""

    name = "logistic_normal_mixture"
    component_params = ("logit_mean", "logit_sd")
    positive_params = ("logit_sd",)

    def component_log_density_logit(self, u, params):
        with np.errstate(divide="ignore"):
            logw = np.log(params["weights"])
        return logw + stats.norm.logpdf(u, params["logit_mean"], params["logit_sd"])

    def cdf(self, eta, params):
        eta = np.asarray(eta, dtype=np.float64)
        with np.errstate(divide="ignore"):
            u = special.logit(eta)[..., None]
        return np.sum(
            params["weights"] * stats.norm.cdf(u, params["logit_mean"], params["logit_sd"]), axis=-1
        )

    def sample(self, params, size, rng):
        k = rng.choice(self.n_components, size=size, p=params["weights"])
        return special.expit(rng.normal(params["logit_mean"][k], params["logit_sd"][k]))

    def mean(self, params):
        # No closed form: Gauss-Hermite per component is exact to ~1e-12 here.
        x, w = np.polynomial.hermite_e.hermegauss(80)
        vals = special.expit(params["logit_mean"][:, None] + params["logit_sd"][:, None] * x)
        return float(np.dot(params["weights"], vals @ w / np.sqrt(2 * np.pi)))

    def m_step(self, grid, weight, params):
        r = self.responsibilities(grid.u, params)
        wk = weight[:, None] * r
        tot = wk.sum(axis=0)
        safe = np.maximum(tot, 1e-300)
        m = (wk * grid.u[:, None]).sum(axis=0) / safe
        v = (wk * (grid.u[:, None] - m) ** 2).sum(axis=0) / safe
        # The weighted log-likelihood is unimodal in the variance, so clipping
        # at the floor is the constrained maximiser.
        sd = np.maximum(np.sqrt(v), logit_sd_min(grid))
        empty = tot <= 0
        m = np.where(empty, params["logit_mean"], m)
        sd = np.where(empty, params["logit_sd"], sd)
        out = {"weights": tot / tot.sum(), "logit_mean": m, "logit_sd": sd}
        return self.sort_components(out, m)

    def init_params(self, eta_hat, weight, rng, start):
        k = self.n_components
        u = special.logit(np.clip(eta_hat, 0.02, 0.98))
        if start == 0:
            m = weighted_quantile(u, weight, (np.arange(k) + 0.5) / k) + np.linspace(-0.01, 0.01, k)
            sd = (
                np.full(k, max(np.sqrt(np.cov(u, aweights=weight)) / k, 0.3))
                if u.size > 1
                else np.full(k, 1.0)
            )
            w = np.full(k, 1.0 / k)
        else:
            m = np.sort(rng.uniform(-3.0, 3.0, size=k))
            sd = np.exp(rng.uniform(np.log(0.3), np.log(1.5), size=k))
            w = rng.dirichlet(np.full(k, 2.0))
        return self.sort_components({"weights": w, "logit_mean": m, "logit_sd": sd}, m)

    def to_vector(self, params):
        return np.concatenate(
            [
                weights_to_vector(params["weights"]),
                params["logit_mean"],
                np.log(params["logit_sd"]),
            ]
        )

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = weights_from_vector(vec[: k - 1])
        # Means beyond the grid's reach and scales beyond e^5 describe nothing new.
        m_lo, m_hi = self.box(grid)["logit_mean"]
        m = np.clip(np.asarray(vec[k - 1 : 2 * k - 1], float), m_lo, m_hi)
        sd_lo, sd_hi = self.box(grid)["logit_sd"]
        sd = np.clip(np.exp(np.clip(vec[2 * k - 1 :], -30.0, np.log(sd_hi))), sd_lo, None)
        return self.sort_components({"weights": w, "logit_mean": m, "logit_sd": sd}, m)

    def box(self, grid=None):
        return {
            "logit_mean": (-LOGIT_MEAN_MAX, LOGIT_MEAN_MAX),
            "logit_sd": (logit_sd_min(grid), LOGIT_SD_MAX),
        }

    def vector_bounds(self, grid=None):
        k = self.n_components
        w_lo, w_hi = weights_bounds(k)
        (m_lo, m_hi), (sd_lo, sd_hi) = self.box(grid)["logit_mean"], self.box(grid)["logit_sd"]
        return (
            np.concatenate([w_lo, np.full(k, m_lo), np.full(k, np.log(sd_lo))]),
            np.concatenate([w_hi, np.full(k, m_hi), np.full(k, np.log(sd_hi))]),
        )

    # -- the PyMC model ----------------------------------------------------
    ordered_params = ("logit_mean",)

    def pymc_initval(self, name, lo, hi):
        k = self.n_components
        if name == "logit_sd":
            return {"initval": np.full(k, np.clip(1.0, lo, hi))}
        if name == "logit_mean":
            return {"initval": np.linspace(-2.0, 2.0, k)}
        return super().pymc_initval(name, lo, hi)

    def pymc_component_log_density_logit(self, params, u):
        import pytensor.tensor as pt

        m = params["logit_mean"][:, None]
        s = params["logit_sd"][:, None]
        return -0.5 * ((u[None, :] - m) / s) ** 2 - pt.log(s) - 0.5 * np.log(2 * np.pi)

    def pymc_latent_eta(self, params):
        import pymc as pm

        x = pm.NormalMixture(
            "eta_logit",
            w=params["weights"],
            mu=params["logit_mean"],
            sigma=params["logit_sd"],
            dims="user",
        )
        return pm.Deterministic("eta", pm.math.sigmoid(x), dims="user")
