"""Elementwise helpers for coordinates that work on numpy arrays and PyTensor tensors alike.

The identified reparameterisation (:mod:`attnmodel.model.identified`) and the
families' parts of it use these, so that one formula serves the numpy side
(starting points) and the PyTensor side (the model's graph). PyTensor is
imported only when a tensor is asked for.
"""

from __future__ import annotations

import numpy as np

__all__ = ["array_ops", "log_sigmoid_slope", "logit_interval"]


def logit_interval(lo, hi, z):
    """``lo + (hi - lo) * sigmoid(z)`` (PyTensor): a free coordinate mapped into ``(lo, hi)``."""
    import pytensor.tensor as pt

    return lo + (hi - lo) * pt.sigmoid(z)


def log_sigmoid_slope(z):
    """``log(sigmoid(z) (1 - sigmoid(z)))`` (PyTensor), the log slope of :func:`logit_interval`.

    Written with softplus so that it stays finite far out in either tail.
    """
    import pytensor.tensor as pt

    return -pt.softplus(z) - pt.softplus(-z)


def array_ops(xp):
    """(maximum, minimum, where, sqrt) for numpy or PyTensor."""
    if xp is np:
        return np.maximum, np.minimum, np.where, np.sqrt
    import pytensor.tensor as pt

    return pt.maximum, pt.minimum, pt.switch, pt.sqrt
