"""MAP-EM for the attentiveness model (Algorithm 1 with ``R = log prior``).

The objective is the log posterior up to a constant,

    L(theta) = sum_j log integral prod_k g_k(eta)^s_jk (1 - g_k(eta))^(n_jk - s_jk) dP_eta(eta)
               + sum_{k: mu_k unknown} log p(mu_k),

with ``g_k(eta) = 1/2 + eta (mu_k - 1/2)``, summed over distinct count rows
weighted by the number of users that share each row. EM never decreases it.
Under a structure on ``mu`` (:mod:`attnmodel.model.mu_structure`) the prior
term is the structure's: the population density of the unknown pairs plus the
hyperprior (``"pooled"``, with an M-step for the hyperparameters), or the
prior of the model strengths from which every ``mu`` follows
(``"bradley_terry"``, whose M-step moves the strengths).

With ties modelled (counts that carry ties, ``ties="model"``; see
:mod:`attnmodel.model.ties`) each row's likelihood at a node is the tie-free
one at the transformed attentiveness ``eta' = eta / c(eta)`` times the tie
factor of the row's ``(m, T)``, integrated over the tie propensity ``tau``
exactly. The M-step then also raises ``Q`` in the tie parameters
``(kappa, tau_mean, tau_conc)``, taking the tie propensity ``tau`` and the
split of the ties (:class:`attnmodel.model.ties.TieStats`) as missing data
beside ``eta``: the E-step's posterior then enters through a few sums per
node, so that update costs O(pairs x nodes) per evaluation whatever the
number of users (L-BFGS with the exact gradient, kept only when it does not
drop). Their prior (:data:`attnmodel.model.ties.TIE_PRIORS`) joins the objective.

The loop is split BlackJAX-style into a pure :func:`em_step` and a driver
(:func:`fit_em`) that keeps the history. The driver accelerates EM with
SQUAREM (Varadhan and Roland, 2008), taking an extrapolated point only when
it does not lower ``L``; every recorded iterate therefore has an objective at
least as large as the one before it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, special

from attnmodel.data.counts import CountTable, pair_totals
from attnmodel.data.votes import require_vote_data
from attnmodel.errors import BoundaryWarning, ConvergenceWarning
from attnmodel.model.checks import fit_warnings
from attnmodel.model.families import Family, get_family
from attnmodel.model.grid import (
    LogitGrid,
    make_logit_grid,
    maximize_concave_1d,
    pair_log_probs,
    row_loglik,
)
from attnmodel.model.mu_structure import (
    BradleyTerryMu,
    IndependentMu,
    PooledMu,
    plain_bradley_terry,
    resolve_mu_structure,
    structure_warnings,
)
from attnmodel.model.priors import ModelPrior, MuSpec, resolve_mu
from attnmodel.model.ties import (
    TieParams,
    TieStats,
    TieTerm,
    direction_nodes,
    direction_q,
    tie_log_prior,
    tie_q_complete,
    tie_stats,
    tie_vector_bounds,
)
from attnmodel.model.workspace import release_work_buffer

__all__ = [
    "ConvergenceWarning",
    "EMProblem",
    "EMState",
    "EStep",
    "EMResult",
    "em_step",
    "fit_em",
    "screening_rows",
]


class EMState(NamedTuple):
    """Parameters of one EM iterate.

    Attributes
    ----------
    params : dict
        Family parameters.
    mu : ndarray, shape (P,)
        Win rate of each pair (known ones included).
    mu_hyper : ndarray or None
        Parameters of the ``mu`` structure (:mod:`attnmodel.model.mu_structure`):
        ``[m, c]`` for ``"pooled"``, the sum-zero strengths ``theta`` (one per
        model) for ``"bradley_terry"``, None for ``"independent"``.
    ties : TieParams or None
        Tie parameters when ties are modelled (:mod:`attnmodel.model.ties`).
    """

    params: dict[str, Any]
    mu: np.ndarray
    mu_hyper: np.ndarray | None = None
    ties: Any = None


class EStep(NamedTuple):
    """Result of an E-step at one state.

    Attributes
    ----------
    objective : float
        Log posterior ``L`` (log-likelihood plus log prior of the unknown ``mu``).
    log_likelihood : float
        Marginal log-likelihood of all votes.
    log_prior : float
    row_log_marginal : ndarray, shape (R,)
        Marginal log-likelihood of each distinct count row.
    weight : ndarray, shape (G,)
        Expected number of users at each node (grid node or atom).
    s_stat, f_stat : ndarray, shape (P, G)
        Expected votes for / against each pair's stronger model at each node.
    posterior : ndarray, shape (R, G), or None
        Posterior probability of each node per row, when asked for.
    tie_weight : ndarray, shape (D, G), or None
        Ties modelled: expected users per distinct ``(m, T)`` and node.
    """

    objective: float
    log_likelihood: float
    log_prior: float
    row_log_marginal: np.ndarray
    weight: np.ndarray
    s_stat: np.ndarray
    f_stat: np.ndarray
    posterior: np.ndarray | None
    tie_weight: np.ndarray | None = None


#: Above this many (row, node) cells the compiled single-pass E-step is used.
COMPILED_ESTEP_CELLS = 200_000
#: Above this many (unknown pair, node) cells the ``mu`` M-step's derivatives are compiled.
COMPILED_MU_CELLS = 20_000
#: With more distinct count rows than this, the generated starts are screened,
#: and the best one is first run to convergence, on a fixed subsample of this
#: many rows (see ``screen_iter`` of :func:`fit_em`).
SCREEN_ROWS = 5_000
#: Seed of that subsample (it does not depend on ``seed``: the same table is
#: always screened on the same rows).
SCREEN_SEED = 20261202
#: The polish (:func:`_polish`) stops when no coordinate's gradient of ``L`` per
#: vote exceeds this (projected onto the admissible box).
POLISH_GTOL = 1e-9
#: L-BFGS runs the polish starts afresh from its best point after one that stalled
#: (see :func:`_polish`), at most this many times.
POLISH_RESTARTS = 5
#: An extrapolation (:func:`_secant_step`) goes at most this many times the path
#: since the last one further on.
SECANT_MAX_STEP = 50.0
#: On a screened table (more than :data:`SCREEN_ROWS` rows) with at most this many
#: coordinates (:meth:`EMProblem.to_vector`), the best start is finished by
#: quasi-Newton steps from a subsample's curvature (:func:`_curved_finish`); each
#: Hessian of the subsample costs twice this many E-steps on it.
CURVED_MAX_COORDS = 64
#: Users drawn by weight into that subsample (:func:`users_by_weight`), beside every
#: row of more than :data:`CURVED_HEAVY_VOTES` votes, which is always in.
CURVED_USERS = 20_000
CURVED_HEAVY_VOTES = 1_000
#: Quasi-Newton steps at most on the subsample and on every row.
CURVED_MAX_STEPS = 60
#: The ascent along the products-held profile (:class:`ProductProfile`) stops at this
#: gradient per vote, or after this many steps: it only places the start of the
#: quasi-Newton steps on every row, which then meet :data:`POLISH_GTOL`.
PROFILE_GTOL = 1e-8
PROFILE_MAX_STEPS = 40
#: ... and moves no family coordinate by more than this in a step.
PROFILE_MAX_MOVE = 1.0
#: Most Bernstein coefficients (float64 values) the profile keeps: 2e8 take 1.6 GB. A
#: table whose light rows need more takes the subsample's starts instead.
PROFILE_MAX_COEFS = 200_000_000
#: Rows of at most this many votes are the profile's light rows (their coefficients
#: kept); the others take the E-step at each of its points. More light rows cost
#: more coefficients and moments of higher degree (``(n + 1)(n + 2) / 2`` per node):
#: on the 10^8-row log's counts 128 gave a 30.3 s fit, 64 about 31.4 s and 200 31.1 s.
PROFILE_MAX_VOTES = 128
#: Above this many (rows x nodes) values the fit keeps no posterior matrix: its
#: last E-step stands, and the per-user summaries form the matrix when asked.
FINAL_POSTERIOR_CELLS = 50_000_000


class EMProblem:
    """The data, family, ``mu`` specification and quadrature of one fit.

    Parameters
    ----------
    counts : CountTable
    family : Family
    mu_spec : MuSpec
    grid : LogitGrid, optional
        Used by continuous families; built from the data when omitted.
    engine : {"auto", "numpy", "numba"}
        E-step implementation; ``"auto"`` compiles only for large tables.
    prior : attnmodel.model.priors.ModelPrior, optional
        Log prior of ``mu`` and of the family parameters (the PyMC model's
        priors, evaluated with numpy). Without it the ``mu`` priors of
        ``mu_spec`` are used and the family prior is flat.
    structure : IndependentMu, PooledMu or BradleyTerryMu, optional
        Structure on ``mu`` across pairs (:mod:`attnmodel.model.mu_structure`);
        default independent. Bradley-Terry must be bound to the data's models
        and needs every ``mu`` unknown.
    """

    def __init__(
        self,
        counts: CountTable,
        family: Family,
        mu_spec: MuSpec,
        grid: LogitGrid | None = None,
        engine: str = "auto",
        prior=None,
        structure=None,
    ) -> None:
        if engine not in ("auto", "numpy", "numba"):
            raise ValueError(f"engine must be 'auto', 'numpy' or 'numba', got {engine!r}")
        self.engine = engine
        if counts.n_pairs != len(mu_spec.pairs):
            raise ValueError("mu specification and counts disagree on the number of pairs")
        self.counts = counts
        self.family = family
        self.mu_spec = mu_spec
        self.unknown = mu_spec.unknown
        self.tie_term: TieTerm | None = None
        self._vote_q_memo: tuple | None = None
        if counts.has_ties:
            if family.discrete:
                raise ValueError(
                    f"ties='model' needs a continuous family (beta, beta_mixture, "
                    f"logistic_normal_mixture), got {family.name!r}"
                )
            m_r, t_r = counts.row_totals()
            self.tie_term = TieTerm(m_r, t_r)
            self._key_rows = sparse.csr_matrix(
                (counts.row_weight, (self.tie_term.row_key, np.arange(counts.n_rows))),
                shape=(self.tie_term.n_keys, counts.n_rows),
            )
        if family.discrete:
            self.grid = None
        else:
            # A user's posterior narrows with all of its votes, across pairs (and
            # with its ties when they are evidence).
            if grid is None:
                if counts.entry_t is None:
                    most_votes = int(counts.votes_per_row().max())
                else:
                    votes = (counts.entry_n + counts.entry_t).astype(np.float64)
                    most_votes = int(counts.row_sum(votes).max())
                grid = make_logit_grid(most_votes)
            self.grid = grid
        self._pair_entry_sums: tuple[sparse.csr_matrix, sparse.csr_matrix] | None = None
        self._cached_ll: tuple[np.ndarray, np.ndarray] | None = None
        self._poly = None
        self._strides = None
        self._row_excess = None
        self._mu_support: tuple[np.ndarray, np.ndarray] | None = None
        self.prior = prior
        self.structure = IndependentMu() if structure is None else structure
        if isinstance(self.structure, BradleyTerryMu):
            if self.unknown.size != counts.n_pairs:
                raise ValueError("mu_structure='bradley_terry' needs every mu unknown")
            if len(self.structure.pair_a) != counts.n_pairs:
                raise ValueError("the Bradley-Terry structure is not bound to these pairs")

    def on_rows(self, counts: CountTable) -> EMProblem:
        """The same model (family, ``mu``, grid, prior, structure) on other count rows."""
        problem = EMProblem(
            counts, self.family, self.mu_spec, self.grid, self.engine, structure=self.structure
        )
        problem.prior = self.prior
        return problem

    # -- prior -----------------------------------------------------------
    def log_prior(self, state: EMState) -> float:
        """Log prior of the unknown ``mu`` and, when it is not flat, of the family parameters.

        A flat family prior adds a constant, which is left out. Under a pooled
        or Bradley-Terry structure the ``mu`` term is the structure's: the
        population density of the unknown ``mu`` plus the hyperprior, or the
        prior of the strengths.
        """
        return self._rest_log_prior(state) + self._family_log_prior(state.params)

    def _family_log_prior(self, params) -> float:
        """The family parameters' part of :meth:`log_prior` (0 when flat or absent)."""
        if self.prior is None or self.prior.flat:
            return 0.0
        return self.prior.family_logp(params)

    def _rest_log_prior(self, state: EMState) -> float:
        """:meth:`log_prior` but the family parameters' part: ``mu``, its structure, the ties."""
        ties = 0.0 if self.tie_term is None else tie_log_prior(state.ties)
        structure = self.structure
        if isinstance(structure, PooledMu):
            total = structure.log_prior(state.mu[self.unknown], state.mu_hyper)
        elif isinstance(structure, BradleyTerryMu):
            total = structure.theta_logp(state.mu_hyper)
        elif self.prior is None:
            total = self.mu_spec.log_prior(state.mu)
        else:
            total = float(np.sum(self.prior.mu_logp(state.mu[self.unknown])))
        return total + ties

    @property
    def ties_modelled(self) -> bool:
        """True when the counts carry ties as evidence."""
        return self.tie_term is not None

    def direction_nodes(self, eta, one_minus_eta, state: EMState):
        """The nodes the direction part sees: ``eta'`` and ``1 - eta'`` with ties, else ``eta``."""
        if self.tie_term is None:
            return eta, one_minus_eta
        return direction_nodes(eta, one_minus_eta, state.ties.kappa)[:2]

    def tie_log_factor(self, eta, one_minus_eta, ties: TieParams) -> np.ndarray:
        """Tie factor per distinct ``(m, T)`` and node, shape (D, G)."""
        _, _, log_c, log_1mc = direction_nodes(eta, one_minus_eta, ties.kappa)
        return self.tie_term.log_factor(log_c[None, :], log_1mc[None, :], ties.a, ties.b)

    def key_log_mass(self, eta, one_minus_eta, log_mass, state: EMState):
        """Each row's additive log term at the nodes, per key: ``(log mass (D, G), row key (R,))``.

        Without ties one key, the prior's ``log_mass`` (shape (G,)), for every
        row. With ties modelled one key per distinct ``(m, T)``: the prior plus
        that key's tie factor (:meth:`tie_log_factor`). ``eta`` may be any
        nodes (e.g. those of a tail rule) with ``log_mass`` there.
        """
        log_mass = np.asarray(log_mass, dtype=float)[None, :]
        if self.tie_term is None:
            return log_mass, np.zeros(self.counts.n_rows, dtype=np.int64)
        tie = self.tie_log_factor(eta, one_minus_eta, state.ties)
        return log_mass + tie, np.asarray(self.tie_term.row_key, dtype=np.int64)

    @property
    def stride_spacing(self) -> float:
        """The grid's spacing when rows may take strides of it, else 0 (atoms, ties modelled).

        Without ties the E-step sums each row over every ``k``-th node of the
        grid (see :func:`attnmodel.model.kernels.estep_stats`); with ties
        every row keeps the full grid.
        """
        if self.grid is None or self.tie_term is not None:
            return 0.0
        return float(self.grid.spacing)

    def _stride_plan(self, n_nodes: int):
        from attnmodel.model.kernels import stride_plan

        if self._strides is None:
            self._strides = stride_plan(self.counts, n_nodes, self.stride_spacing)
        return self._strides

    # -- nodes -----------------------------------------------------------
    def nodes(self, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(eta, 1 - eta, log prior mass)`` of the nodes, each of shape (G,)."""
        if self.family.discrete:
            w, loc = self.family.components(params)
            with np.errstate(divide="ignore"):
                return loc, 1.0 - loc, np.log(w)
        g = self.grid
        return g.eta, g.one_minus_eta, self._grid_log_mass(params)

    def _grid_log_mass(self, params) -> np.ndarray:
        """Log prior mass of the grid's nodes, shape (G,)."""
        return self.grid.log_weight + self.family.log_density_logit(self.grid.u, params)

    def _row_loglik(self, eta, one_minus_eta, mu) -> np.ndarray:
        # With a grid and every mu known the likelihood matrix never changes.
        cacheable = not self.family.discrete and self.unknown.size == 0
        if cacheable and self._cached_ll is not None and np.array_equal(self._cached_ll[0], mu):
            return self._cached_ll[1]
        ll = row_loglik(self.counts, *pair_log_probs(eta, one_minus_eta, mu))
        if cacheable:
            self._cached_ll = (mu.copy(), ll)
        return ll

    # -- E-step ----------------------------------------------------------
    def e_step(self, state: EMState, posterior: bool = False) -> EStep:
        """Posterior over nodes per row, the M-step statistics and the objective at ``state``.

        Parameters
        ----------
        state : EMState
        posterior : bool
            Also return the (R, G) posterior matrix (the M-step needs only its sums).
        """
        eta, one_minus_eta, log_mass = self.nodes(state.params)
        counts = self.counts
        use_kernel = self.engine == "numba" or (
            self.engine == "auto" and counts.n_rows * eta.size >= COMPILED_ESTEP_CELLS
        )
        tie_weight = None
        if self.tie_term is not None:
            # Ties: the direction part at the transformed nodes, and one log mass
            # per (m, T), the prior plus that key's tie factor.
            log_g, log_1mg = pair_log_probs(
                *self.direction_nodes(eta, one_minus_eta, state), state.mu
            )
            key_mass, row_key = self.key_log_mass(eta, one_minus_eta, log_mass, state)
        if self.tie_term is not None and use_kernel:
            from attnmodel.model.kernels import estep_stats

            log_z, tie_weight, s_stat, f_stat, post = estep_stats(
                counts, log_g, log_1mg, key_mass, posterior, row_key=row_key
            )
            weight = tie_weight.sum(axis=0)
        elif self.tie_term is not None:
            a = row_loglik(counts, log_g, log_1mg)
            a += key_mass[row_key]
            log_z, post = _normalise_rows(a)
            del a
            weight = counts.row_weight @ post
            post_e = post if counts.one_entry_per_row else post[counts.entry_row]
            m_s, m_f = self._pair_entry_matrices()
            s_stat = np.asarray(m_s @ post_e)
            f_stat = np.asarray(m_f @ post_e)
            tie_weight = np.asarray(self._key_rows @ post)
        elif use_kernel:
            from attnmodel.model.kernels import estep_stats

            log_g, log_1mg = pair_log_probs(eta, one_minus_eta, state.mu)
            if not posterior and self._poly_split() is not None:
                log_z, weight, s_stat, f_stat = self._poly_estep(state.mu, log_g, log_1mg, log_mass)
                post = None
            else:
                log_z, weight, s_stat, f_stat, post = estep_stats(
                    counts, log_g, log_1mg, log_mass, posterior, spacing=self.stride_spacing
                )
        else:
            a = self._row_loglik(eta, one_minus_eta, state.mu) + log_mass[None, :]
            if self.stride_spacing > 0 and not posterior:
                # Each row on its own sub-grid, as the compiled pass (estep_stats) takes it.
                from attnmodel.model.kernels import prior_start_levels, row_posterior

                level, mult = self._stride_plan(a.shape[1])
                level = prior_start_levels(
                    level, log_mass[None, :], np.zeros(level.size, dtype=np.int64), mult
                )
                log_z, post = row_posterior(a, level, mult)
            else:
                log_z, post = _normalise_rows(a)
            weight = counts.row_weight @ post
            post_e = post if counts.one_entry_per_row else post[counts.entry_row]
            m_s, m_f = self._pair_entry_matrices()
            s_stat = np.asarray(m_s @ post_e)
            f_stat = np.asarray(m_f @ post_e)
        loglik = float(np.dot(counts.row_weight, log_z))
        logprior = self.log_prior(state)
        return EStep(
            loglik + logprior,
            loglik,
            logprior,
            log_z,
            weight,
            s_stat,
            f_stat,
            post if posterior else None,
            tie_weight,
        )

    def _pair_entry_matrices(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """(P, E) matrices of each entry's users' wins and losses, for the numpy E-step.

        Formed when the numpy E-step first asks for them: the compiled one
        never does, and on millions of entries they take gigabytes.
        """
        if self._pair_entry_sums is None:
            counts = self.counts
            c_entry = counts.row_weight[counts.entry_row]
            shape = (counts.n_pairs, counts.entry_n.size)
            cols = np.arange(counts.entry_n.size)
            self._pair_entry_sums = (
                sparse.csr_matrix(
                    (c_entry * counts.entry_s, (counts.entry_pair, cols)), shape=shape
                ),
                sparse.csr_matrix(
                    (c_entry * (counts.entry_n - counts.entry_s), (counts.entry_pair, cols)),
                    shape=shape,
                ),
            )
        return self._pair_entry_sums

    def _poly_split(self):
        """``(light rows, other rows, their table, Bernstein table)``, or None.

        Without ties, on a grid, the rows of at most
        :func:`attnmodel.model.kernels.poly_max_votes` votes take the compiled
        E-step as polynomials in ``eta``
        (:func:`attnmodel.model.kernels.poly_estep_stats`); the others the
        grid pass. None when no row is that light, when that does not pay
        (:func:`attnmodel.model.kernels.poly_pays`), for atoms and with ties modelled.
        """
        if self._poly is None:
            self._poly = False
            c = self.counts
            if self.grid is not None and self.tie_term is None:
                from attnmodel.model.kernels import bernstein_table, poly_max_votes, poly_pays

                votes = c.votes_per_row()
                n_max = min(poly_max_votes(self.grid.size), int(votes.max()))
                light = votes <= n_max
                if light.any() and poly_pays(c, light, n_max, self.grid.size):
                    rest = np.flatnonzero(~light)
                    self._poly = (
                        np.flatnonzero(light),
                        rest,
                        c.take_rows(rest) if rest.size else None,
                        bernstein_table(self.grid.log_eta, self.grid.log_one_minus_eta, n_max),
                    )
        return self._poly or None

    def _poly_estep(self, mu, log_g, log_1mg, log_mass):
        """The compiled E-step with the light rows as polynomials (:meth:`_poly_split`).

        Returns ``(log_z, weight, s_stat, f_stat)`` as
        :func:`attnmodel.model.kernels.estep_stats` does; the rows whose
        polynomial marginal is too small to trust join the grid pass.
        """
        from attnmodel.model.kernels import estep_stats, poly_estep_stats

        light, rest, rest_counts, table = self._poly_split()
        c = self.counts
        half = np.full(c.n_pairs, 0.5)
        win, loss = np.column_stack([half, mu]), np.column_stack([half, 1.0 - mu])
        lz, weight, s_stat, f_stat = poly_estep_stats(c, light, win, loss, table, log_mass)
        log_z = np.empty(c.n_rows)
        log_z[light] = lz
        failed = light[~(lz > -np.inf)]
        if failed.size:
            rest = np.sort(np.concatenate([rest, failed]))
            rest_counts = c.take_rows(rest)
        if rest.size:
            lz, w, s, f, _ = estep_stats(
                rest_counts, log_g, log_1mg, log_mass, spacing=self.stride_spacing
            )
            log_z[rest] = lz
            weight += w
            s_stat += s
            f_stat += f
        return log_z, weight, s_stat, f_stat

    def objective(self, state: EMState) -> float:
        """Log posterior ``L`` at ``state`` (what EM maximises)."""
        return self.e_step(state).objective

    # -- M-step ----------------------------------------------------------
    def m_step(self, state: EMState, estep: EStep) -> EMState:
        """One (generalised) M-step: never lowers ``Q(theta | state)``."""
        weight, s_stat, f_stat = estep.weight, estep.s_stat, estep.f_stat
        mu = state.mu.copy()
        if self.family.discrete:
            w = weight / weight.sum()
            _, loc = self.family.components(state.params)
            loc = _update_locations(s_stat, f_stat, mu, loc)
            params = self.family.from_components(w, loc)
            # Reorder the statistics like the (re-sorted) locations.
            order = np.argsort(loc, kind="stable")
            s_stat, f_stat = s_stat[:, order], f_stat[:, order]
            eta, one_minus_eta = loc[order], 1.0 - loc[order]
        else:
            params = self.family.m_step(self.grid, weight, state.params)
            eta, one_minus_eta = self.grid.eta, self.grid.one_minus_eta
        tie_stats_ = None
        if self.tie_term is not None:
            # The E-step's tie statistics; their pass also gives the tie part of
            # Q at the current tie parameters, which the family's update reuses.
            tie_stats_ = tie_stats(self.tie_term, estep.tie_weight, eta, one_minus_eta, state.ties)
            self._vote_q_memo = (estep, tuple(state.ties), tie_stats_.log_factor_sum)
        if self.prior is not None and not self.prior.flat:
            params = self._refine_family(params, state, estep)
            if self.family.discrete:
                # The refinement moves atoms a little; the statistics keep their order.
                _, loc = self.family.components(params)
                eta, one_minus_eta = loc, 1.0 - loc
        hyper = state.mu_hyper
        # With ties modelled the direction of a vote sees the transformed nodes.
        if self.tie_term is None:
            d_eta, d_om = eta, one_minus_eta
        else:
            d_eta, d_om = self.direction_nodes(eta, one_minus_eta, state)
        if isinstance(self.structure, BradleyTerryMu):
            hyper = self._update_theta(s_stat, f_stat, d_eta, d_om, hyper)
            mu = self.structure.mu(hyper)
        elif self.unknown.size:
            mu[self.unknown] = self._update_mu(s_stat, f_stat, d_eta, d_om, mu, hyper)
            if isinstance(self.structure, PooledMu):
                hyper = self.structure.update_hyper(mu[self.unknown], hyper)
        if self.tie_term is None:
            return EMState(params, mu, hyper)
        # Then the tie parameters given the new mu; each update raises Q
        # (coordinate ascent).
        ties = self._update_ties(estep, tie_stats_, eta, one_minus_eta, mu, state.ties)
        return EMState(params, mu, hyper, ties)

    def _update_ties(
        self, estep: EStep, stats: TieStats, eta, one_minus_eta, mu, ties: TieParams
    ) -> TieParams:
        """Maximise the complete-data ``Q`` in the tie parameters; keep the old ones if it dropped.

        The latent tie split and ``tau`` join ``eta`` as missing data
        (``stats``, :class:`~attnmodel.model.ties.TieStats` taken at ``ties``,
        the parameters of the E-step), so each evaluation of the objective costs
        O(pairs x nodes) rather than a pass over every distinct ``(m, T)``'s
        terms. Raising that ``Q`` raises ``L`` as EM's ``Q`` does, and its fixed
        points are the stationary points of ``L``.
        """
        from scipy import optimize

        def neg(v):
            val, grad = tie_q_complete(
                stats, estep.s_stat, estep.f_stat, eta, one_minus_eta, mu, TieParams.from_vector(v)
            )
            if not np.isfinite(val):
                return 1e300, np.zeros(3)
            return -val, -grad

        v0 = ties.to_vector()
        lo, hi = tie_vector_bounds()
        res = optimize.minimize(
            neg,
            np.clip(v0, lo, hi),
            jac=True,
            method="L-BFGS-B",
            bounds=optimize.Bounds(lo, hi),
            options={"maxiter": 100, "ftol": 1e-15, "gtol": 1e-10},
        )
        if np.isfinite(res.fun) and res.fun <= neg(v0)[0]:
            return TieParams.from_vector(res.x)
        return ties

    def _refine_family(self, params, state: EMState, estep: EStep):
        """Generalised M-step for the family under a non-flat prior.

        Maximises ``Q + log prior`` over the family's coordinates by L-BFGS-B,
        started from the prior-free closed-form update; the result is kept only
        if it does not lower ``Q + log prior`` below the current parameters, so
        EM's monotonicity holds.
        """
        from scipy import optimize

        k = self.family.to_vector(state.params).size
        base = self.to_vector(state)
        lo, hi = self.vector_bounds()

        def neg_q(v):
            if self.family.discrete:
                full = base.copy()
                full[:k] = v
                val = self.q_value(full, estep)
            else:
                val = self.family_q(self.family.from_vector(v, self.grid), estep)
            return -val if np.isfinite(val) else 1e300

        candidates = [self.family.to_vector(params), base[:k]]
        starts = [np.clip(c, lo[:k], hi[:k]) for c in candidates]
        best = min(starts, key=neg_q)
        res = optimize.minimize(
            neg_q, best, method="L-BFGS-B", bounds=optimize.Bounds(lo[:k], hi[:k])
        )
        chosen = res.x if res.fun <= neg_q(best) else best
        if neg_q(chosen) > neg_q(base[:k]):
            chosen = base[:k]
        return self.family.from_vector(chosen, self.grid)

    def _update_mu(self, s_stat, f_stat, eta, one_minus_eta, mu, hyper=None) -> np.ndarray:
        idx = self.unknown
        s, f = s_stat[idx], f_stat[idx]
        priors = [self.mu_spec.priors[k] for k in idx]
        half = 0.5 * one_minus_eta
        if isinstance(self.structure, PooledMu):
            pooled = self.structure

            def prior_d1(x):
                return pooled.mu_dlogp(x, hyper)

            def prior_d2(x):
                return pooled.mu_d2logp(x, hyper)

        elif self.prior is not None:
            prior_d1, prior_d2 = self.prior.mu_dlogp, self.prior.mu_d2logp
        else:

            def prior_d1(x):
                return np.array([p.dlogpdf(xi) for p, xi in zip(priors, x, strict=True)])

            def prior_d2(x):
                return np.array([p.d2logpdf(xi) for p, xi in zip(priors, x, strict=True)])

        if self.engine == "numba" or (self.engine == "auto" and s.size >= COMPILED_MU_CELLS):
            # One compiled pass gives both derivatives; Newton asks for the
            # gradient and then the Hessian at the same point.
            from attnmodel.model import kernels

            derive = (
                kernels.mu_derivatives_parallel
                if s.size >= kernels.MU_PARALLEL_CELLS
                else kernels.mu_derivatives
            )
            s, f = np.ascontiguousarray(s), np.ascontiguousarray(f)
            eta_c, half_c = np.ascontiguousarray(eta), np.ascontiguousarray(half)
            last: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

            def derivatives(x):
                key = x.tobytes()
                if key not in last:
                    last.clear()
                    last[key] = derive(np.ascontiguousarray(x), s, f, eta_c, half_c)
                return last[key]

            def grad(x):
                return derivatives(x)[0] + prior_d1(x)

            def hess(x):
                return derivatives(x)[1] + prior_d2(x)

        else:

            def grad(x):
                g = half + eta * x[:, None]
                h = half + eta * (1.0 - x[:, None])
                with np.errstate(divide="ignore", invalid="ignore"):
                    val = np.sum(eta * (s / g - f / h), axis=1)
                return val + prior_d1(x)

            def hess(x):
                g = half + eta * x[:, None]
                h = half + eta * (1.0 - x[:, None])
                with np.errstate(divide="ignore", invalid="ignore"):
                    val = -np.sum(eta**2 * (s / g**2 + f / h**2), axis=1)
                return val + prior_d2(x)

        lo = np.array([max(p.support[0], 0.5) for p in priors]) + 1e-12
        hi = np.array([p.support[1] for p in priors])
        return maximize_concave_1d(grad, hess, lo, hi, mu[idx])

    def _update_theta(self, s_stat, f_stat, eta, one_minus_eta, theta) -> np.ndarray:
        """Generalised M-step of the Bradley-Terry strengths.

        Maximises ``sum_k sum_g S log g + F log(1 - g)`` plus the strengths' log
        prior over the sum-zero plane by BFGS with the analytic gradient; the
        result is kept only if it does not lower that sum below the current one.
        """
        from scipy import optimize

        bt = self.structure
        a, b = bt.index_a, bt.index_b
        n_models = len(bt.models)
        jac = bt.free_jacobian(n_models)
        half = 0.5 * one_minus_eta
        s, f = s_stat, f_stat

        def neg(v):
            th = jac @ v
            m = special.expit(th[a] - th[b])[:, None]
            g, h = half + eta * m, half + eta * (1.0 - m)
            with np.errstate(divide="ignore", invalid="ignore"):
                val = np.where(s > 0, s * np.log(g), 0.0).sum()
                val += np.where(f > 0, f * np.log(h), 0.0).sum()
                d_mu = np.sum(np.where(s > 0, eta * s / g, 0.0), axis=1)
                d_mu -= np.sum(np.where(f > 0, eta * f / h, 0.0), axis=1)
            d_d = d_mu * (m[:, 0] * (1.0 - m[:, 0]))
            g_th = -th / bt.sigma**2
            np.add.at(g_th, a, d_d)
            np.subtract.at(g_th, b, d_d)
            val += bt.theta_logp(th)
            if not np.isfinite(val):
                return 1e300, np.zeros_like(v)
            return -val, -(jac.T @ g_th)

        v0 = np.asarray(theta, dtype=float)[:-1]
        res = optimize.minimize(neg, v0, jac=True, method="BFGS", options={"gtol": 1e-9})
        return bt.from_free(res.x) if res.fun <= neg(v0)[0] else np.asarray(theta, dtype=float)

    # -- gradient by Fisher's identity -----------------------------------
    def q_value(self, vec: np.ndarray, estep: EStep) -> float:
        """``Q(theta | theta_t)`` plus the log prior, for ``theta = from_vector(vec)``.

        ``theta_t`` is the state at which ``estep`` was taken. It is the sum of
        :meth:`family_q` (the prior's mass at the nodes, the family prior) and
        the votes' part with the rest of the prior (:meth:`_votes_q`).
        """
        state = self.from_vector(vec)
        eta, one_minus_eta, log_mass = self.nodes(state.params)
        return (
            self._mass_q(log_mass, estep)
            + self._family_log_prior(state.params)
            + self._votes_q(estep, eta, one_minus_eta, state)
        )

    def family_q(self, params, estep: EStep) -> float:
        """The terms of :meth:`q_value` that move with the family parameters (grid families).

        On a grid the nodes stay where they are, so the family parameters enter
        ``Q`` only through the prior's mass at the nodes and the family prior:
        ``sum_g weight_g log mass_g(params) + log p(params)``. The rest of ``Q``
        is a constant here, and the family's M-step and the family coordinates
        of :meth:`gradient` evaluate this alone. Atoms (discrete families) move
        the votes' part too; use :meth:`q_value` for them.
        """
        if self.family.discrete:
            raise ValueError("family_q needs a grid family; atoms move the votes' part of Q")
        return self._mass_q(self._grid_log_mass(params), estep) + self._family_log_prior(params)

    @staticmethod
    def _mass_q(log_mass: np.ndarray, estep: EStep) -> float:
        with np.errstate(invalid="ignore"):
            return float(np.where(estep.weight > 0, estep.weight * log_mass, 0.0).sum())

    def _votes_q(self, estep: EStep, eta, one_minus_eta, state: EMState) -> float:
        """The votes' part of ``Q`` at the nodes ``eta``, plus :meth:`_rest_log_prior`."""
        if self.tie_term is not None:
            value = self._vote_q(estep, eta, one_minus_eta, state)
        else:
            log_g, log_1mg = pair_log_probs(eta, one_minus_eta, state.mu)
            with np.errstate(invalid="ignore"):
                value = (
                    np.where(estep.s_stat > 0, estep.s_stat * log_g, 0.0).sum()
                    + np.where(estep.f_stat > 0, estep.f_stat * log_1mg, 0.0).sum()
                )
        return float(value) + self._rest_log_prior(state)

    def _pair_q(self, free: np.ndarray, eta, one_minus_eta, estep: EStep) -> np.ndarray:
        """Each unknown pair's votes' part of ``Q`` plus its log prior, at ``free``.

        ``free`` are the unknown pairs' coordinates (:meth:`to_vector`); with
        independent ``mu`` and no ties ``Q`` is a sum of these and terms free of them.
        """
        mu = self._mu_from_free(free)
        idx = self.unknown
        s, f = estep.s_stat[idx], estep.f_stat[idx]
        log_g, log_1mg = pair_log_probs(eta, one_minus_eta, mu)
        with np.errstate(invalid="ignore"):
            value = np.where(s > 0, s * log_g, 0.0).sum(axis=1)
            value += np.where(f > 0, f * log_1mg, 0.0).sum(axis=1)
        if self.prior is not None:
            return value + self.prior.mu_logp(mu)
        return value + np.array(
            [self.mu_spec.priors[k].logpdf(x) for k, x in zip(idx, mu, strict=True)]
        )

    def _vote_q(self, estep: EStep, eta, one_minus_eta, state: EMState) -> float:
        """Ties modelled: the votes' part of ``Q`` (directions and ties), free of the family.

        The grid's nodes do not move with the family's parameters, so the tie
        part, the costly one, is kept and reused while the tie parameters stay
        (the family's M-step and the family and ``mu`` coordinates of
        :meth:`gradient` ask for it many times over).
        """
        key = tuple(state.ties)
        memo = self._vote_q_memo
        if memo is not None and memo[0] is estep and memo[1] == key:
            tie = memo[2]
        else:
            tie = self.tie_term.weighted(estep.tie_weight, eta, one_minus_eta, state.ties)
            self._vote_q_memo = (estep, key, tie)
        return tie + direction_q(
            estep.s_stat, estep.f_stat, eta, one_minus_eta, state.mu, state.ties.kappa
        )

    def gradient(self, state: EMState, estep: EStep, step: float = 1e-5) -> np.ndarray:
        """Gradient of ``L`` in the unconstrained coordinates at ``state``.

        By Fisher's identity the gradient of the marginal log posterior equals
        the gradient of ``Q(. | state)`` at ``state``; ``Q`` depends on the
        parameters only through a few (P, G) sums, so central differences of
        it are cheap and accurate (truncation ~ step^2, rounding ~ eps / step).
        At a bound of the admissible box the difference is one-sided. Each
        difference evaluates only the terms its coordinate moves: on a grid
        :meth:`family_q` for the family's coordinates, and with independent
        ``mu`` and no ties one pair's terms for each ``mu`` (:meth:`_pair_q`,
        all pairs at once).
        """
        v = self.to_vector(state)
        v_up, v_down = _probe_points(v, *self.vector_bounds(), step)
        width = v_up - v_down
        k = self.family.to_vector(state.params).size
        grid = not self.family.discrete
        eta, one_minus_eta, _ = self.nodes(state.params)
        by_pair = (
            self.tie_term is None
            and isinstance(self.structure, IndependentMu)
            and self.unknown.size
        )
        grad = np.empty_like(v)
        for i in range(v.size):
            if by_pair and i >= k:
                break
            up, down = v.copy(), v.copy()
            up[i], down[i] = v_up[i], v_down[i]
            if grid and i < k:
                q_up = self.family_q(self.family.from_vector(up[:k], self.grid), estep)
                q_down = self.family_q(self.family.from_vector(down[:k], self.grid), estep)
            elif grid:
                q_up = self._votes_q(estep, eta, one_minus_eta, self.from_vector(up))
                q_down = self._votes_q(estep, eta, one_minus_eta, self.from_vector(down))
            else:
                q_up, q_down = self.q_value(up, estep), self.q_value(down, estep)
            grad[i] = (q_up - q_down) / width[i]
        if by_pair:
            free = slice(k, k + self.unknown.size)
            q_up = self._pair_q(v_up[free], eta, one_minus_eta, estep)
            q_down = self._pair_q(v_down[free], eta, one_minus_eta, estep)
            grad[free] = (q_up - q_down) / width[free]
        return grad

    def vector_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Box of the admissible set in the coordinates of :meth:`to_vector`."""
        lo, hi = self.family.vector_bounds(self.grid)
        structure = self.structure
        k = (
            len(structure.models) - 1
            if isinstance(structure, BradleyTerryMu)
            else self.unknown.size
        )
        lo, hi = np.concatenate([lo, np.full(k, -np.inf)]), np.concatenate([hi, np.full(k, np.inf)])
        if isinstance(structure, PooledMu):
            lo = np.concatenate([lo, [-np.inf, 0.0]])
            hi = np.concatenate([hi, [np.inf, structure.max_concentration]])
        if self.tie_term is not None:
            t_lo, t_hi = tie_vector_bounds()
            lo, hi = np.concatenate([lo, t_lo]), np.concatenate([hi, t_hi])
        return lo, hi

    def is_stationary(
        self,
        state: EMState,
        estep: EStep,
        scale: float,
        gtol: float = 1e-7,
        grad: np.ndarray | None = None,
    ) -> bool:
        """No coordinate can still climb: the projected gradient per vote is below ``gtol``.

        A coordinate on a bound of the admissible box (an atom at ``eta = 1``,
        a Beta shape at its cap) counts as stationary when the gradient pushes
        it further out (:meth:`held_on_bounds`). ``grad`` is
        :meth:`gradient` at ``state`` when the caller has it already.
        """
        grad = self.gradient(state, estep) if grad is None else grad
        held = self.held_on_bounds(self.to_vector(state), grad)
        return float(np.max(np.abs(np.where(held, 0.0, grad / scale)), initial=0.0)) <= gtol

    def held_on_bounds(self, vec: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Coordinates of ``vec`` on a bound of the admissible box that ``grad`` pushes outward."""
        lo, hi = self.vector_bounds()
        return ((vec >= hi) & (grad > 0)) | ((vec <= lo) & (grad < 0))

    # -- coordinates for extrapolation ----------------------------------
    def to_vector(self, state: EMState) -> np.ndarray:
        """Unconstrained coordinates of a state.

        The family's coordinates, then: ``logit(2 mu - 1)`` of the unknown
        ``mu`` (independent, pooled) followed, for pooled, by ``logit(m)`` and
        ``c``; or, for Bradley-Terry, the strengths but the last (sum zero);
        last, with ties modelled, the three tie coordinates.
        """
        fam = self.family.to_vector(state.params)
        ties = [] if self.tie_term is None else [state.ties.to_vector()]
        if isinstance(self.structure, BradleyTerryMu):
            return np.concatenate([fam, np.asarray(state.mu_hyper, dtype=float)[:-1], *ties])
        t = np.clip(2.0 * state.mu[self.unknown] - 1.0, 1e-12, 1 - 1e-12)
        out = np.concatenate([fam, special.logit(t)])
        if isinstance(self.structure, PooledMu):
            m, c = state.mu_hyper
            out = np.concatenate([out, [special.logit(np.clip(m, 1e-12, 1 - 1e-12)), c]])
        return np.concatenate([out, *ties])

    def from_vector(self, vec: np.ndarray) -> EMState:
        """Inverse of :meth:`to_vector`, projected onto the admissible set."""
        ties = None
        if self.tie_term is not None:
            ties = TieParams.from_vector(vec[-3:])
            vec = vec[:-3]
        structure = self.structure
        if isinstance(structure, BradleyTerryMu):
            k = vec.size - (len(structure.models) - 1)
            params = self.family.from_vector(vec[:k], self.grid)
            theta = structure.from_free(vec[k:])
            return EMState(params, structure.mu(theta), theta, ties)
        n_hyper = 2 if isinstance(structure, PooledMu) else 0
        k = vec.size - self.unknown.size - n_hyper
        params = self.family.from_vector(vec[:k], self.grid)
        mu = self.mu_spec.initial()
        if self.unknown.size:
            mu[self.unknown] = self._mu_from_free(vec[k : k + self.unknown.size])
        hyper = None
        if n_hyper:
            m, c = vec[-2:]
            hyper = np.array([special.expit(m), np.clip(c, 0.0, structure.max_concentration)])
        return EMState(params, mu, hyper, ties)

    def _mu_from_free(self, free: np.ndarray) -> np.ndarray:
        """The unknown ``mu`` at their coordinates (:meth:`to_vector`), in their priors' support."""
        if self._mu_support is None:
            supports = [self.mu_spec.priors[i].support for i in self.unknown]
            self._mu_support = (
                np.array([lo for lo, _ in supports]) + 1e-12,
                np.array([hi for _, hi in supports]),
            )
        return np.clip(0.5 + 0.5 * special.expit(free), *self._mu_support)

    # -- starting points -------------------------------------------------
    def initial_state(self, start: int, rng: np.random.Generator) -> EMState:
        """Start 0 is moment-based and deterministic; later starts are random."""
        mu = self.mu_spec.initial()
        c = self.counts
        structure = self.structure
        hyper = None
        if isinstance(structure, BradleyTerryMu):
            # Plain Bradley-Terry on the vote totals, stretched at random for later starts.
            w = c.row_weight[c.entry_row]
            wins = np.bincount(c.entry_pair, weights=w * c.entry_s, minlength=c.n_pairs)
            n = np.bincount(c.entry_pair, weights=w * c.entry_n, minlength=c.n_pairs)
            hyper, _ = plain_bradley_terry(
                wins, n, structure.index_a, structure.index_b, len(structure.models)
            )
            if start > 0:
                hyper = hyper * rng.uniform(1.0, 3.0) + rng.normal(0.0, 0.3, hyper.size)
                hyper = hyper - hyper.mean()
            mu = structure.mu(hyper)
        elif isinstance(structure, PooledMu):
            hyper = structure.initial_hyper()
            x_mode = hyper[0]
            mu[self.unknown] = 0.5 + 0.5 * x_mode
            if start > 0 and self.unknown.size:
                a, b = structure.shapes(hyper)
                mu[self.unknown] = 0.5 + 0.5 * rng.beta(a, b, self.unknown.size)
        elif start > 0 and self.unknown.size:
            for k in self.unknown:
                mu[k] = float(self.mu_spec.priors[k].sample(1, rng)[0])
        # Crude per-row attentiveness: excess wins over the coin-flip rate,
        # scaled by what a fully attentive user would show.
        from attnmodel.data.grouping import pair_row_dot, row_totals

        ptr, pair, n_e, s_e = c._int64(c.row_ptr, c.entry_pair, c.entry_n, c.entry_s)
        if self._row_excess is None:
            self._row_excess = row_totals(ptr, s_e) - 0.5 * c.votes_per_row()
        excess = self._row_excess
        scale = pair_row_dot(ptr, pair, n_e, np.asarray(mu, dtype=np.float64) - 0.5)
        # In place: on millions of rows each temporary is fresh memory to fault in.
        eta_hat = np.full_like(scale, 0.5)
        np.divide(excess, scale, out=eta_hat, where=scale > 0)
        np.clip(eta_hat, 0.0, 1.0, out=eta_hat)
        del scale
        params = self.family.init_params(eta_hat, c.row_weight, rng, start)
        if self.tie_term is None:
            return EMState(params, mu, hyper)
        # Ties: the population mean at the overall tie rate. The likelihood often
        # has two modes in kappa: one near 0 (ties are style) and one far above it
        # (users who tie are taken for careless ones, users who never tie for
        # attentive ones). Either can be the higher: on MT-Bench with injected coin
        # flippers the mode near 0 is 170 log units higher, yet every start from
        # kappa = 0.5 ended in the other. So the first start puts kappa at 0.05, the
        # second at 0.5, and the others anywhere in (0.05, 0.95).
        m_r, t_r = c.row_totals()
        rate = float(
            np.clip((c.row_weight @ t_r + 0.5) / (c.row_weight @ (m_r + t_r) + 1.0), 0.01, 0.99)
        )
        kappa = (0.05, 0.5)[start] if start < 2 else float(rng.uniform(0.05, 0.95))
        return EMState(params, mu, hyper, TieParams(kappa, rate, 5.0))


def _normalise_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-sum-exp and the normalised probabilities, shape (R,) and (R, G).

    Terms more than 700 below a row's peak are raised to ``exp(-700)``: they
    change the sum by less than ``G * 1e-304`` relative, and the alternative,
    subnormal results of ``exp``, runs an order of magnitude slower.
    """
    peak = a.max(axis=1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    post = a - peak
    np.maximum(post, -700.0, out=post)
    np.exp(post, out=post)
    total = post.sum(axis=1, keepdims=True)
    post /= total
    log_z = np.log(total[:, 0]) + peak[:, 0]
    return log_z, post


def _update_locations(s_stat, f_stat, mu, loc) -> np.ndarray:
    """Maximise ``sum_k S log g + F log(1 - g)`` over each atom's location in [0, 1].

    For one pair this is the closed form of the paper's appendix C.1,
    ``eta = (2 S - N) / ((2 mu - 1) N)`` clipped to [0, 1]; with several pairs it
    is a 1-D concave problem per atom, solved by safeguarded Newton.
    """
    d = (mu - 0.5)[:, None]

    def grad(x):
        g = 0.5 + x[None, :] * d
        h = 0.5 - x[None, :] * d
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(d * (s_stat / g - f_stat / h), axis=0)

    def hess(x):
        g = 0.5 + x[None, :] * d
        h = 0.5 - x[None, :] * d
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(d**2 * (s_stat / g**2 + f_stat / h**2), axis=0)

    has_data = (s_stat + f_stat).sum(axis=0) > 0
    new = maximize_concave_1d(grad, hess, np.zeros(loc.size), np.ones(loc.size), loc)
    # An atom no user belongs to keeps its place rather than jumping to a bound.
    return np.where(has_data, new, loc)


def em_step(problem: EMProblem, state: EMState) -> tuple[EMState, EStep]:
    """One EM iteration: E-step at ``state``, then the M-step.

    Returns
    -------
    new_state : EMState
    estep : EStep
        The E-step at the *input* state (its objective is ``L(state)``).
    """
    estep = problem.e_step(state)
    return problem.m_step(state, estep), estep


@dataclass
class _Run:
    records: list[dict[str, Any]] = field(default_factory=list)


def _record(problem: EMProblem, run: _Run, state: EMState, estep: EStep, kind: str) -> None:
    _record_value(problem, run, state, estep.log_likelihood, estep.log_prior, kind)


def _record_value(
    problem: EMProblem,
    run: _Run,
    state: EMState,
    log_likelihood: float,
    log_prior: float,
    kind: str,
) -> None:
    """Append an iterate, its log likelihood and log prior to ``run``'s history."""
    row: dict[str, Any] = {
        "iteration": len(run.records),
        "step": kind,
        "objective": log_likelihood + log_prior,
        "log_likelihood": log_likelihood,
        "log_prior": log_prior,
    }
    row.update(problem.family.flat(state.params))
    for pair, value in zip(problem.mu_spec.pairs, state.mu, strict=True):
        row[f"mu[{pair}]"] = float(value)
    for name, value in zip(hyper_labels(problem.structure), np.ravel(state.mu_hyper), strict=False):
        row[name] = float(value)
    if state.ties is not None:
        row.update(state.ties.flat())
    run.records.append(row)


def hyper_labels(structure) -> list[str]:
    """History column of each element of ``mu_hyper``: ``theta[model]`` or ``mu_hyper[name]``."""
    if isinstance(structure, BradleyTerryMu):
        return [f"theta[{m}]" for m in structure.models]
    if isinstance(structure, PooledMu):
        return [f"mu_hyper[{h}]" for h in structure.hyper_names]
    return []


def _run_em(
    problem: EMProblem,
    state: EMState,
    *,
    max_iter: int,
    tol: float,
    xtol: float,
    accelerate: bool,
    run: _Run,
    polish_after: int | None = None,
    stationary_stop: bool = False,
    line_search: bool = False,
) -> Generator[tuple[EMState, EStep], None, tuple[EMState, EStep, bool]]:
    """EM from ``state`` as a generator: yields each iterate and its E-step (recorded).

    It returns ``(state, estep, converged)`` (the ``StopIteration`` value) when
    EM converges, the polish ends or ``max_iter`` is reached; a driver may
    stop drawing from it earlier (see ``screen_iter`` of :func:`fit_em`) and
    go on later along the same path. :func:`_finish` runs it to the end.
    With ``stationary_stop`` it also ends, converged, at the first iterate
    where the polish would stop at once: the projected gradient per vote
    below :data:`POLISH_GTOL` (:meth:`EMProblem.is_stationary`), a test that
    costs a few passes over the (pairs, nodes) statistics.
    With ``line_search`` each iterate is first followed by an extrapolation
    along the path since the last one (:func:`_secant_step`, along the ridge
    between ``mu`` and the scale of ``P_eta``); after one that was taken, or
    when none is, SQUAREM goes on.
    """
    e0 = problem.e_step(state)
    _record(problem, run, state, e0, "start")
    s0 = state
    s1 = problem.m_step(s0, e0)
    scale = _vote_scale(problem) if stationary_stop else 1.0
    ridge_memo: dict = {}
    ridge_last = False
    for it in range(max_iter):
        e1 = problem.e_step(s1)
        _record(problem, run, s1, e1, "em")
        if stationary_stop and problem.is_stationary(s1, e1, scale, POLISH_GTOL):
            return s1, e1, True
        if polish_after is not None and it >= polish_after:
            return _polish(problem, s1, e1, run, max_iter=max_iter, tol=tol)
        v0, v1 = problem.to_vector(s0), problem.to_vector(s1)
        gain = e1.objective - e0.objective
        if gain <= tol * (1.0 + abs(e1.objective)) and np.max(np.abs(v1 - v0), initial=0.0) <= xtol:
            return s1, e1, True
        yield s1, e1
        if line_search and not ridge_last:
            hit = _secant_step(problem, s1, e1, ridge_memo)
            ridge_last = hit is not None
            if hit is not None:
                _record(problem, run, *hit, "secant")
                s0, e0 = hit
                s1 = problem.m_step(s0, e0)
                continue
        ridge_last = False
        s2 = problem.m_step(s1, e1)
        if accelerate:
            v2 = problem.to_vector(s2)
            r = v1 - v0
            v = v2 - 2.0 * v1 + v0
            nv = np.linalg.norm(v)
            alpha = -np.linalg.norm(r) / nv if nv > 0 and np.all(np.isfinite(v)) else -1.0
            # Halve the step towards plain EM (alpha = -1) until the objective does not drop.
            while alpha < -1.0:
                sp = problem.from_vector(v0 - 2.0 * alpha * r + alpha**2 * v)
                ep = problem.e_step(sp)
                if np.isfinite(ep.objective) and ep.objective >= e1.objective:
                    break
                alpha = 0.5 * (alpha - 1.0) if alpha < -1.5 else -1.0
            if alpha < -1.0:
                _record(problem, run, sp, ep, "squarem")
                s0, e0 = sp, ep
                s1 = problem.m_step(sp, ep)
                continue
        s0, e0, s1 = s1, e1, s2
    e1 = problem.e_step(s1)
    _record(problem, run, s1, e1, "em")
    return s1, e1, False


def _secant_step(
    problem: EMProblem, state: EMState, estep: EStep, memo: dict
) -> tuple[EMState, EStep] | None:
    """An extrapolation along the path EM took since the last call, or None.

    A vote's probability depends on ``eta`` and ``mu`` only through
    ``eta (mu - 1/2)``, so ``L`` barely changes when the scale of ``P_eta``
    grows and every ``mu - 1/2`` shrinks alike, and EM crawls along that
    ridge. Over two EM/SQUAREM iterates the fast directions settle and what is
    left of the move points along the ridge. The slopes of ``L`` along that
    move at both ends (Fisher's identity, :meth:`EMProblem.gradient`, no
    E-step; the start's kept in ``memo``) place the maximum of the quadratic
    through them ``t = g1 / (g0 - g1)`` moves further on (at most
    :data:`SECANT_MAX_STEP`). That point is taken when its ``L`` is not below
    ``L(state)``, else once more a quarter of the way there; each try costs one
    E-step. None when the slopes do not call for it or no point was taken.
    """
    v = problem.to_vector(state)
    grad = problem.gradient(state, estep)
    anchor = memo.get("anchor")
    memo["anchor"] = (v, grad)
    if anchor is None:
        return None
    d = v - anchor[0]
    g0, g1 = float(anchor[1] @ d), float(grad @ d)
    if not (np.isfinite(g0) and np.isfinite(g1) and g0 > g1 > 0.0):
        return None
    t = min(g1 / (g0 - g1), SECANT_MAX_STEP)
    lo, hi = problem.vector_bounds()
    for _ in range(2):
        sp = problem.from_vector(np.clip(v + t * d, lo, hi))
        ep = problem.e_step(sp)
        if np.isfinite(ep.objective) and ep.objective >= estep.objective:
            # The next move starts here.
            memo["anchor"] = None
            return sp, ep
        t *= 0.25
    return None


def _finish(steps: Generator) -> tuple[EMState, EStep, bool]:
    """Run an EM generator (:func:`_run_em`) to its end and return its value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _run_starts(
    problem: EMProblem, starts: list[EMState], first: int, screen_iter: int | None, options: dict
) -> tuple[list[tuple[EMState, EStep, bool | None]], list[_Run]]:
    """Run EM from every start; ``(state, estep, converged)`` and the history of each.

    Starts before ``first`` (one given by ``init``) run to the end. With
    ``screen_iter`` the others run that many iterations each, and only the one
    with the highest objective then goes on, along the same path; those left
    behind end at their last iterate with ``converged=None``.
    """
    records = [_Run() for _ in starts]
    steps = [
        _run_em(problem, st, run=run, **options) for st, run in zip(starts, records, strict=True)
    ]
    ends: list[tuple[EMState, EStep, bool | None]] = []
    for k, step in enumerate(steps):
        if screen_iter is None or k < first:
            ends.append(_finish(step))
            continue
        for _ in range(screen_iter):
            try:
                state, estep = next(step)
            except StopIteration as stop:
                ends.append(stop.value)
                break
        else:
            ends.append((state, estep, None))
    if screen_iter is not None:
        k = max(range(first, len(starts)), key=lambda j: ends[j][1].objective)
        if ends[k][2] is None:
            ends[k] = _finish(steps[k])
    return ends, records


def screening_rows(counts: CountTable, size: int | None = None) -> CountTable | None:
    """A fixed subsample of ``size`` rows (default :data:`SCREEN_ROWS`) to screen starts on.

    None when the table has no more rows than that.

    The rows are drawn without replacement by a fixed seed
    (:data:`SCREEN_SEED`) and keep their order; their weights are scaled so that
    they stand for as many users as the whole table, which puts the
    subsample's likelihood on the scale of the whole one against the priors.
    """
    size = SCREEN_ROWS if size is None else size
    n_rows = counts.n_rows
    if n_rows <= size:
        return None
    rows = np.sort(np.random.default_rng(SCREEN_SEED).choice(n_rows, size, replace=False))
    sample = counts.take_rows(rows)
    weight = sample.row_weight * (counts.row_weight.sum() / sample.row_weight.sum())
    return replace(sample, row_weight=weight)


def users_by_weight(
    counts: CountTable, users: int, heavy: int, seed: int = SCREEN_SEED
) -> CountTable:
    """A subsample of rows that stands for the users: ``users`` drawn by weight, heavy rows kept.

    Every row with more than ``heavy`` votes is in with its own weight. Among
    the others ``users`` users are drawn with replacement (a multinomial on the
    rows' weights, seeded by ``seed``); a row drawn ``k`` times stands for
    ``k`` times the light users' count over ``users``. Rows keep their order.
    A subsample of distinct rows drawn uniformly would miss the common light
    rows (one row can stand for a hundred thousand users) and blow up the rare
    heavy ones; this one has the table's log likelihood and curvature to
    within its sampling error.
    """
    is_heavy = counts.votes_per_row() > heavy
    light = np.where(is_heavy, 0.0, counts.row_weight)
    total = float(light.sum())
    draws = np.zeros(counts.n_rows, dtype=np.int64)
    if total > 0:
        draws = np.random.default_rng(seed).multinomial(users, light / total)
    rows = np.flatnonzero((draws > 0) | is_heavy)
    sample = counts.take_rows(rows)
    weight = np.where(is_heavy[rows], counts.row_weight[rows], draws[rows] * (total / users))
    return replace(sample, row_weight=weight)


def _probe_points(
    v: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Each coordinate's central-difference probes ``v +- step (1 + |v|)``, clipped.

    Clipped into ``[lo, hi]``: at a bound the difference is one-sided; its
    width is ``up - down``.
    """
    h = step * (1.0 + np.abs(v))
    return np.minimum(v + h, hi), np.maximum(v - h, lo)


def _hessian(problem: EMProblem, state: EMState) -> np.ndarray:
    """Hessian of ``L`` in :meth:`EMProblem.to_vector`'s coordinates at ``state``.

    Central differences of the Fisher-identity gradient (:meth:`EMProblem.gradient`),
    one-sided at a bound of the box; two E-steps per coordinate. Symmetrised.
    """
    v = problem.to_vector(state)
    ups, downs = _probe_points(v, *problem.vector_bounds(), step=1e-4)
    hess = np.empty((v.size, v.size))
    for i in range(v.size):
        up, down = v.copy(), v.copy()
        up[i], down[i] = ups[i], downs[i]
        s_up, s_down = problem.from_vector(up), problem.from_vector(down)
        g_up = problem.gradient(s_up, problem.e_step(s_up))
        g_down = problem.gradient(s_down, problem.e_step(s_down))
        hess[:, i] = (g_up - g_down) / (up[i] - down[i])
    return 0.5 * (hess + hess.T)


class RidgeMap:
    """Coordinates in which the ridge between the scale of ``P_eta`` and the ``mu`` runs straight.

    A vote depends on ``eta`` and its pair's ``c_k = 2 mu_k - 1`` only through
    their product, so the users pin each ``E[eta] c_k`` down, and ``L`` is
    nearly flat along the curve on which the family's parameters move while
    every ``c_k`` moves against ``E[eta]``. In :meth:`EMProblem.to_vector`'s
    coordinates (``logit c_k`` for each unknown ``mu``) that curve bends
    through every pair's coordinate; here each unknown pair's coordinate is
    ``log(E[eta] c_k)`` instead, the others (the family's, the ties') are
    kept, and the ridge runs along the family's coordinates alone. For the
    independent structure with some ``mu`` unknown; for the others the map
    is the identity.
    """

    def __init__(self, problem: EMProblem) -> None:
        self.problem = problem
        n_pairs = problem.unknown.size if isinstance(problem.structure, IndependentMu) else 0
        # The vector starts with the family's coordinates, then the unknown mu's.
        self.n_family = problem.family.vector_bounds(problem.grid)[0].size
        self.pairs = slice(self.n_family, self.n_family + n_pairs)
        self.active = n_pairs > 0

    def _log_mean(self, fam: np.ndarray) -> float:
        family, grid = self.problem.family, self.problem.grid
        return float(np.log(max(family.mean(family.from_vector(fam, grid)), 1e-300)))

    def forward(self, vec: np.ndarray) -> np.ndarray:
        """Ridge coordinates of a vector of :meth:`EMProblem.to_vector`'s."""
        out = np.array(vec, dtype=float)
        if self.active:
            # log(c) = log(expit(z)) = -log(1 + exp(-z))
            log_c = -np.logaddexp(0.0, -out[self.pairs])
            out[self.pairs] = log_c + self._log_mean(vec[: self.n_family])
        return out

    def inverse(self, coords: np.ndarray) -> np.ndarray:
        """:meth:`EMProblem.to_vector`'s coordinates of ridge coordinates (``c_k`` below 1)."""
        out = np.array(coords, dtype=float)
        if self.active:
            log_c = np.minimum(out[self.pairs] - self._log_mean(out[: self.n_family]), -1e-12)
            out[self.pairs] = log_c - np.log(-np.expm1(log_c))  # logit(c) from log(c)
        return out

    def with_pair_shares(self, vec: np.ndarray, counts: CountTable) -> np.ndarray:
        """``vec`` with each unknown pair's ``E[eta] c_k`` at its share of the votes in ``counts``.

        Summed over users, a pair's votes for its stronger model make a share
        ``1/2 + E[eta] c_k / 2`` of its votes (with ``E[eta]`` weighted by the
        users' votes on it), so ``2 share - 1`` estimates the product that the
        ridge coordinate holds, from every row at no E-step's cost. Shares at
        or below one half put the product at 1e-6.
        """
        if not self.active:
            return np.array(vec, dtype=float)
        coords = self.forward(vec)
        coords[self.pairs] = self.share_products(counts)
        return self.inverse(coords)

    def share_products(self, counts: CountTable) -> np.ndarray:
        """``log(2 share - 1)`` of each unknown pair's votes in ``counts`` (at least log 1e-6).

        What :meth:`with_pair_shares` puts in the ridge coordinates; there a
        product the family's mean cannot carry (``c_k`` above 1) is capped.
        """
        n, s = pair_totals(counts)
        unknown = self.problem.unknown
        share = s[unknown] / np.maximum(n[unknown], 1)
        return np.log(np.clip(2.0 * share - 1.0, 1e-6, 1.0))

    def jacobian(self, vec: np.ndarray) -> np.ndarray:
        """``d vec / d coords`` at ``vec`` (:meth:`EMProblem.to_vector`'s coordinates).

        The derivative of ``log E[eta]`` in the family's coordinates is a
        central difference, taken between the points the family's box clips
        the two probes to.
        """
        jac = np.eye(vec.size)
        if not self.active:
            return jac
        # z = logit(c), c = exp(u - log E[eta]): dz/du = 1 / (1 - c).
        slope = 1.0 / (1.0 - special.expit(vec[self.pairs]))
        jac[self.pairs, self.pairs] = np.diag(slope)
        jac[self.pairs, : self.n_family] = -np.outer(slope, self.d_log_mean(vec[: self.n_family]))
        return jac

    def d_log_mean(self, fam: np.ndarray) -> np.ndarray:
        """Gradient of ``log E[eta]`` in the family's coordinates ``fam``.

        Central differences, taken between the points the family's box clips
        the two probes to (0 for a coordinate the box holds on both sides).
        """
        family, grid = self.problem.family, self.problem.grid
        out = np.zeros(fam.size)
        # The probes unclipped here: the family's own round trip clips them.
        ups, downs = _probe_points(fam, -np.inf, np.inf, step=1e-6)
        for j in range(fam.size):
            up, down = fam.copy(), fam.copy()
            up[j], down[j] = ups[j], downs[j]
            up = family.to_vector(family.from_vector(up, grid))
            down = family.to_vector(family.from_vector(down, grid))
            if up[j] > down[j]:
                out[j] = (self._log_mean(up) - self._log_mean(down)) / (up[j] - down[j])
        return out


class _ProfileFailed(Exception):
    """A row's polynomial marginal fell below what the profile can trust."""


class ProductProfile:
    """``L`` along the family's coordinates with every pair's product ``E[eta] c_k`` held.

    A vote depends on ``eta`` and its pair's ``c_k = 2 mu_k - 1`` only through
    ``eta c_k``. With every product ``P_k = E[eta] c_k`` held at its vote
    share (:meth:`RidgeMap.share_products`; every pair's
    ``mu`` unknown, :class:`RidgeMap`'s coordinates), moving the family moves
    every ``c_k`` by the same factor, and a row's likelihood is a fixed
    polynomial in ``x = lambda eta`` with ``lambda = max_k P_k / E[eta]``
    (below 1 while every ``c_k`` is): each vote's probability is
    ``1/2 + x rho_k / 2`` with ``rho_k = P_k / max P``. The rows of at most
    :data:`PROFILE_MAX_VOTES` votes keep their Bernstein coefficients in ``x``
    (:func:`attnmodel.model.kernels.bernstein_coefs`), and each evaluation
    contracts them with the moments ``sum_g mass_g x_g^k (1 - x_g)^(n - k)``
    at the nodes' ``x_g = lambda eta_g``
    (:func:`attnmodel.model.kernels.bernstein_moments`) and their central
    differences in each family coordinate; the heavier rows take the E-step.
    The value is ``L`` at :meth:`state`, exactly; the gradient is the
    profile's (Fisher's identity on the heavy rows, in :class:`RidgeMap`'s
    coordinates).

    Use :meth:`build`, which returns None where the profile does not apply:
    atoms, ties modelled, a structure on ``mu``, a pair of known ``mu``, no
    row light enough, or more coefficients to keep than
    :data:`PROFILE_MAX_COEFS`.
    """

    def __init__(self, problem: EMProblem, vec: np.ndarray, light: np.ndarray, n_max: int):
        from attnmodel.model.kernels import bernstein_coefs

        self.problem = problem
        self.ridge = RidgeMap(problem)
        self.coords = self.ridge.forward(vec)
        self.coords[self.ridge.pairs] = self.ridge.share_products(problem.counts)
        self.n_family = self.ridge.n_family
        counts = problem.counts
        products = np.zeros(counts.n_pairs)
        products[problem.unknown] = np.exp(self.coords[self.ridge.pairs])
        self.p_max = float(products.max())
        rho = products / self.p_max
        half = np.full(counts.n_pairs, 0.5)
        win = np.column_stack([half, (1.0 + rho) / 2])
        loss = np.column_stack([half, (1.0 - rho) / 2])
        self.coefs, self.start, log_scale = bernstein_coefs(counts, light, win, loss)
        self.weight = np.ascontiguousarray(counts.row_weight[light], dtype=np.float64)
        self.log_scale = float(self.weight @ log_scale)
        self.n_max = n_max
        heavy = np.setdiff1d(np.arange(counts.n_rows), light, assume_unique=True)
        self.heavy = problem.on_rows(counts.take_rows(heavy)) if heavy.size else None
        self.lo, self.hi = problem.family.vector_bounds(problem.grid)

    @classmethod
    def build(cls, problem: EMProblem, vec: np.ndarray) -> ProductProfile | None:
        """The profile with the products at the vote shares, from ``vec``'s family; or None.

        ``vec`` is in :meth:`EMProblem.to_vector`'s coordinates; its family is
        where :meth:`maximise` starts (or, if the products need a higher
        ``E[eta]``, :meth:`_admissible`), and the products held are every
        row's vote shares (:meth:`RidgeMap.share_products`).
        """
        counts = problem.counts
        if (
            problem.family.discrete
            or problem.tie_term is not None
            or not RidgeMap(problem).active
            or problem.unknown.size != counts.n_pairs
        ):
            return None
        votes = counts.votes_per_row()
        n_max = min(PROFILE_MAX_VOTES, int(votes.max()))
        light = np.flatnonzero(votes <= n_max)
        if n_max < 1 or light.size == 0:
            return None
        if int(votes[light].sum()) + light.size > PROFILE_MAX_COEFS:
            return None
        return cls(problem, vec, light, n_max)

    def state(self, fam: np.ndarray) -> EMState:
        """The state at family coordinates ``fam`` with the products held."""
        coords = self.coords.copy()
        coords[: self.n_family] = fam
        return self.problem.from_vector(self.ridge.inverse(coords))

    def _moments(self, fam: np.ndarray, shift: float | None = None):
        """``(moments, shift)`` of the light rows at ``fam``; None where ``lambda >= 1``.

        The masses are ``exp(log mass - shift)``; ``shift`` defaults to the
        largest log mass.
        """
        from attnmodel.model.kernels import bernstein_moments

        problem = self.problem
        grid = problem.grid
        params = problem.family.from_vector(fam, grid)
        lam = self.p_max / problem.family.mean(params)
        if not lam < 1.0:
            return None
        log_mass = problem._grid_log_mass(params)
        if shift is None:
            shift = float(np.max(log_mass))
        log_x, log_1mx = np.log(lam) + grid.log_eta, np.log1p(-lam * grid.eta)
        return bernstein_moments(log_x, log_1mx, np.exp(log_mass - shift), self.n_max), shift

    def _probes(self, fam: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Central-difference probes of coordinate ``j`` (:func:`_probe_points`) and their width."""
        ups, downs = _probe_points(fam, self.lo, self.hi)
        up, down = fam.copy(), fam.copy()
        up[j], down[j] = ups[j], downs[j]
        return up, down, up[j] - down[j]

    def light_part(self, fam: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The light rows' log likelihood and its gradient at ``fam``; None if ``lambda >= 1``."""
        from attnmodel.model.kernels import bernstein_sums

        base = self._moments(fam)
        if base is None:
            return None
        moments, shift = base
        tables = [moments]
        for j in range(fam.size):
            up, down, width = self._probes(fam, j)
            m_up, m_down = self._moments(up, shift), self._moments(down, shift)
            if m_up is None or m_down is None:
                return None
            tables.append((m_up[0] - m_down[0]) / width)
        sums, failed = bernstein_sums(self.coefs, self.start, self.weight, np.stack(tables))
        if failed:
            raise _ProfileFailed(f"{failed} rows' marginals below 1e-250")
        return sums[0] + self.log_scale + shift * float(self.weight.sum()), sums[1:]

    def value(self, fam: np.ndarray) -> tuple[float, np.ndarray, float, EMState] | None:
        """``(L, gradient, log prior, state)`` at ``fam``; None where some ``c_k`` would reach 1."""
        light = self.light_part(fam)
        if light is None:
            return None
        value, grad = light
        problem = self.problem
        state = self.state(fam)
        log_prior = problem.log_prior(state)
        if self.heavy is not None:
            e = self.heavy.e_step(state)
            value += e.objective
            jac = self.ridge.jacobian(problem.to_vector(state))
            grad = grad + (jac.T @ self.heavy.gradient(state, e))[: self.n_family]
        else:
            value += log_prior
            grad = grad.copy()
            for j in range(fam.size):
                up, down, width = self._probes(fam, j)
                grad[j] += (
                    problem.log_prior(self.state(up)) - problem.log_prior(self.state(down))
                ) / width
        return value, grad, log_prior, state

    def _lam(self, fam: np.ndarray) -> float:
        family = self.problem.family
        return self.p_max / family.mean(family.from_vector(fam, self.problem.grid))

    def _admissible(self, fam: np.ndarray) -> np.ndarray | None:
        """``fam``, or where raising ``E[eta]`` from it first puts ``lambda`` below 0.9.

        The vote shares can ask for products that the family's mean at ``fam``
        cannot carry (some ``c_k`` would pass 1); steps of 1/2 along the
        gradient of ``log E[eta]`` (:meth:`RidgeMap.d_log_mean`) find a family
        that can. None if none is found within the family's box in 100 steps.
        """
        for _ in range(100):
            if self._lam(fam) < 0.9:
                return fam
            grad = self.ridge.d_log_mean(fam)
            if not np.any(grad):
                return None
            fam = np.clip(fam + 0.5 * grad / np.max(np.abs(grad)), self.lo, self.hi)
        return None

    def _light_hessian(self, fam: np.ndarray) -> np.ndarray | None:
        """The light rows' Hessian near ``fam``, in one pass over their coefficients.

        ``H_jk = sum_i w_i (Z_i^(jk) / Z_i - Z_i^(j) Z_i^(k) / Z_i^2)``, the
        moments' first and second derivatives by central differences of step
        ``h_j = 1e-4 (1 + |fam_j|)`` (truncation about ``h^2``, rounding about
        ``1e-15 / h^2``: 1e-7 relative, enough for the model BFGS starts
        from), about ``fam`` moved ``h_j`` inside the family's box where it
        is nearer a bound. None where a probe has ``lambda >= 1``.
        """
        from attnmodel.model.kernels import bernstein_sums

        n = fam.size
        h = 1e-4 * (1.0 + np.abs(fam))
        centre = np.clip(fam, self.lo + h, self.hi - h)
        base = self._moments(centre)
        if base is None:
            return None
        m0, shift = base
        step = np.diag(h)

        def at(*moves: np.ndarray) -> np.ndarray:
            got = self._moments(centre + sum(moves), shift)
            if got is None:
                raise _ProfileFailed("lambda reaches 1 beside the point")
            return got[0]

        try:
            plus = [at(step[j]) for j in range(n)]
            minus = [at(-step[j]) for j in range(n)]
            first = [(plus[j] - minus[j]) / (2.0 * h[j]) for j in range(n)]
            pairs = [(j, k) for j in range(n) for k in range(j, n)]
            second = [
                (plus[j] - 2.0 * m0 + minus[j]) / h[j] ** 2
                if j == k
                else (
                    at(step[j], step[k]) - at(step[j], -step[k])
                    - at(-step[j], step[k]) + at(-step[j], -step[k])
                ) / (4.0 * h[j] * h[k])
                for j, k in pairs
            ]  # fmt: skip
        except _ProfileFailed:
            return None
        tables = np.stack([m0, *first, *second])
        sums, failed = bernstein_sums(self.coefs, self.start, self.weight, tables, outer=n)
        if failed:
            raise _ProfileFailed(f"{failed} rows' marginals below 1e-250")
        products = sums[1 + n + len(pairs) :].reshape(n, n)
        hess = np.empty((n, n))
        for (j, k), value in zip(pairs, sums[1 + n : 1 + n + len(pairs)], strict=True):
            hess[j, k] = hess[k, j] = value - products[j, k]
        return hess

    def maximise(self, run: _Run, scale: float) -> EMState | None:
        """Climb the profile from the coordinates it was built at; the state reached.

        BFGS ascent, its model starting at the light rows' Hessian with the
        eigenvalues' absolute values (positive definite), steps of at most 1
        per coordinate halved until ``L`` does not drop, until the gradient
        per vote (``scale`` votes) is below :data:`PROFILE_GTOL`. Each kept
        step is recorded in ``run`` as ``"profile"`` (its ``L`` is exact).
        None when a row's marginal fell below what the polynomials hold or
        the first point is not admissible.
        """
        problem = self.problem
        fam = self._admissible(self.coords[: self.n_family].copy())
        if fam is None:
            return None
        try:
            here = self.value(fam)
            hess = self._light_hessian(fam)
            if here is None or hess is None:
                return None
            value, grad, log_prior, state = here
            w, basis = np.linalg.eigh(-hess)
            w = np.maximum(np.abs(w), 1e-6 * max(float(np.max(np.abs(w))), 1e-300))
            model = (basis * w) @ basis.T
            for _ in range(PROFILE_MAX_STEPS):
                held = ((fam <= self.lo) & (grad < 0)) | ((fam >= self.hi) & (grad > 0))
                if np.max(np.abs(np.where(held, 0.0, grad)), initial=0.0) <= PROFILE_GTOL * scale:
                    break
                free = ~held
                d = np.zeros_like(fam)
                d[free] = np.linalg.solve(model[np.ix_(free, free)], grad[free])
                d *= min(1.0, PROFILE_MAX_MOVE / max(float(np.max(np.abs(d))), 1e-300))
                t = 1.0
                for _ in range(9):
                    new = self.value(np.clip(fam + t * d, self.lo, self.hi))
                    if new is not None and np.isfinite(new[0]) and new[0] >= value:
                        break
                    t *= 0.5
                else:
                    break
                step = np.clip(fam + t * d, self.lo, self.hi) - fam
                y = grad - new[1]
                if y @ step > 1e-12 * np.linalg.norm(y) * np.linalg.norm(step):
                    ms = model @ step
                    model = model - np.outer(ms, ms) / (step @ ms) + np.outer(y, y) / (y @ step)
                fam = fam + step
                value, grad, log_prior, state = new
                _record_value(problem, run, state, value - log_prior, log_prior, "profile")
        except _ProfileFailed:
            return None
        return state


def _quasi_newton(
    problem: EMProblem,
    state: EMState,
    estep: EStep,
    hess: np.ndarray,
    run: _Run,
    max_steps: int = CURVED_MAX_STEPS,
    hold: np.ndarray | None = None,
) -> tuple[EMState, EStep, bool]:
    """BFGS ascent of ``L`` from ``state``, its curvature model starting at ``hess``.

    ``hess`` is the Hessian in :meth:`EMProblem.to_vector`'s coordinates; the
    steps are taken in :class:`RidgeMap`'s, where ``L``'s long ridge runs
    straight. The model is ``-hess`` carried into them, with its eigenvalues
    replaced by their absolute values and held above a millionth of the
    largest (positive definite: an ascent direction whatever ``hess`` is;
    along a direction of positive curvature, away from a maximum, it climbs
    the slope scaled by that curvature), and each kept step updates it by
    BFGS with the change of the Fisher-identity gradient. A step moves no
    coordinate by more than 1 (a ``mu`` thrown to an end of (1/2, 1) is where
    the coordinates go flat) and is halved until ``L`` does not drop (at most
    8 times); each try costs one E-step, recorded as ``"bfgs"``. Converged at
    the polish's gradient test (:data:`POLISH_GTOL` per vote, in
    :meth:`EMProblem.to_vector`'s coordinates); not converged when no step
    could be kept or after ``max_steps``. The coordinates in ``hold`` (a mask
    over :class:`RidgeMap`'s) stay where they are; then the gradient test is
    on the others, in those coordinates.
    """
    scale = _vote_scale(problem)
    lo, hi = problem.vector_bounds()
    ridge = RidgeMap(problem)
    v = problem.to_vector(state)
    jac = ridge.jacobian(v)
    w, basis = np.linalg.eigh(-(jac.T @ hess @ jac))
    w = np.maximum(np.abs(w), 1e-6 * max(float(np.max(np.abs(w))), 1e-300))
    model = (basis * w) @ basis.T
    hold = np.zeros(v.size, dtype=bool) if hold is None else hold

    def stationary(state, estep, grad_v, grad):
        # The family's coordinates and bounds are the same in both systems.
        test = np.where(hold, 0.0, grad) if hold.any() else grad_v
        return problem.is_stationary(state, estep, scale, POLISH_GTOL, grad=test)

    grad_v = problem.gradient(state, estep)
    grad = jac.T @ grad_v
    u = ridge.forward(v)
    for _ in range(max_steps):
        if stationary(state, estep, grad_v, grad):
            return state, estep, True
        # A coordinate on a bound that the gradient pushes outward stays there; the
        # step is the model's in the others (a clipped step would not climb). Only
        # the family's coordinates have bounds, and the map keeps them.
        free = ~problem.held_on_bounds(v, grad) & ~hold
        d = np.zeros_like(u)
        d[free] = np.linalg.solve(model[np.ix_(free, free)], grad[free])
        d *= min(1.0, 1.0 / max(float(np.max(np.abs(d))), 1e-300))
        t = 1.0
        for _ in range(9):
            sp = problem.from_vector(np.clip(ridge.inverse(u + t * d), lo, hi))
            ep = problem.e_step(sp)
            if np.isfinite(ep.objective) and ep.objective >= estep.objective:
                break
            t *= 0.5
        else:
            return state, estep, False
        _record(problem, run, sp, ep, "bfgs")
        v = problem.to_vector(sp)
        jac = ridge.jacobian(v)
        gv_new = problem.gradient(sp, ep)
        g_new = jac.T @ gv_new
        u_new = ridge.forward(v)
        step = u_new - u
        y = grad - g_new
        if y @ step > 1e-12 * np.linalg.norm(y) * np.linalg.norm(step):
            ms = model @ step
            model = model - np.outer(ms, ms) / (step @ ms) + np.outer(y, y) / (y @ step)
        state, estep, grad, grad_v, u = sp, ep, g_new, gv_new, u_new
    return state, estep, stationary(state, estep, grad_v, grad)


def _curved_finish(
    problem: EMProblem, state: EMState, run: _Run, options: dict
) -> tuple[EMState, EStep, bool, int]:
    """The best screened start run to the maximum on every row, by curvature.

    EM crawls along the ridge between the scale of ``P_eta`` and the ``mu``
    (a vote depends on them only through ``eta (mu - 1/2)``), so on a large
    table it takes many E-steps over every row. Here a subsample that stands
    for the users (:func:`users_by_weight`) gives the curvature:

    1. every row's vote shares place the ridge's products ``E[eta] c_k``
       (:meth:`RidgeMap.with_pair_shares`); with them held, what is left of the
       ridge runs along the family's coordinates, and :class:`ProductProfile`
       climbs it on every row at a fraction of an E-step per point (its
       steps are recorded as ``"profile"``);
    2. from there quasi-Newton (:func:`_quasi_newton`) climbs on every row,
       starting from the subsample's Hessian; it mostly needs one E-step over
       every row per step.

    Where the profile does not apply (:meth:`ProductProfile.build`), the
    start of step 2 is the better on every row of two found on the
    subsample (:func:`_sample_candidates`): its maximum, and that point with
    the products at the vote shares and the other coordinates climbed on
    the subsample (the subsample alone places the products only to within
    its sampling error, which the flat ridge turns into a long way off).

    Should that stall short of the gradient test, EM goes on from its best
    point as :func:`_run_starts_on_sample` runs it (``stationary_stop``,
    ``line_search``). The subsample's steps are recorded in ``run``; the
    last value returned is how many, for the caller to prefix them
    ``sample_``.
    """
    sample = problem.on_rows(users_by_weight(problem.counts, CURVED_USERS, CURVED_HEAVY_VOTES))
    n_sample = len(run.records)
    ridge = RidgeMap(problem)
    profile = ProductProfile.build(problem, problem.to_vector(state)) if ridge.active else None
    found = None if profile is None else profile.maximise(run, _vote_scale(problem))
    del profile
    if found is not None:
        state, hess, e = found, _hessian(sample, found), problem.e_step(found)
    else:
        del run.records[n_sample:]
        state, hess, e = _sample_candidates(problem, sample, state, run)
        n_sample = len(run.records)
    _record(problem, run, state, e, "start")
    state, e, converged = _quasi_newton(problem, state, e, hess, run)
    if not converged:
        steps = _run_em(problem, state, run=run, stationary_stop=True, line_search=True, **options)
        state, e, converged = _finish(steps)
    return state, e, converged, n_sample


def _sample_candidates(
    problem: EMProblem, sample: EMProblem, state: EMState, run: _Run
) -> tuple[EMState, np.ndarray, EStep]:
    """The better on every row of two starts found on ``sample``: it, its Hessian there, its E-step.

    Where :class:`ProductProfile` does not apply: the subsample's maximum
    from ``state``, and that point with every pair's product at its vote
    share and the other coordinates climbed on the subsample.
    """
    e = sample.e_step(state)
    state, e, _ = _quasi_newton(sample, state, e, _hessian(sample, state), run)
    hess = _hessian(sample, state)
    candidates = [(state, hess)]
    ridge = RidgeMap(problem)
    if ridge.active:
        shared = problem.from_vector(
            ridge.with_pair_shares(problem.to_vector(state), problem.counts)
        )
        hold = np.zeros(hess.shape[0], dtype=bool)
        hold[ridge.pairs] = True
        e = sample.e_step(shared)
        shared, e, _ = _quasi_newton(sample, shared, e, hess, run, hold=hold)
        candidates.append((shared, _hessian(sample, shared)))
    ends = [(st, h, problem.e_step(st)) for st, h in candidates]
    return max(ends, key=lambda end: end[2].objective)


def _run_starts_on_sample(
    problem: EMProblem,
    sample: EMProblem,
    starts: list[EMState],
    first: int,
    screen_iter: int,
    options: dict,
) -> tuple[list[tuple[EMState, EStep, bool | None]], list[_Run]]:
    """:func:`_run_starts` with the generated starts screened on a subsample of rows.

    Starts before ``first`` run to the end on every row. The generated ones
    run ``screen_iter`` iterations each on ``sample`` (the same problem on
    :func:`screening_rows`), and EM goes on from the best one's last iterate
    on every row, stopping also at the first iterate that passes the
    polish's gradient test (``stationary_stop`` of :func:`_run_em`), and
    extrapolating along its path there (``line_search``, :func:`_secant_step`). The
    paths on the subsample are recorded with their steps prefixed
    ``sample_`` (their objectives are the subsample's, scaled to the whole
    table's users); the best start's path goes on with the steps on every
    row. Those left behind end with ``converged=None`` and, so that no
    subsample objective is compared with a whole one, an objective of ``-inf``.
    """
    ends: list[tuple[EMState, EStep, bool | None]] = []
    records: list[_Run] = []
    for st in starts[:first]:
        run = _Run()
        ends.append(_finish(_run_em(problem, st, run=run, **options)))
        records.append(run)
    sub_records = [_Run() for _ in starts[first:]]
    sub_ends = []
    for st, run in zip(starts[first:], sub_records, strict=True):
        steps = _run_em(sample, st, run=run, **options)
        end = None
        for _ in range(screen_iter):
            try:
                end = (*next(steps), None)
            except StopIteration as stop:
                end = stop.value
                break
        sub_ends.append(end)
    k = max(range(len(sub_ends)), key=lambda j: sub_ends[j][1].objective)
    for j, (st, e, _) in enumerate(sub_ends):
        run = sub_records[j]
        n_sample = len(run.records)
        if j != k:
            ends.append((st, e._replace(objective=-np.inf), None))
        elif problem.to_vector(st).size <= CURVED_MAX_COORDS:
            *end, n_sample = _curved_finish(problem, st, run, options)
            ends.append(tuple(end))
        else:
            steps = _run_em(problem, st, run=run, stationary_stop=True, line_search=True, **options)
            ends.append(_finish(steps))
        for row in run.records[:n_sample]:
            row["step"] = "sample_" + row["step"]
        records.append(run)
    return ends, records


def _polish(
    problem: EMProblem, state: EMState, estep: EStep, run: _Run, *, max_iter: int, tol: float
) -> tuple[EMState, EStep, bool]:
    """Finish a slowly converging EM run by quasi-Newton on the same objective.

    EM crawls where the data barely separate two parameters (``mu`` against the
    scale of ``eta`` when ``mu`` is unknown, nearby mixture components). L-BFGS
    on ``L`` with Fisher-identity gradients reaches the same maximum in a few
    dozen E-steps. Only iterates that do not lower ``L`` are recorded, so the
    history stays monotone.
    """
    from scipy import optimize

    scale = _vote_scale(problem)
    seen: dict[bytes, tuple[EMState, EStep]] = {}
    best = [state, estep]

    def fun(v):
        st = problem.from_vector(v)
        e = problem.e_step(st)
        seen[v.tobytes()] = (st, e)
        if not np.isfinite(e.objective):
            return 1e300, np.zeros_like(v)
        return -e.objective / scale, -problem.gradient(st, e) / scale

    def callback(xk):
        hit = seen.get(np.asarray(xk).tobytes())
        if hit is None:
            hit = (problem.from_vector(xk), problem.e_step(problem.from_vector(xk)))
        if hit[1].objective >= best[1].objective:
            best[0], best[1] = hit
            _record(problem, run, hit[0], hit[1], "lbfgs")

    lo, hi = problem.vector_bounds()
    left = max_iter
    for _ in range(POLISH_RESTARTS + 1):
        before = best[1].objective
        res = optimize.minimize(
            fun,
            np.clip(problem.to_vector(best[0]), lo, hi),
            jac=True,
            method="L-BFGS-B",
            bounds=optimize.Bounds(lo, hi),
            callback=callback,
            # It stops on the projected gradient per vote (gtol) or when the line search
            # gains nothing more: a test on the relative gain (ftol) ended it after one
            # short step along a flat ridge, up to 1e-4 short of the maximum in the parameters.
            options={"maxiter": left, "ftol": 0.0, "gtol": POLISH_GTOL},
        )
        callback(res.x)
        st, e = best
        # Converged when the gradient per vote is within the stationarity test's
        # default (1e-7; L-BFGS stops short of gtol there only when its line search
        # can gain nothing more). Not on L-BFGS-B's success alone: with ftol = 0 it
        # also reports success ("relative reduction of f <= factr * epsmch") when an
        # iteration gained nothing, and that happens far from the maximum when the
        # coordinates are badly scaled (a mu near 1/2 or 1, where the gradient of its
        # logit vanishes). From such a point a fresh start, without the curvature
        # pairs that misled it, goes on climbing.
        if problem.is_stationary(st, e, scale):
            return st, e, True
        left -= int(res.nit)
        if left <= 0 or not e.objective > before:
            break
    return st, e, False


def _vote_scale(problem: EMProblem) -> float:
    """The number of votes, by which the polish and the stationarity test divide ``L``."""
    c = problem.counts
    return float(c.row_weight @ c.votes_per_row())


@dataclass
class EMResult:
    """A fitted MAP-EM model (fitted attributes end in ``_`` as in scikit-learn).

    Attributes
    ----------
    family : Family
    params_ : dict
        Family parameters at the best start.
    mu_ : pandas.Series
        Win rate per pair (known values included).
    mu_spec : MuSpec
    objective_, log_likelihood_, log_prior_ : float
    converged_ : bool
    n_iter_ : int
        Iterates recorded in the best run, the start excluded.
    history_ : pandas.DataFrame
        Every iterate of the best run: objective, log-likelihood, log prior,
        parameters and ``mu``.
    runs_ : list of pandas.DataFrame
        The history of every start (a start left behind at the screening of
        starts, see ``screen_iter`` of :func:`fit_em`, ends there).
    best_start_ : int
    estep_ : EStep
        Final E-step at the returned parameters, with the posterior matrix (none
        when it would hold more than :data:`FINAL_POSTERIOR_CELLS` values; the
        per-user summaries then form it when asked).
    problem : EMProblem
    data : object
        The data the model was fitted to (a :class:`attnmodel.data.votes.VoteData`).
    settings : dict
    mu_structure : IndependentMu, PooledMu or BradleyTerryMu
        Structure on ``mu`` (:mod:`attnmodel.model.mu_structure`).
    mu_hyper_ : ndarray or None
        Its parameters at the estimate (see :class:`EMState`).
    mu_structure_reason : str
        Why this structure: chosen by the caller or by the data's rule.
    ties_ : TieParams or None
        Tie parameters when ties are modelled (:mod:`attnmodel.model.ties`).
    """

    family: Family
    params_: dict[str, Any]
    mu_: pd.Series
    mu_spec: MuSpec
    objective_: float
    log_likelihood_: float
    log_prior_: float
    converged_: bool
    n_iter_: int
    history_: pd.DataFrame
    runs_: list[pd.DataFrame]
    best_start_: int
    estep_: EStep
    problem: EMProblem
    data: Any
    settings: dict[str, Any]
    mu_structure: Any = None
    mu_hyper_: np.ndarray | None = None
    mu_structure_reason: str = ""
    ties_: Any = None

    @property
    def state_(self) -> EMState:
        """The fitted parameters as an :class:`EMState`."""
        return EMState(self.params_, self.mu_.to_numpy(), self.mu_hyper_, self.ties_)

    def posterior(self, eta_star: float = 0.5, hdi_prob: float = 0.94):
        """Per-user attentiveness summaries (:func:`attnmodel.posterior.users.user_posterior`)."""
        from attnmodel.posterior.users import user_posterior

        return user_posterior(self, eta_star=eta_star, hdi_prob=hdi_prob)

    def summary(self) -> str:
        """Human-readable account of the fit."""
        lines = [
            f"MAP-EM fit, family {self.family.name}"
            + (
                f" (K={self.family.n_components})"
                if self.family.discrete or self.family.n_components > 1
                else ""
            ),
            f"  converged: {self.converged_} after {self.n_iter_} iterations "
            f"(best of {len(self.runs_)} starts: start {self.best_start_})",
            f"  log posterior {self.objective_:.6f} = log-likelihood {self.log_likelihood_:.6f}"
            f" + log prior {self.log_prior_:.6f}",
            "  parameters:",
        ]
        lines += [f"    {k} = {v:.6g}" for k, v in self.family.flat(self.params_).items()]
        lines.append("  mu:")
        structure = self.mu_structure or IndependentMu()
        if isinstance(structure, IndependentMu):
            desc = self.mu_spec.describe()
            lines += [f"    {p} = {v:.6g}  ({desc[p]})" for p, v in self.mu_.items()]
        else:
            lines += [f"    {p} = {v:.6g}" for p, v in self.mu_.items()]
            lines.append(f"  mu structure {structure.name} ({self.mu_structure_reason}):")
            labels = hyper_labels(structure)
            lines += [f"    {k} = {v:.6g}" for k, v in zip(labels, self.mu_hyper_, strict=True)]
        if self.ties_ is not None:
            lines.append("  ties (modelled):")
            lines += [f"    {k} = {v:.6g}" for k, v in self.ties_.flat().items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EMResult(family={self.family.name!r}, converged={self.converged_}, "
            f"n_iter={self.n_iter_}, objective={self.objective_:.6f})"
        )


def fit_em(
    data,
    family: str | Family = "beta",
    *,
    mu: float | dict[str, float] | None = None,
    mu_prior=None,
    priors=None,
    mu_structure=None,
    n_components: int | None = None,
    n_init: int = 4,
    max_iter: int = 5000,
    tol: float = 1e-13,
    xtol: float = 1e-8,
    accelerate: bool = True,
    polish_after: int | None = 30,
    screen_iter: int | None = 10,
    seed: int | None = 0,
    init: dict[str, Any] | None = None,
    grid: LogitGrid | None = None,
    engine: str = "auto",
    warn: bool = True,
) -> EMResult:
    """Fit ``P_eta`` (and unknown ``mu``) by MAP-EM.

    Parameters
    ----------
    data : VoteData
        Votes (anything with ``counts`` and ``pairs`` attributes). A DataFrame
        or a path is refused with a :class:`~attnmodel.errors.VoteDataTypeError`
        naming :meth:`VoteData.from_frame` or :meth:`VoteData.from_file`.
    family : str or Family
        ``"two_point"``, ``"k_point"``, ``"beta"``, ``"beta_mixture"`` or
        ``"logistic_normal_mixture"``.
    mu : float or dict, optional
        Known win rates; see :func:`attnmodel.model.priors.resolve_mu`.
    mu_prior : BetaPrior, tuple or dict, optional
        Prior of the unknown win rates (default: ``2 mu - 1 ~ Beta(2, 2)``).
    priors : dict of str to attnmodel.model.priors.Prior, or "flat", optional
        Priors of the family's parameters (default:
        :func:`attnmodel.model.priors.default_priors`, weakly informative and
        away from the admissible box's edges; ``"flat"``: flat on the box, which
        makes EM maximum likelihood in them). The estimate is the posterior
        mode in the family's own parameters (for Beta, the shapes). They, and the ``mu``
        priors, are those the PyMC model of
        :func:`attnmodel.model.pymc_model.build_model` states, evaluated with
        numpy (:class:`attnmodel.model.priors.ModelPrior`), so EM maximises the
        posterior that NUTS samples without importing PyMC (a distribution
        without a numpy density in :data:`attnmodel.model.priors.NUMPY_PRIORS`
        is evaluated by PyMC's ``logp``, which then imports PyMC).
    mu_structure : {"independent", "pooled", "bradley_terry", "auto"} or structure, optional
        Structure on ``mu`` across pairs (:mod:`attnmodel.model.mu_structure`);
        None or ``"auto"`` chooses from the data
        (:func:`~attnmodel.model.mu_structure.choose_mu_structure`). ``mu_prior``
        applies to ``"independent"`` only.
    n_components : int, optional
        Components of ``k_point`` and the mixtures.
    n_init : int
        Number of starts: one moment-based, the others random (seeded).
    max_iter : int
        Iteration cap per start; a start that reaches it triggers a
        :class:`ConvergenceWarning`.
    tol, xtol : float
        Stop when one EM step raises ``L`` by at most ``tol * (1 + |L|)`` and
        moves no unconstrained coordinate by more than ``xtol``.
    accelerate : bool
        Use SQUAREM extrapolation (monotone-safeguarded).
    polish_after : int or None
        After this many EM iterations without convergence, finish by L-BFGS on
        the same objective (see :func:`_polish`); None runs EM alone up to
        ``max_iter``.
    screen_iter : int or None
        With ``n_init > 1``, every generated start first runs this many
        iterations; only the one with the highest objective then runs on to
        convergence, and the others' paths end there (``runs_`` keeps them;
        ``settings["all_converged"]`` has None for them). EM never lowers the
        objective, so the returned start is the best of all recorded iterates.
        A start given by ``init`` always runs to the end. None runs every start
        to the end. On a table of more than :data:`SCREEN_ROWS` distinct rows
        the screening runs on a fixed subsample of them
        (:func:`screening_rows`), and the best start goes on from there on
        every row (see :func:`_run_starts_on_sample`; the subsample's steps
        are named ``sample_...`` in ``runs_`` and ``history_``).
    seed : int, optional
        Seeds the random starts; each start gets its own child seed.
    init : dict, optional
        Parameters of an extra first start (``mu`` may be included under the
        key ``"mu"`` as a dict pair -> value).
    grid : LogitGrid, optional
        Quadrature for continuous families (default from the data).
    engine : {"auto", "numpy", "numba"}
        E-step implementation (``"auto"`` compiles only for large tables).
    warn : bool
        Emit a :class:`ConvergenceWarning` when the best start did not converge,
        and a :class:`~attnmodel.errors.BoundaryWarning` for each reason the
        fit may be degenerate (:func:`attnmodel.model.checks.fit_warnings`).

    Returns
    -------
    EMResult
    """
    data = require_vote_data(data, "fit_em")
    fam = get_family(family, n_components)
    spec = resolve_mu(list(data.pairs), mu, mu_prior)
    structure, structure_reason = resolve_mu_structure(mu_structure, data, mu, mu_prior)
    problem = EMProblem(data.counts, fam, spec, grid, engine, structure=structure)
    problem.prior = ModelPrior(fam, spec, problem.grid, priors)
    if n_init < 1:
        raise ValueError("n_init must be >= 1")
    if screen_iter is not None and screen_iter < 1:
        raise ValueError(f"screen_iter must be >= 1 or None, got {screen_iter}")
    seeds = np.random.SeedSequence(seed).spawn(n_init)
    starts: list[EMState] = []
    if init is not None:
        init = dict(init)
        mu_init = init.pop("mu", None)
        first = problem.initial_state(0, np.random.default_rng(0))
        m0 = first.mu.copy()
        if mu_init is not None:
            if isinstance(structure, BradleyTerryMu):
                raise ValueError("init cannot give mu under mu_structure='bradley_terry'")
            for p, v in mu_init.items():
                m0[spec.pairs.index(str(p))] = float(v)
        starts.append(EMState(fam.validate(init), m0, first.mu_hyper, first.ties))
    for k in range(n_init):
        starts.append(problem.initial_state(k, np.random.default_rng(seeds[k])))

    from attnmodel.model.kernels import one_blas_thread

    t0 = time.perf_counter()
    options = dict(
        max_iter=max_iter, tol=tol, xtol=xtol, accelerate=accelerate, polish_after=polish_after
    )
    # The generated starts are screened when there are several (see _run_starts).
    first = 0 if init is None else 1
    screen = screen_iter is not None and n_init > 1
    rows = screening_rows(data.counts) if screen else None
    with one_blas_thread():
        if rows is None:
            ends, records = _run_starts(
                problem, starts, first, screen_iter if screen else None, options
            )
        else:
            sample = problem.on_rows(rows)
            ends, records = _run_starts_on_sample(
                problem, sample, starts, first, screen_iter, options
            )
        k_best = max(range(len(ends)), key=lambda j: (ends[j][1].objective, ends[j][2] is not None))
        state, conv = ends[k_best][0], bool(ends[k_best][2])
        # A final E-step so that the returned posterior matches the returned parameters
        # (on a grid too large for that matrix, the run's last E-step at them).
        cells = data.counts.n_rows * (0 if problem.grid is None else problem.grid.size)
        if cells > FINAL_POSTERIOR_CELLS:
            estep = ends[k_best][1]
        else:
            estep = problem.e_step(state, posterior=True)
    # The compiled E-step's work space is kept only while the fit runs.
    release_work_buffer()
    runs = [pd.DataFrame.from_records(run.records) for run in records]
    all_converged = [conv for _, _, conv in ends]
    if warn and not conv:
        warnings.warn(
            f"EM did not converge in {max_iter} iterations (family {fam.name}); "
            "raise max_iter or loosen tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    if warn:
        for note in fit_warnings(fam, state.params, data.counts, problem.grid):
            warnings.warn(f"degenerate fit of {fam.name}: {note}", BoundaryWarning, stacklevel=2)
        for note in structure_warnings(structure, state.mu_hyper):
            warnings.warn(note, BoundaryWarning, stacklevel=2)
    history = runs[k_best]
    return EMResult(
        family=fam,
        params_=state.params,
        mu_=pd.Series(state.mu, index=pd.Index(spec.pairs, name="pair"), name="mu"),
        mu_spec=spec,
        objective_=estep.objective,
        log_likelihood_=estep.log_likelihood,
        log_prior_=estep.log_prior,
        converged_=bool(conv),
        n_iter_=len(history) - 1,
        history_=history,
        runs_=runs,
        best_start_=k_best,
        estep_=estep,
        problem=problem,
        data=data,
        settings={
            "n_init": n_init,
            "max_iter": max_iter,
            "tol": tol,
            "xtol": xtol,
            "accelerate": accelerate,
            "polish_after": polish_after,
            "screen_iter": screen_iter,
            "seed": seed,
            "priors": {k: str(v) for k, v in problem.prior.priors.items()},
            "grid_spacing": None if problem.grid is None else problem.grid.spacing,
            "grid_size": None if problem.grid is None else problem.grid.size,
            "fit_seconds": time.perf_counter() - t0,
            "all_converged": all_converged,
        },
        mu_structure=structure,
        mu_hyper_=None if state.mu_hyper is None else np.asarray(state.mu_hyper, dtype=float),
        mu_structure_reason=structure_reason,
        ties_=state.ties,
    )
