"""Free coordinates for increasing points in an interval, as NUTS moves them.

The atoms of a discrete ``P_eta`` are increasing points in ``(lo, hi)``.
:class:`OrderedInterval` maps free coordinates ``z`` (K,) to them from the top
down::

    r_k = sigmoid(z_k),    eta_k = lo + (hi - lo) * r_k * r_{k+1} * ... * r_K

so the top point is ``r_K`` of the way up and each point below sits at a
fraction ``r_k`` of the one above it (measured from ``lo``). Under a flat
prior on the increasing points the ``r_k`` are independent, ``Beta(k, 1)``
(the order statistics of K uniform draws), and no coordinate's scale depends
on another's.

PyMC's ordered transform on top of the interval's logits does not have that
property: the top point's coordinate is ``log(logit(eta_K) - logit(eta_1))``,
whose scale shrinks as the lowest point nears ``lo`` (a step of it moves the
top point by ``logit(eta_K) - logit(eta_1)`` in logit). A step size tuned in
the posterior's bulk is then too long there, and chains that reach the lowest
point near ``lo`` (careless users near ``eta = 0``) stall with acceptance
near 0 for hundreds of draws.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

__all__ = ["OrderedInterval"]


def _log_cumulative(log_r):
    """``log(r_k * ... * r_K)`` for every ``k`` (sums from the top down)."""
    return pt.cumsum(log_r[..., ::-1], axis=-1)[..., ::-1]


class OrderedInterval(Transform):
    """Increasing points in ``(lo, hi)`` from unconstrained coordinates (see the module)."""

    name = "ordered_interval"
    ndim_supp = 1

    def __init__(self, lo: float, hi: float) -> None:
        if not np.isfinite(lo) or not np.isfinite(hi) or not lo < hi:
            raise ValueError(f"OrderedInterval needs finite bounds lo < hi, got ({lo}, {hi})")
        self.lo = float(lo)
        self.hi = float(hi)

    def backward(self, value, *inputs):
        log_c = _log_cumulative(-pt.softplus(-value))
        return self.lo + (self.hi - self.lo) * pt.exp(log_c)

    def forward(self, value, *inputs):
        log_c = pt.log((value - self.lo) / (self.hi - self.lo))
        log_r = pt.concatenate([log_c[..., :-1] - log_c[..., 1:], log_c[..., -1:]], axis=-1)
        return log_r - pt.log1mexp(log_r)

    def log_jac_det(self, value, *inputs):
        # d eta_k / d z_i is zero for i < k: the Jacobian is triangular, and its
        # diagonal is (hi - lo) * c_k * (1 - r_k).
        log_c = _log_cumulative(-pt.softplus(-value))
        log_1mr = -pt.softplus(value)
        k = value.shape[-1]
        return k * np.log(self.hi - self.lo) + pt.sum(log_c + log_1mr, axis=-1)
