"""Each user's attentiveness given the global parameters: moments, tail mass, draws.

Given ``P_eta`` and ``mu``, user ``j``'s conditional ``p(eta | votes_j)`` is known
up to quadrature: node masses on the logit grid (continuous families) or
membership probabilities of the atoms (discrete families), per distinct count
row (see :meth:`attnmodel.em.EMProblem.e_step`). This module turns those masses
into what NUTS post-processing and EM's result need, on plain arrays.

On the grid the density is treated as piecewise linear in the stretched
coordinate ``t`` (nodes equally spaced, ``u = 4 sinh(t / 4)``), which is the
trapezoid rule the masses came from; tail masses and draws are exact for that
density, so they agree with the node moments to quadrature accuracy.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from attnmodel.grid import LOGIT_STRETCH, LogitGrid

__all__ = ["GridCells", "atom_tail", "sample_atoms"]


class GridCells:
    """Piecewise-linear densities between the grid's nodes, one per row.

    Parameters
    ----------
    grid : LogitGrid
    post : ndarray, shape (R, G)
        Node masses per row (each row sums to 1).
    """

    def __init__(self, grid: LogitGrid, post: np.ndarray) -> None:
        self.grid = grid
        t = LOGIT_STRETCH * np.arcsinh(grid.u / LOGIT_STRETCH)
        self.t = t
        self.h = float(t[1] - t[0])
        omega = np.ones(t.size)
        omega[[0, -1]] = 0.5  # trapezoid end weights
        q = post / omega  # density in t at the nodes, times h
        # Within a cell the log density is linear in t: the mass is the logarithmic mean.
        qa, qb = q[:, :-1], q[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.log(qb) - np.log(qa)
            cells = np.where(np.abs(kappa) > 1e-8, (qb - qa) / kappa, 0.5 * (qa + qb))
        cells = np.where(np.isfinite(cells), cells, 0.0)
        total = cells.sum(axis=1, keepdims=True)
        self.q = q / total
        self.cells = cells / total
        self.cum = np.cumsum(self.cells, axis=1)

    def _locate(self, eta_star: float) -> tuple[int, float]:
        t_star = LOGIT_STRETCH * np.arcsinh(special.logit(eta_star) / LOGIT_STRETCH)
        i = int(np.clip(np.floor((t_star - self.t[0]) / self.h), 0, self.t.size - 2))
        return i, float(np.clip((t_star - self.t[i]) / self.h, 0.0, 1.0))

    def tail(self, eta_star: float) -> np.ndarray:
        """``P(eta >= eta_star)`` per row, shape (R,)."""
        if eta_star <= 0.0:
            return np.ones(self.q.shape[0])
        if eta_star >= 1.0:
            return np.zeros(self.q.shape[0])
        i, x = self._locate(eta_star)
        below = self.cum[:, i - 1] if i > 0 else 0.0
        partial = self._partial(self.q[:, i], self.q[:, i + 1], np.full(self.q.shape[0], x))
        return np.clip(1.0 - below - partial, 0.0, 1.0)

    @staticmethod
    def _partial(qa, qb, x):
        """Mass from a cell's start to ``x`` (fraction of the cell) under log-linear density."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            kappa = np.log(qb) - np.log(qa)
            exact = qa * np.expm1(kappa * x) / kappa
        small = ~np.isfinite(exact) | (np.abs(kappa) <= 1e-8)
        return np.where(small, x * (qa + 0.5 * (qb - qa) * x), exact)

    def sample(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw of ``eta`` for each entry of ``rows`` (row indices), shape like ``rows``."""
        rows = np.asarray(rows)
        n_rows, n_cells = self.cells.shape
        # Offsetting row r's CDF by r makes all rows one increasing array.
        flat = (self.cum + np.arange(n_rows)[:, None]).ravel()
        v = rng.random(rows.shape) * self.cum[rows, -1]
        pos = np.searchsorted(flat, rows + v, side="right")
        cell = np.clip(pos - rows * n_cells, 0, n_cells - 1)
        before = np.where(cell > 0, self.cum[rows, np.maximum(cell - 1, 0)], 0.0)
        mass = self.cells[rows, cell]
        target = np.clip(v - before, 0.0, None)
        qa, qb = self.q[rows, cell], self.q[rows, cell + 1]
        # Invert qa (exp(kappa y) - 1) / kappa = target within the cell, y in [0, 1].
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            kappa = np.log(qb) - np.log(qa)
            y = np.log1p(kappa * target / qa) / kappa
            flat_cell = target / qa
        y = np.where(np.isfinite(y) & (np.abs(kappa) > 1e-8), y, flat_cell)
        y = np.where(mass > 0, np.clip(y, 0.0, 1.0), 0.5)
        t = self.t[cell] + y * self.h
        return special.expit(LOGIT_STRETCH * np.sinh(t / LOGIT_STRETCH))


def atom_tail(membership: np.ndarray, locations: np.ndarray, eta_star: float) -> np.ndarray:
    """``P(eta >= eta_star)`` per row for a discrete family, shape (R,)."""
    return membership[:, locations >= eta_star].sum(axis=1)


def sample_atoms(
    membership: np.ndarray, locations: np.ndarray, rows: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One atom per entry of ``rows``, drawn by membership probability."""
    cum = np.cumsum(membership, axis=1)
    u = rng.random(np.shape(rows)) * cum[rows, -1]
    k = (cum[rows] < u[..., None]).sum(axis=-1)
    return locations[np.minimum(k, locations.size - 1)]
