"""The two-point family: casual users at one attentiveness, attentive ones at another."""

from __future__ import annotations

import numpy as np
from scipy import special

from attnmodel.model.families.base import DiscreteFamily

__all__ = ["TwoPoint"]


class TwoPoint(DiscreteFamily):
    """``P_eta = q_low * delta(eta_low) + (1 - q_low) * delta(eta_high)``.

    Casual users sit at ``eta_low``, attentive ones at ``eta_high``.
    """

    name = "two_point"
    default_components = 2
    more_components = "k_point"

    @property
    def param_dims(self):
        return {"q_low": (), "eta_low": (), "eta_high": ()}

    def box(self, grid=None):
        loc = self.location_range
        return {"q_low": (0.0, 1.0), "eta_low": loc, "eta_high": loc}

    def log_prior(self, params, priors, grid=None):
        # The PyMC model draws the two locations as one ordered pair, flat on the
        # location range (their priors must be Uniform), whatever the bounds given.
        from attnmodel.model.priors import Prior

        lo, hi = self.location_range
        flat = Prior("Uniform", lower=lo, upper=hi)
        locations = [params["eta_low"], params["eta_high"]]
        return float(
            np.sum(priors["q_low"].logpdf(params["q_low"], *self.box(grid)["q_low"]))
            + np.sum(flat.logpdf(locations))
        )

    def components(self, params):
        q = float(params["q_low"])
        return (
            np.array([q, 1.0 - q]),
            np.array([float(params["eta_low"]), float(params["eta_high"])]),
        )

    def from_components(self, weights, locations):
        order = np.argsort(locations, kind="stable")
        w = np.asarray(weights, float)[order]
        loc = np.asarray(locations, float)[order]
        return {"q_low": float(w[0] / w.sum()), "eta_low": float(loc[0]), "eta_high": float(loc[1])}

    def _check_ranges(self, params):
        if not 0 <= params["q_low"] <= 1:
            raise ValueError(f"two_point q_low must be in [0, 1], got {params['q_low']}")
        super()._check_ranges(params)

    # -- the PyMC model ----------------------------------------------------
    def pymc_params(self, grid, priors):
        import pymc as pm

        out = {"q_low": self.pymc_param("q_low", priors["q_low"], grid)}
        for p in (priors["eta_low"], priors["eta_high"]):
            if p.dist != "Uniform":
                raise ValueError(
                    "two_point locations take Uniform priors (they are ordered: "
                    "eta_low < eta_high); give other shapes through the k_point family"
                )
        lo, hi = self.location_range
        locs = pm.Uniform(
            "_locations",
            lower=lo,
            upper=hi,
            shape=2,
            **self.ordered_transform(lo, hi),
            initval=np.array([0.3, 0.8]),
        )
        out["eta_low"] = pm.Deterministic("eta_low", locs[0])
        out["eta_high"] = pm.Deterministic("eta_high", locs[1])
        return out

    def pymc_atoms(self, params):
        import pytensor.tensor as pt

        q = params["q_low"]
        logw = pt.stack([pt.log(q), pt.log1p(-q)])
        return logw, pt.stack([params["eta_low"], params["eta_high"]])

    def identified_weights(self, w_free):
        import pymc as pm
        import pytensor.tensor as pt

        q = pm.math.sigmoid(w_free[0])
        logw = pt.stack([pt.log(q), pt.log1p(-q)])
        return logw, pt.log(q * (1.0 - q)), {"q_low": q}

    def identified_weights_head(self, weights):
        return [special.logit(weights[0])]

    def atom_params(self, locations):
        return {"eta_low": locations[0], "eta_high": locations[1]}
