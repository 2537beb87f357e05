"""Structure on ``mu`` across pairs: independent, pooled or Bradley-Terry.

Each pair's win rate ``mu_k`` can be modelled three ways (``mu_structure=`` of
:func:`attnmodel.fit_em`, :func:`attnmodel.model.pymc_model.build_model` and
the command line's ``--mu-structure``):

``"independent"`` (:class:`IndependentMu`)
    Every unknown ``mu_k`` has its own prior (``mu_prior=``, by default
    ``2 mu - 1 ~ Beta(2, 2)``; :mod:`attnmodel.model.priors`). The paper's setting.

``"pooled"`` (:class:`PooledMu`)
    Partial pooling: the unknown pairs' ``mu`` are draws from one population,

        2 mu_k - 1 ~ Beta(1 + m c, 1 + (1 - m) c),
        m ~ Beta(2, 2),    c ~ Gamma(shape 2, rate 0.1),

    where ``m`` is the population's mode of ``2 mu - 1`` and ``c >= 0`` its
    concentration (``c = 0``: uniform; large ``c``: every pair near ``m``).
    Pairs with few votes borrow strength from the others; the scale prior acts
    once, on the population. Known ``mu`` stay fixed and outside the population.

    The model is stated in the coordinates ``z_k = logit(2 mu_k - 1)`` (the
    free variable of the PyMC model, what MAP-EM maximises over): the density
    of ``z`` is ``x^a (1 - x)^b / B(a, b)`` with ``x = 2 mu - 1`` and ``a, b``
    the shapes above, log-concave in ``z`` and bounded in the hyperparameters
    at either end. (In ``mu`` itself the density of a population with mode at
    1 grows without bound as it concentrates, and a joint MAP over ``mu`` would
    run there whenever the votes leave the scale of ``eta`` loose.)

    *The joint MAP of a hierarchical model*: raising ``c`` while every ``mu_k``
    moves to ``m`` raises the population density by about ``(K/2) log c``
    (K unknown pairs) without bound, so with a flat prior on ``c`` MAP-EM would
    run off to infinity whenever the votes barely separate the pairs. The
    Gamma prior's exponential tail outgrows that logarithm, which keeps the
    MAP finite: with no information in the votes it sits near
    ``c = (shape - 1 + K/2) / rate`` (about ``10 (K/2 + 1)`` by default).
    MAP-EM caps ``c`` at ``max_concentration``; an estimate within 1% of the
    cap raises :class:`~attnmodel.errors.BoundaryWarning` (a hyperprior too
    flat for the number of pairs). NUTS samples the same posterior without
    the cap (the Gamma mass beyond it is below ``exp(-900)`` by default).

``"bradley_terry"`` (:class:`BradleyTerryMu`)
    One strength ``theta_i`` per model and ``mu_ab = sigmoid(theta_a - theta_b)``
    with ``a`` the pair's first (designated stronger) model and ``b`` the second;
    under this structure a pair's ``mu`` may come out below 1/2, which only says
    the designation by raw win rate was the wrong way round. The strengths sum
    to zero (identification) and have the prior ``ZeroSumNormal(sigma)``: a
    normal with standard deviation ``sigma`` (default 1) restricted to the
    sum-zero plane. Since the votes identify only ``eta * (2 mu - 1)``, this
    prior sets the overall scale, as the ``mu`` prior does for the other
    structures: ``sigma = 1`` puts a typical pair at ``|theta_a - theta_b|``
    about 1.1, ``mu`` about 0.75, the mode of the default independent prior.
    Every ``mu`` must be unknown. The result carries ``mu`` for the pairs in
    the data and a leaderboard of strengths (:mod:`attnmodel.leaderboard`)
    from which the ``mu`` of any pair of models seen follows, compared
    directly or not.

:func:`choose_mu_structure` picks the default from the data: ``"independent"``
when fewer than :data:`POOL_MIN_PAIRS` pairs have unknown ``mu`` (a single pair
keeps the paper's setting) or when the median such pair has at least
:data:`POOL_MAX_MEDIAN_VOTES` votes (each pair is then well determined on its
own), ``"pooled"`` otherwise (many pairs with few votes each).
Bradley-Terry is never the default: it assumes the strengths are transitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from attnmodel.data.counts import pair_totals

__all__ = [
    "MU_STRUCTURES",
    "POOL_MAX_MEDIAN_VOTES",
    "POOL_MIN_PAIRS",
    "BradleyTerryMu",
    "IndependentMu",
    "PooledMu",
    "choose_mu_structure",
    "describe_mu_priors",
    "get_mu_structure",
    "mu_structure_json",
    "pair_models",
    "plain_bradley_terry",
    "resolve_mu_structure",
    "structure_warnings",
]

#: Names accepted by ``mu_structure=``.
MU_STRUCTURES = ("independent", "pooled", "bradley_terry")
#: Fewest pairs with unknown ``mu`` for which the default is ``"pooled"``.
POOL_MIN_PAIRS = 3
#: The default is ``"pooled"`` only when the median unknown pair has fewer votes than this.
POOL_MAX_MEDIAN_VOTES = 100


@dataclass(frozen=True)
class IndependentMu:
    """Each unknown ``mu`` with its own prior (the paper's model)."""

    name: str = field(default="independent", init=False)

    def describe(self) -> dict[str, Any]:
        """Name and settings, as the result stores them."""
        return {"name": self.name}


@dataclass(frozen=True)
class PooledMu:
    """``2 mu_k - 1 ~ Beta(1 + m c, 1 + (1 - m) c)`` with hyperpriors on ``m`` and ``c``.

    Parameters
    ----------
    mode_prior : (float, float)
        Beta shapes of the prior of the population mode ``m`` of ``2 mu - 1``.
    concentration_shape, concentration_rate : float
        Gamma prior of the concentration ``c``; the rate must be positive, as it
        keeps the joint MAP finite (see the module docstring).
    max_concentration : float
        MAP-EM's cap on ``c``.
    """

    mode_prior: tuple[float, float] = (2.0, 2.0)
    concentration_shape: float = 2.0
    concentration_rate: float = 0.1
    max_concentration: float = 1e4
    name: str = field(default="pooled", init=False)

    #: Names of the hyperparameters, in the order of ``mu_hyper``.
    hyper_names = ("mode", "concentration")

    def __post_init__(self) -> None:
        a, b = self.mode_prior
        if not (a >= 1 and b >= 1):
            raise ValueError(f"mode_prior shapes must be >= 1, got {self.mode_prior}")
        if not (self.concentration_shape >= 1 and self.concentration_rate > 0):
            raise ValueError(
                "the concentration prior needs shape >= 1 and rate > 0 (a finite joint MAP), "
                f"got shape={self.concentration_shape}, rate={self.concentration_rate}"
            )
        if not self.max_concentration > 0:
            raise ValueError(f"max_concentration must be > 0, got {self.max_concentration}")

    def describe(self) -> dict[str, Any]:
        """Name and settings, as the result stores them."""
        return {
            "name": self.name,
            "mode_prior": list(self.mode_prior),
            "concentration_shape": self.concentration_shape,
            "concentration_rate": self.concentration_rate,
            "max_concentration": self.max_concentration,
        }

    def initial_hyper(self) -> np.ndarray:
        """The hyperpriors' modes, ``[m, c]``."""
        a, b = self.mode_prior
        m = 0.5 if a == b == 1 else (a - 1) / (a + b - 2)
        c = (self.concentration_shape - 1) / self.concentration_rate
        return np.array([m, min(c, 0.5 * self.max_concentration)])

    def shapes(self, hyper: np.ndarray) -> tuple[float, float]:
        """Beta shapes of ``2 mu - 1`` at ``hyper = [m, c]``."""
        m, c = float(hyper[0]), float(hyper[1])
        return 1.0 + m * c, 1.0 + (1.0 - m) * c

    def hyper_logp(self, hyper: np.ndarray) -> float:
        """Log hyperprior density of ``[m, c]``."""
        m, c = float(hyper[0]), float(hyper[1])
        if not (0.0 < m < 1.0 and c >= 0.0):
            return -np.inf
        a, b = self.mode_prior
        return float(
            stats.beta.logpdf(m, a, b)
            + stats.gamma.logpdf(c, self.concentration_shape, scale=1.0 / self.concentration_rate)
        )

    def mu_logp(self, mu: np.ndarray, hyper: np.ndarray) -> np.ndarray:
        """Log density of each ``z = logit(2 mu - 1)``, as a function of ``mu``."""
        a, b = self.shapes(hyper)
        x = 2.0 * np.asarray(mu, dtype=float) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = special.xlogy(a, x) + special.xlog1py(b, -x) - special.betaln(a, b)
        return np.where((x > 0) & (x < 1), out, -np.inf)

    def mu_dlogp(self, mu: np.ndarray, hyper: np.ndarray) -> np.ndarray:
        """First derivative of :meth:`mu_logp` in ``mu``."""
        a, b = self.shapes(hyper)
        x = 2.0 * np.asarray(mu, dtype=float) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * (a / x - b / (1 - x))

    def mu_d2logp(self, mu: np.ndarray, hyper: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`mu_logp` in ``mu`` (negative: concave)."""
        a, b = self.shapes(hyper)
        x = 2.0 * np.asarray(mu, dtype=float) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return -4.0 * (a / x**2 + b / (1 - x) ** 2)

    def log_prior(self, mu: np.ndarray, hyper: np.ndarray) -> float:
        """Population log density of the unknown ``mu`` plus the hyperprior."""
        return float(np.sum(self.mu_logp(mu, hyper))) + self.hyper_logp(hyper)

    def update_hyper(self, mu: np.ndarray, hyper: np.ndarray) -> np.ndarray:
        """M-step of ``[m, c]`` given the pairs' ``mu``: never lowers :meth:`log_prior`."""
        x = np.clip(2.0 * np.asarray(mu, dtype=float) - 1.0, 1e-300, 1.0 - 1e-16)
        lx, l1x, k = float(np.sum(np.log(x))), float(np.sum(np.log1p(-x))), x.size

        a0, b0 = self.mode_prior
        shape, rate = self.concentration_shape, self.concentration_rate

        def neg(v):
            m, c = v
            a, b = 1 + m * c, 1 + (1 - m) * c
            val = m * c * lx + (1 - m) * c * l1x - k * special.betaln(a, b)
            val += self.hyper_logp(np.array([m, c]))
            if not np.isfinite(val):
                return 1e300, np.zeros(2)
            psi_a, psi_b, psi_ab = special.digamma([a, b, a + b])
            with np.errstate(divide="ignore", invalid="ignore"):
                d_m = c * (lx - l1x - k * (psi_a - psi_b)) + (a0 - 1) / m - (b0 - 1) / (1 - m)
                d_c = m * lx + (1 - m) * l1x - k * (m * psi_a + (1 - m) * psi_b - psi_ab)
                d_c += (shape - 1) / c - rate if c > 0 else (0.0 if shape == 1 else np.inf) - rate
            return -val, -np.array([d_m, d_c])

        # BFGS in (logit m, log c), then the cap: a 2-D problem, where L-BFGS-B's
        # Fortran driver costs more than the objective.
        def neg_free(w):
            m, c = special.expit(w[0]), np.exp(w[1])
            val, (g_m, g_c) = neg(np.array([m, c]))
            return val, np.array([g_m * m * (1 - m), g_c * c])

        start = np.asarray(hyper, dtype=float)
        w0 = np.array(
            [special.logit(np.clip(start[0], 1e-9, 1 - 1e-9)), np.log(max(start[1], 1e-8))]
        )
        res = optimize.minimize(neg_free, w0, jac=True, method="BFGS", options={"gtol": 1e-9})
        new = np.array([special.expit(res.x[0]), min(np.exp(res.x[1]), self.max_concentration)])
        return new if neg(new)[0] <= neg(start)[0] else start

    def at_cap(self, hyper: np.ndarray, tolerance: float) -> bool:
        """True when ``c`` lies within ``tolerance`` (a fraction) of ``max_concentration``."""
        return bool(hyper[1] >= (1.0 - tolerance) * self.max_concentration)


@dataclass(frozen=True)
class BradleyTerryMu:
    """``mu_ab = sigmoid(theta_a - theta_b)`` with ``theta ~ ZeroSumNormal(sigma)``.

    Parameters
    ----------
    sigma : float
        Prior standard deviation of each strength (sets the scale of ``eta``).
    models : tuple of str
        Model names; filled in from the data by :func:`resolve_mu_structure`.
    pair_a, pair_b : tuple of int
        Per pair, the indices in ``models`` of its first and second model.
    """

    sigma: float = 1.0
    models: tuple[str, ...] = ()
    pair_a: tuple[int, ...] = ()
    pair_b: tuple[int, ...] = ()
    name: str = field(default="bradley_terry", init=False)

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    def describe(self) -> dict[str, Any]:
        """Name, settings and the models of each pair, as the result stores them."""
        return {
            "name": self.name,
            "sigma": self.sigma,
            "models": list(self.models),
            "pair_models": [
                [int(a), int(b)] for a, b in zip(self.pair_a, self.pair_b, strict=True)
            ],
        }

    def bind(self, data) -> BradleyTerryMu:
        """The same structure, bound to the models and pair layout of ``data``."""
        models, a, b = pair_models(data)
        return replace(self, models=tuple(models), pair_a=tuple(a), pair_b=tuple(b))

    @property
    def index_a(self) -> np.ndarray:
        """First model of each pair, as an int array."""
        return np.asarray(self.pair_a, dtype=np.int64)

    @property
    def index_b(self) -> np.ndarray:
        """Second model of each pair, as an int array."""
        return np.asarray(self.pair_b, dtype=np.int64)

    def mu(self, theta: np.ndarray) -> np.ndarray:
        """Every pair's ``mu`` from the strengths."""
        theta = np.asarray(theta, dtype=float)
        return special.expit(theta[self.index_a] - theta[self.index_b])

    def theta_logp(self, theta: np.ndarray) -> float:
        """Log density of ``ZeroSumNormal(sigma)`` at sum-zero ``theta`` (as PyMC states it)."""
        theta = np.asarray(theta, dtype=float)
        dof = theta.size - 1
        return float(
            -0.5 * np.sum((theta / self.sigma) ** 2)
            - dof * (0.5 * np.log(2.0 * np.pi) + np.log(self.sigma))
        )

    @staticmethod
    def from_free(v: np.ndarray) -> np.ndarray:
        """Sum-zero strengths from the free coordinates (all but the last)."""
        v = np.asarray(v, dtype=float)
        return np.append(v, -v.sum())

    @staticmethod
    def free_jacobian(n_models: int) -> np.ndarray:
        """``d theta / d free``, shape (n_models, n_models - 1)."""
        return np.vstack([np.eye(n_models - 1), -np.ones((1, n_models - 1))])


def get_mu_structure(value):
    """A structure object from a name or a structure object (None is not resolved here)."""
    if isinstance(value, IndependentMu | PooledMu | BradleyTerryMu):
        return value
    table = {"independent": IndependentMu, "pooled": PooledMu, "bradley_terry": BradleyTerryMu}
    if isinstance(value, str) and value in table:
        return table[value]()
    raise ValueError(
        f"unknown mu_structure {value!r}; choose one of {', '.join(map(repr, MU_STRUCTURES))} "
        "or 'auto'"
    )


def choose_mu_structure(data, mu=None) -> tuple[str, str]:
    """The default ``mu`` structure for ``data`` and the reason, in words.

    See the module docstring for the rule.

    Parameters
    ----------
    data : VoteData
    mu : float or mapping, optional
        Known win rates (pairs given a value are not counted).
    """
    pairs = [str(p) for p in data.pairs]
    if mu is None:
        unknown = list(range(len(pairs)))
    elif isinstance(mu, Mapping):
        known = {str(k) for k in mu.keys()}
        unknown = [k for k, p in enumerate(pairs) if p not in known]
    else:
        unknown = []
    if len(unknown) < POOL_MIN_PAIRS:
        return "independent", (
            f"{len(unknown)} pair(s) with unknown mu, fewer than {POOL_MIN_PAIRS}: "
            "each pair keeps its own prior"
        )
    votes = pair_totals(data.counts)[0][unknown]
    median = float(np.median(votes))
    if median >= POOL_MAX_MEDIAN_VOTES:
        return "independent", (
            f"{len(unknown)} pairs with a median of {median:g} votes each "
            f"(>= {POOL_MAX_MEDIAN_VOTES}): each pair is determined on its own"
        )
    return "pooled", (
        f"{len(unknown)} pairs with a median of {median:g} votes each "
        f"(< {POOL_MAX_MEDIAN_VOTES}): pairs share a population distribution"
    )


def resolve_mu_structure(value, data, mu=None, mu_prior=None):
    """The structure to fit and why: ``value`` (a name, an object, ``"auto"`` or None).

    ``mu`` and ``mu_prior`` are the fit's known win rates and independent
    prior: Bradley-Terry needs every ``mu`` unknown, pooled at least one, and
    ``mu_prior`` belongs to ``"independent"`` alone (so ``"auto"`` with a
    ``mu_prior`` is ``"independent"``).

    Returns
    -------
    structure : IndependentMu, PooledMu or BradleyTerryMu
        Bradley-Terry bound to the data's models (:meth:`BradleyTerryMu.bind`).
    reason : str
        ``"chosen by the caller"`` or the rule's reason (:func:`choose_mu_structure`).
    """
    if (value is None or (isinstance(value, str) and value == "auto")) and mu_prior is not None:
        structure, reason = IndependentMu(), "chosen from the data: a mu prior was given"
    elif value is None or (isinstance(value, str) and value == "auto"):
        name, reason = choose_mu_structure(data, mu)
        structure = get_mu_structure(name)
        reason = f"chosen from the data: {reason}"
    else:
        structure, reason = get_mu_structure(value), "chosen by the caller"
    if mu_prior is not None and not isinstance(structure, IndependentMu):
        raise ValueError(
            f"mu_prior applies to mu_structure='independent'; under {structure.name!r} the "
            "structure states the prior of mu"
        )
    if isinstance(structure, BradleyTerryMu):
        if mu is not None:
            raise ValueError("mu_structure='bradley_terry' needs every mu unknown; drop mu=")
        if not structure.models:
            structure = structure.bind(data)
    if isinstance(structure, PooledMu) and mu is not None and not isinstance(mu, Mapping):
        raise ValueError("mu_structure='pooled' needs at least one unknown mu")
    if isinstance(structure, PooledMu) and isinstance(mu, Mapping):
        if {str(k) for k in mu} >= {str(p) for p in data.pairs}:
            raise ValueError("mu_structure='pooled' needs at least one unknown mu")
    return structure, reason


def describe_mu_priors(structure, spec) -> dict[str, str]:
    """``mu[pair]`` -> known value or prior, in words (the ``priors`` attribute's entries)."""
    if structure is None or isinstance(structure, IndependentMu):
        return {f"mu[{p}]": d for p, d in spec.describe().items()}
    out = {}
    for k, p in enumerate(spec.pairs):
        if np.isfinite(spec.known[k]):
            out[f"mu[{p}]"] = f"known {spec.known[k]:g}"
        elif isinstance(structure, PooledMu):
            out[f"mu[{p}]"] = "pooled: 2 mu - 1 ~ Beta(1 + m c, 1 + (1 - m) c)"
        else:
            out[f"mu[{p}]"] = "bradley_terry: sigmoid(theta_a - theta_b)"
    if isinstance(structure, PooledMu):
        a, b = structure.mode_prior
        out["mu_pop_mode"] = f"Beta({a:g}, {b:g})"
        out["mu_pop_concentration"] = (
            f"Gamma({structure.concentration_shape:g}, rate {structure.concentration_rate:g})"
        )
    elif isinstance(structure, BradleyTerryMu):
        out["theta"] = f"ZeroSumNormal({structure.sigma:g})"
    return out


def pair_models(data) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Model names and, per pair, the indices of its first (stronger) and second model.

    Taken from the data's report (raw layout) or else from pair labels
    ``"first vs second"``.
    """
    report = getattr(data, "report", None)
    firsts, seconds = [], []
    for pair in data.pairs:
        a = b = None
        if report is not None and "stronger" in report and pair in report.index:
            a, b = report.loc[pair, "stronger"], report.loc[pair, "weaker"]
        if a is None or b is None or (isinstance(a, float) and np.isnan(a)):
            parts = str(pair).split(" vs ")
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise ValueError(
                    f"mu_structure='bradley_terry' needs the two models of every pair; pair "
                    f"{pair!r} names none (use the raw layout or labels 'model_x vs model_y')"
                )
            a, b = (p.strip() for p in parts)
        firsts.append(str(a))
        seconds.append(str(b))
    models = list(dict.fromkeys(firsts + seconds))
    index = {m: i for i, m in enumerate(models)}
    return (
        models,
        np.array([index[m] for m in firsts], dtype=np.int64),
        np.array([index[m] for m in seconds], dtype=np.int64),
    )


def plain_bradley_terry(
    wins: np.ndarray,
    n: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    n_models: int,
    sigma: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry with every vote weighted equally: strengths and standard errors.

    Maximises ``sum_k w_k log p_k + (n_k - w_k) log(1 - p_k)``,
    ``p_k = sigmoid(theta_a - theta_b)``, over sum-zero ``theta``, with a
    ``Normal(0, sigma)`` ridge (default 10: the maximum likelihood estimate
    where it exists, finite when a model never loses). Standard errors from
    the inverse Hessian in the sum-zero plane.

    Parameters
    ----------
    wins, n : array_like, shape (P,)
        Votes for the pair's first model and all its votes.
    pair_a, pair_b : array_like of int, shape (P,)
    n_models : int
    sigma : float

    Returns
    -------
    theta, se : ndarray, shape (n_models,)
    """
    wins, n = np.asarray(wins, dtype=float), np.asarray(n, dtype=float)
    a, b = np.asarray(pair_a), np.asarray(pair_b)
    jac = BradleyTerryMu.free_jacobian(n_models)

    def parts(v):
        theta = jac @ v
        d = theta[a] - theta[b]
        ll = np.sum(wins * -np.logaddexp(0.0, -d) + (n - wins) * -np.logaddexp(0.0, d))
        g_d = wins - n * special.expit(d)
        g = np.zeros(n_models)
        np.add.at(g, a, g_d)
        np.subtract.at(g, b, g_d)
        return -(ll - 0.5 * np.sum(theta**2) / sigma**2), -(jac.T @ (g - theta / sigma**2))

    res = optimize.minimize(parts, np.zeros(n_models - 1), jac=True, method="BFGS",
                            options={"gtol": 1e-10})  # fmt: skip
    theta = jac @ res.x
    p = special.expit(theta[a] - theta[b])
    info = np.eye(n_models) / sigma**2
    w = n * p * (1 - p)
    for k in range(a.size):
        e = np.zeros(n_models)
        e[a[k]], e[b[k]] = 1.0, -1.0
        info += w[k] * np.outer(e, e)
    cov = jac @ np.linalg.inv(jac.T @ info @ jac) @ jac.T
    return theta, np.sqrt(np.clip(np.diag(cov), 0.0, None))


def structure_warnings(structure, hyper) -> list[str]:
    """Why the ``mu`` structure's estimate may be degenerate, one sentence each.

    A pooled concentration within :data:`~attnmodel.model.checks.BOUND_TOLERANCE`
    of its cap: the hyperprior is too flat for the number of pairs and the
    joint MAP ran to the cap (see the module docstring).
    """
    from attnmodel.model.checks import BOUND_TOLERANCE

    if isinstance(structure, PooledMu) and hyper is not None:
        if structure.at_cap(hyper, BOUND_TOLERANCE):
            return [
                f"the pooled mu concentration c = {hyper[1]:.6g} is at its cap "
                f"{structure.max_concentration:g}: every pair's mu is pulled to the population "
                "mode; raise concentration_rate of PooledMu"
            ]
    return []


def mu_structure_json(structure, reason: str = "") -> str:
    """The result's ``mu_structure`` root attribute: name, settings, models, and why chosen."""
    import json

    info = (structure or IndependentMu()).describe()
    info["reason"] = reason
    return json.dumps(info)
