"""The K-point family: ``P_eta`` on K atoms with free weights and locations."""

from __future__ import annotations

import numpy as np

from attnmodel.model.families.base import DiscreteFamily

__all__ = ["KPoint"]


class KPoint(DiscreteFamily):
    """``P_eta = sum_k weights[k] * delta(locations[k])``."""

    name = "k_point"

    default_components = 3

    @property
    def param_dims(self):
        return {"weights": ("component",), "locations": ("component",)}

    def box(self, grid=None):
        return {"locations": self.location_range}

    def components(self, params):
        return np.asarray(params["weights"], float), np.asarray(params["locations"], float)

    def from_components(self, weights, locations):
        order = np.argsort(locations, kind="stable")
        return {
            "weights": np.asarray(weights, float)[order],
            "locations": np.asarray(locations, float)[order],
        }

    # -- the PyMC model ----------------------------------------------------
    ordered_params = ("locations",)

    def identified_weights(self, w_free):
        import pytensor.tensor as pt
        from pymc.distributions import transforms

        # Stick-breaking free coordinates for the weights.
        w = transforms.simplex.backward(w_free)
        logw = pt.log(w)
        return logw, transforms.simplex.log_jac_det(w_free), {"weights": pt.exp(logw)}

    def identified_weights_head(self, weights):
        import pytensor.tensor as pt
        from pymc.distributions import transforms

        return list(transforms.simplex.forward(pt.as_tensor(weights)).eval())

    def atom_params(self, locations):
        return {"locations": locations}
