"""Fits the data cannot support: estimates at a bound of the admissible box, data too thin.

:func:`fit_warnings` lists, in words, why a fit may be degenerate; the result
tree stores the list (root attribute ``fit_warnings``,
:func:`attnmodel.results.tree.build_tree`), the fitting functions warn with
:class:`~attnmodel.errors.BoundaryWarning`, and ``summary`` shows it.

An estimate is *at a bound* when it lies within :data:`BOUND_TOLERANCE` (1%)
of the width of its range in :meth:`Family.box
<attnmodel.model.families.base.Family.box>` from the bound; a range on the
positive numbers that spans more than a factor of ten (Beta shapes, logistic
scales) is measured on the log scale, where its optimisers work. Mixture
weights are not bounded parameters here (a weight of 0 only means an unused
component).

The data cannot inform the family when there are fewer than
:data:`USERS_PER_PARAMETER` users per free family parameter, when no user
gave more than one vote (one vote cannot tell an attentive user from a coin),
or when every vote went the same way (no variation to read attentiveness
from).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BOUND_TOLERANCE", "USERS_PER_PARAMETER", "fit_warnings"]

#: Distance from a bound, as a fraction of the range, that counts as "at the bound".
BOUND_TOLERANCE = 0.01
#: Fewest users per free family parameter before a fit is called informed.
USERS_PER_PARAMETER = 5


def _at_bound(value: float, lo: float, hi: float) -> str | None:
    """``"lower"``/``"upper"`` when ``value`` is within the tolerance of a bound, else None."""
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo and np.isfinite(value)):
        return None
    if lo > 0 and hi / lo > 10 and value > 0:
        value, lo, hi = np.log(value), np.log(lo), np.log(hi)
    tol = BOUND_TOLERANCE * (hi - lo)
    if value - lo <= tol:
        return "lower"
    if hi - value <= tol:
        return "upper"
    return None


def fit_warnings(family, params: dict[str, Any], counts, grid=None) -> list[str]:
    """Why a fit may be degenerate, one sentence each (empty when nothing is wrong).

    Parameters
    ----------
    family : Family
    params : dict
        The estimate (EM) or posterior mean (NUTS) of each family parameter.
    counts : CountTable
        The fitted counts.
    grid : LogitGrid, optional
        The quadrature of the fit (it sets the box of continuous families).

    Returns
    -------
    list of str
    """
    notes = []
    for name, (lo, hi) in family.box(grid).items():
        values = np.atleast_1d(np.asarray(params.get(name, np.nan), dtype=np.float64))
        for k, value in enumerate(values):
            side = _at_bound(float(value), float(lo), float(hi))
            if side is None:
                continue
            label = name if values.size == 1 else f"{name}[{k}]"
            bound = lo if side == "lower" else hi
            notes.append(
                f"{label} = {value:.4g} is at the {side} bound {bound:.4g} of its admissible "
                f"range [{lo:.4g}, {hi:.4g}]: the data do not pin it down"
            )
    n_free = int(np.size(family.to_vector(params)))
    m = int(counts.n_users)
    if m < USERS_PER_PARAMETER * n_free:
        notes.append(
            f"only {m} user(s) for {n_free} free parameter(s) of {family.name}: too few to "
            f"estimate P_eta (at least {USERS_PER_PARAMETER * n_free} wanted)"
        )
    if m and int(counts.votes_per_row().max()) < 2:
        notes.append(
            "no user gave more than one vote: one vote cannot tell an attentive user "
            "from a random one"
        )
    n, s = counts.entry_n, counts.entry_s
    if n.size and (np.all(s == n) or np.all(s == 0)):
        side = "stronger" if np.all(s == n) else "weaker"
        notes.append(
            f"every vote went to the {side} model of its pair: the votes show no variation "
            "to estimate attentiveness from"
        )
    return notes
