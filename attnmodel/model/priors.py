"""What is known about each pair's win rate ``mu``.

Each model pair's ``mu`` is either known (a number in ``(1/2, 1]``) or unknown
with a prior. Only ``eta_j * (2 mu - 1)`` is identified by the votes: scaling
every ``2 mu_k - 1`` up by a factor and every ``eta_j`` down by the same factor
leaves all vote probabilities unchanged, as long as no ``eta_j`` exceeds 1 and
no ``mu_k`` exceeds 1. With ``mu`` unknown the prior therefore sets that one
overall scale; for the two-point and K-point families it is the only thing
that sets it.

The default prior is flat-topped over the plausible range rather than the
paper's ``Beta(8, 2)``: ``2 mu - 1 ~ Beta(2, 2)``, that is ``mu`` on
``(1/2, 1)`` with its mode at 3/4 and zero density at both ends. It excludes
``mu <= 1/2`` (the model's premise is that one model is stronger), keeps away
from the ``mu = 1`` boundary where the scale of ``eta`` collapses, and, being
wide, suits logs with many pairs of very different strength. Users with a few
dozen expert labels should build an informative prior with
:meth:`BetaPrior.from_expert_labels`; the paper's single-pair choice is
``BetaPrior(8, 2)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["BetaPrior", "DEFAULT_MU_PRIOR", "MuSpec", "resolve_mu"]


@dataclass(frozen=True)
class BetaPrior:
    """Scaled Beta prior on ``mu``, truncated to ``mu > 1/2``.

    ``mu = lower + (upper - lower) * X`` with ``X ~ Beta(alpha, beta)``.

    Parameters
    ----------
    alpha, beta : float
        Shapes, both ``>= 1`` so that the log prior is concave and MAP-EM's
        ``mu`` update has a unique maximiser.
    lower, upper : float
        Support before truncation, ``0 <= lower < upper <= 1`` and ``upper > 1/2``.
    """

    alpha: float
    beta: float
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha >= 1 and self.beta >= 1):
            raise ValueError(
                "mu prior shapes must be >= 1 (log-concave), "
                f"got alpha={self.alpha}, beta={self.beta}"
            )
        if not (0 <= self.lower < self.upper <= 1 and self.upper > 0.5):
            raise ValueError(
                f"mu prior support must satisfy 0 <= lower < upper <= 1 and upper > 1/2, "
                f"got [{self.lower}, {self.upper}]"
            )

    @classmethod
    def from_expert_labels(cls, wins: int, total: int) -> BetaPrior:
        """Beta-binomial posterior of ``mu`` from ``wins`` of ``total`` expert-labelled pairs.

        Starts from a uniform prior, so the result is ``Beta(1 + wins, 1 + total - wins)``.
        """
        if not (0 <= wins <= total):
            raise ValueError(f"need 0 <= wins <= total, got wins={wins}, total={total}")
        return cls(1.0 + wins, 1.0 + total - wins)

    @property
    def support(self) -> tuple[float, float]:
        """Interval on which the truncated prior has mass."""
        return max(self.lower, 0.5), self.upper

    def _x(self, mu):
        return (np.asarray(mu, dtype=np.float64) - self.lower) / (self.upper - self.lower)

    @functools.cached_property
    def _log_norm(self) -> float:
        """Log normaliser: Beta function, scale and the mass left after truncation."""
        lo = self.support[0]
        trunc = stats.beta.logsf(self._x(lo), self.alpha, self.beta) if lo > self.lower else 0.0
        scale = np.log(self.upper - self.lower)
        return float(special.betaln(self.alpha, self.beta) + scale + trunc)

    def logpdf(self, mu: np.ndarray) -> np.ndarray:
        """Log density of the truncated prior (``-inf`` outside its support)."""
        mu = np.asarray(mu, dtype=np.float64)
        lo, hi = self.support
        x = self._x(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = (
                special.xlogy(self.alpha - 1, x)
                + special.xlog1py(self.beta - 1, -x)
                - self._log_norm
            )
        return np.where((mu > lo) & (mu <= hi), dens, -np.inf)

    def dlogpdf(self, mu: np.ndarray) -> np.ndarray:
        """First derivative of :meth:`logpdf` in ``mu``."""
        mu = np.asarray(mu, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.alpha - 1) / (mu - self.lower) - (self.beta - 1) / (self.upper - mu)

    def d2logpdf(self, mu: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`logpdf` in ``mu``."""
        mu = np.asarray(mu, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                -(self.alpha - 1) / (mu - self.lower) ** 2
                - (self.beta - 1) / (self.upper - mu) ** 2
            )

    def mode(self) -> float:
        """Mode of the truncated prior."""
        a, b = self.alpha, self.beta
        x = 0.5 if a == b == 1 else (a - 1) / (a + b - 2)
        lo, hi = self.support
        return float(np.clip(self.lower + (self.upper - self.lower) * x, lo + 1e-6, hi))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the truncated prior (inverse-CDF, exact)."""
        lo, _ = self.support
        f_lo = stats.beta.cdf(self._x(lo), self.alpha, self.beta)
        x = stats.beta.ppf(rng.uniform(f_lo, 1.0, size=size), self.alpha, self.beta)
        return self.lower + (self.upper - self.lower) * x

    def __str__(self) -> str:
        if (self.lower, self.upper) == (0.0, 1.0):
            return f"Beta({self.alpha:g}, {self.beta:g}) truncated to mu > 1/2"
        return f"{self.lower:g} + {self.upper - self.lower:g} * Beta({self.alpha:g}, {self.beta:g})"


#: ``2 mu - 1 ~ Beta(2, 2)``; see the module docstring for why.
DEFAULT_MU_PRIOR = BetaPrior(2.0, 2.0, lower=0.5, upper=1.0)


@dataclass(frozen=True)
class MuSpec:
    """Per-pair ``mu``: known values and priors for the rest.

    Attributes
    ----------
    pairs : tuple of str
    known : ndarray, shape (P,)
        Known ``mu`` or NaN.
    priors : tuple
        ``BetaPrior`` for unknown pairs, None for known ones.
    """

    pairs: tuple[str, ...]
    known: np.ndarray
    priors: tuple[BetaPrior | None, ...]

    @property
    def unknown(self) -> np.ndarray:
        """Indices of pairs whose ``mu`` is estimated."""
        return np.flatnonzero(np.isnan(self.known))

    def initial(self) -> np.ndarray:
        """Known values, and prior modes for the unknown ones, shape (P,)."""
        out = self.known.copy()
        for k in self.unknown:
            out[k] = self.priors[k].mode()  # type: ignore[union-attr]
        return out

    def log_prior(self, mu: np.ndarray) -> float:
        """Sum of the log priors of the unknown ``mu``."""
        return float(sum(self.priors[k].logpdf(mu[k]) for k in self.unknown))  # type: ignore[union-attr]

    def describe(self) -> dict[str, str]:
        """Pair -> human-readable description (for attributes and reports)."""
        return {
            p: (
                f"known {self.known[k]:g}"
                if np.isfinite(self.known[k])
                else f"prior {self.priors[k]}"
            )
            for k, p in enumerate(self.pairs)
        }


def _as_prior(value) -> BetaPrior:
    if isinstance(value, BetaPrior):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (2, 4):
        return BetaPrior(*map(float, value))
    raise ValueError(f"a mu prior is a BetaPrior or (alpha, beta[, lower, upper]), got {value!r}")


def resolve_mu(
    pairs: Sequence[str],
    mu: float | Mapping[str, float] | None = None,
    mu_prior: BetaPrior | Sequence[float] | Mapping[str, BetaPrior | Sequence[float]] | None = None,
) -> MuSpec:
    """Combine known values and priors into a :class:`MuSpec`.

    Parameters
    ----------
    pairs : sequence of str
        Pair labels of the data.
    mu : float or mapping, optional
        A number applies to every pair; a mapping gives known values for some
        pairs (the rest get priors).
    mu_prior : BetaPrior, (alpha, beta[, lower, upper]) or mapping, optional
        Prior for the pairs whose ``mu`` is not known; defaults to
        :data:`DEFAULT_MU_PRIOR`.
    """
    pairs = tuple(str(p) for p in pairs)
    known = np.full(len(pairs), np.nan)
    if mu is not None:
        if isinstance(mu, Mapping):
            unknown_keys = [k for k in mu if str(k) not in pairs]
            if unknown_keys:
                raise ValueError(
                    f"mu given for unknown pair(s) {unknown_keys}; pairs are {list(pairs)}"
                )
            for k, v in mu.items():
                known[pairs.index(str(k))] = float(v)
        else:
            known[:] = float(mu)
    for k, p in enumerate(pairs):
        v = known[k]
        if np.isnan(v):
            continue
        if not np.isfinite(v) or v > 1:
            raise ValueError(f"mu for pair {p!r} is {v}; it must lie in (1/2, 1]")
        if v <= 0.5:
            raise ValueError(
                f"mu for pair {p!r} is {v} <= 1/2: either the labels of the two models are "
                "swapped (the stronger model must be the one counted as a win) or the models "
                "are equally strong, in which case votes say nothing about attentiveness"
            )
    if isinstance(mu_prior, Mapping):
        bad = [k for k in mu_prior if str(k) not in pairs]
        if bad:
            raise ValueError(f"mu_prior given for unknown pair(s) {bad}; pairs are {list(pairs)}")
        by_pair = {str(k): _as_prior(v) for k, v in mu_prior.items()}
        priors = tuple(
            None if np.isfinite(known[k]) else by_pair.get(p, DEFAULT_MU_PRIOR)
            for k, p in enumerate(pairs)
        )
    else:
        prior = DEFAULT_MU_PRIOR if mu_prior is None else _as_prior(mu_prior)
        priors = tuple(None if np.isfinite(known[k]) else prior for k in range(len(pairs)))
    return MuSpec(pairs=pairs, known=known, priors=priors)
