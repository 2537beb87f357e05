"""Ties as evidence: a per-user tie propensity beside ``eta`` (``ties="model"``).

User ``j`` has attentiveness ``eta_j ~ P_eta`` and a tie propensity
``tau_j ~ Beta(a, b)``, a trait of its own (careful users may tie often). A
vote is attentive with probability ``eta_j``: it is then a tie with probability
``tau_j`` and otherwise goes to the pair's stronger model with probability
``mu_k``. A careless vote is a tie with probability ``tau_j + (1 - tau_j) kappa``
(``kappa`` in [0, 1), the extra tie rate of careless votes) and otherwise a
coin flip. With ``c(eta) = 1 - (1 - eta) kappa``,

    P(stronger) = (1 - tau) [eta mu + (1 - eta)(1 - kappa) / 2]
    P(weaker)   = (1 - tau) [eta (1 - mu) + (1 - eta)(1 - kappa) / 2]
    P(tie)      = 1 - (1 - tau) c(eta),

so a user with ``s_k``, ``f_k`` votes for / against pair ``k``'s stronger model
(``m`` in all) and ``T`` ties has the likelihood

    prod_k h_k^s_k (1 - h_k)^f_k  *  c^m (1 - tau)^m (1 - (1 - tau) c)^T,
    h_k = 1/2 + eta' (mu_k - 1/2),   eta' = eta / c(eta).

The direction part is the tie-free likelihood at the transformed attentiveness
``eta'`` (:func:`direction_nodes`). The tie part depends on the user only
through ``(m, T)``. Its integral over ``tau`` is exact: writing
``1 - (1 - tau) c = (1 - c) + c tau`` and expanding the power,

    E_tau[c^m (1 - tau)^m ((1 - c) + c tau)^T]
        = sum_{k=0..T} C(T, k) (1 - c)^(T - k) c^(k + m) B(a + k, b + m) / B(a, b),

a sum of positive terms, taken by a log-sum-exp (:class:`TieTerm`). It costs
``T + 1`` terms per distinct ``(m, T)`` and node, and has no quadrature error
however many votes a user gave. With ``kappa = 0`` the tie part does not depend
on ``eta``: ties are then pure style and carry no evidence about attention.

The tie parameters are ``kappa`` and the population of ``tau`` in mean and
concentration, ``a = tau_mean * tau_conc``, ``b = (1 - tau_mean) * tau_conc``.
Their priors (:data:`TIE_PRIORS`; the same for MAP-EM and NUTS) are weakly
informative: ``kappa ~ Beta(1.5, 1.5)`` and ``tau_mean ~ Beta(1.5, 1.5)`` (each
one half pseudo-vote on either side, which keeps the estimate off 0 and 1), and
``tau_conc ~ LogNormal(log 10, 1.5)`` (a population from nearly everyone alike,
``tau_conc`` in the hundreds, to a U-shaped one, ``tau_conc`` near 1, within
two standard deviations).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from scipy import special

__all__ = [
    "TieParams",
    "TieTerm",
    "TIE_PRIORS",
    "HORNER_TINY",
    "tie_pass",
    "direction_nodes",
    "direction_q",
    "tie_q",
    "tie_q_complete",
    "tie_stats",
    "TieStats",
    "tie_log_prior",
    "tie_vector_bounds",
]

#: Priors of the tie parameters: (name, distribution, its parameters).
TIE_PRIORS = {
    "kappa": ("Beta", (1.5, 1.5)),
    "tau_mean": ("Beta", (1.5, 1.5)),
    "tau_conc": ("LogNormal", (float(np.log(10.0)), 1.5)),
}


#: A Horner sum of :func:`tie_pass` below this is taken again by a log-sum-exp.
HORNER_TINY = 1e-200


@numba.njit(cache=True)
def tie_pass(start, base, kpm, tmk, log_c, log_1mc, weight, ratio, out, pw, pr, pn, p1):
    """Log-sum-exp over each key's terms at each node; with weights, the shares summed.

    Key ``d`` owns the terms ``j = start[d] .. start[d + 1] - 1`` (``k = 0..T``,
    in order), each ``base[j] + kpm[j] log c + tmk[j] log(1 - c)`` with
    ``kpm = k + m`` and ``tmk = T - k``. ``log_c``/``log_1mc`` hold one row
    (shared nodes) or one row per key. ``out[d, g]`` receives the log factor.
    With ``weight`` of shape (D, G) (else (0, 0)), ``pw[j] = sum_g W[d, g] p[j, g]``,
    where ``p`` is the term's share of its key's sum; when ``pr`` is not
    empty, ``pr[j] = sum_g W[d, g] p[j, g] ratio[g]``; when ``pn``/``p1``
    have one entry per node (else none), ``pn[g] = sum_j W[d, g] p[j, g] kpm[j]``
    and ``p1[g] = sum_j W[d, g] p[j, g] tmk[j]``. These are the derivatives
    of ``sum W out`` in ``base``, ``log c`` and ``log(1 - c)``.

    The sum is a polynomial in ``x = c / (1 - c)``: with ``w_k = exp(base_k -
    max base)``, ``out = max base + m log c + T log(1 - c) + log sum_k w_k x^k``
    for ``x <= 1``, and the same in ``1 / x`` about ``(m + T) log c`` for ``x >
    1``, taken by Horner's rule: one exponential per key and node instead of
    one per term, and each share a product. The terms are positive and the
    variable at most 1, so the sum is exact to rounding unless it falls below
    :data:`HORNER_TINY` (some ``w_k`` underflowing where ``x^k`` would have
    made up for it), where the log-sum-exp over the terms takes over.
    """
    n_keys = start.size - 1
    n_nodes = out.shape[1]
    stride = 0 if log_c.shape[0] == 1 else 1
    with_w = weight.shape[0] > 0
    with_r = pr.size > 0
    with_n = pn.size > 0
    with_1 = p1.size > 0
    width = 1
    for d in range(n_keys):
        width = max(width, start[d + 1] - start[d])
    coef = np.empty(width)
    share = np.empty(width)
    # The variable of each node's polynomial (c / (1 - c) or its inverse, at most
    # 1), shared by every key when the nodes are.
    n_var = 1 if stride == 0 else n_keys
    var = np.zeros((n_var, n_nodes))
    low = np.zeros((n_var, n_nodes), dtype=np.bool_)
    for v in range(n_var):
        for g in range(n_nodes):
            lc, l1 = log_c[v, g], log_1mc[v, g]
            z = lc - l1
            if lc > -np.inf and z <= 0.0:
                var[v, g] = np.exp(z)
                low[v, g] = True
            elif lc > -np.inf and z > 0.0:
                var[v, g] = np.exp(-z)
    for d in range(n_keys):
        lo, hi = start[d], start[d + 1]
        nt = hi - lo
        top = -np.inf
        for i in range(nt):
            top = max(top, base[lo + i])
        for i in range(nt):
            coef[i] = np.exp(base[lo + i] - top)
        m_d = kpm[lo]  # k = 0: k + m = m and T - k = T
        t_d = tmk[lo]
        row = d * stride
        for g in range(n_nodes):
            lc, l1 = log_c[row, g], log_1mc[row, g]
            y = var[row, g]
            low_first = low[row, g]
            poly = 0.0
            head = 0.0
            if low_first:
                poly = coef[nt - 1]
                for i in range(nt - 2, -1, -1):
                    poly = poly * y + coef[i]
                head = top + m_d * lc + t_d * l1  # here log(1 - c) >= log c > -inf
            elif lc > -np.inf and lc - l1 > 0.0:
                poly = coef[0]
                for i in range(1, nt):
                    poly = poly * y + coef[i]
                head = top + (m_d + t_d) * lc
            w = weight[d, g] if with_w else 0.0
            if poly > HORNER_TINY:
                out[d, g] = head + np.log(poly)
                if w > 0:
                    p = w / poly
                    if low_first:
                        for i in range(nt):
                            share[i] = coef[i] * p
                            p *= y
                    else:
                        for i in range(nt - 1, -1, -1):
                            share[i] = coef[i] * p
                            p *= y
            else:
                peak = -np.inf
                for j in range(lo, hi):
                    v = base[j] + kpm[j] * lc
                    if tmk[j] > 0:
                        v += tmk[j] * l1
                    if v > peak:
                        peak = v
                total = 0.0
                for j in range(lo, hi):
                    v = base[j] + kpm[j] * lc
                    if tmk[j] > 0:
                        v += tmk[j] * l1
                    share[j - lo] = np.exp(v - peak)
                    total += share[j - lo]
                out[d, g] = np.log(total) + peak
                if w > 0:
                    for i in range(nt):
                        share[i] *= w / total
            if w > 0:
                sn = 0.0
                s1 = 0.0
                for i in range(nt):
                    j = lo + i
                    pw[j] += share[i]
                    if with_r:
                        pr[j] += share[i] * ratio[g]
                    sn += share[i] * kpm[j]
                    s1 += share[i] * tmk[j]
                if with_n:
                    pn[g] += sn
                if with_1:
                    p1[g] += s1


class TieParams(NamedTuple):
    """Tie parameters: careless extra tie rate and the population of tie propensities."""

    kappa: float
    tau_mean: float
    tau_conc: float

    @property
    def a(self) -> float:
        """First Beta shape of the tie propensities."""
        return self.tau_mean * self.tau_conc

    @property
    def b(self) -> float:
        """Second Beta shape of the tie propensities."""
        return (1.0 - self.tau_mean) * self.tau_conc

    def to_vector(self) -> np.ndarray:
        """Unconstrained coordinates ``(logit kappa, logit tau_mean, log tau_conc)``."""
        return np.array(
            [special.logit(self.kappa), special.logit(self.tau_mean), np.log(self.tau_conc)]
        )

    @classmethod
    def from_vector(cls, v: np.ndarray) -> TieParams:
        """Inverse of :meth:`to_vector`, clipped to :func:`tie_vector_bounds`."""
        lo, hi = tie_vector_bounds()
        v = np.clip(np.asarray(v, dtype=float), lo, hi)
        return cls(float(special.expit(v[0])), float(special.expit(v[1])), float(np.exp(v[2])))

    def flat(self) -> dict[str, float]:
        """The parameters by name (for histories and result trees)."""
        return {"kappa": self.kappa, "tau_mean": self.tau_mean, "tau_conc": self.tau_conc}


def tie_vector_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Box of :meth:`TieParams.to_vector` (far beyond where the priors put mass)."""
    return np.array([-30.0, -30.0, -7.0]), np.array([30.0, 30.0, 14.0])


def tie_log_prior(ties: TieParams) -> float:
    """Log density of :data:`TIE_PRIORS` at ``ties`` (in kappa, tau_mean, tau_conc)."""
    total = 0.0
    for name in ("kappa", "tau_mean"):
        alpha, beta = TIE_PRIORS[name][1]
        x = getattr(ties, name)
        total += (alpha - 1) * np.log(x) + (beta - 1) * np.log1p(-x) - special.betaln(alpha, beta)
    loc, scale = TIE_PRIORS["tau_conc"][1]
    lc = np.log(ties.tau_conc)
    total += -lc - np.log(scale * np.sqrt(2 * np.pi)) - 0.5 * ((lc - loc) / scale) ** 2
    return float(total)


def _tie_log_prior_grad(ties: TieParams) -> np.ndarray:
    """Gradient of :func:`tie_log_prior` in the coordinates of :meth:`TieParams.to_vector`."""
    g = np.empty(3)
    for i, name in enumerate(("kappa", "tau_mean")):
        alpha, beta = TIE_PRIORS[name][1]
        x = getattr(ties, name)
        g[i] = (alpha - 1) * (1 - x) - (beta - 1) * x
    loc, scale = TIE_PRIORS["tau_conc"][1]
    g[2] = -1.0 - (np.log(ties.tau_conc) - loc) / scale**2
    return g


def direction_nodes(
    eta: np.ndarray, one_minus_eta: np.ndarray, kappa: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``eta' = eta / c``, ``1 - eta'``, ``log c`` and ``log(1 - c)`` at the nodes.

    ``1 - eta' = (1 - eta)(1 - kappa) / c`` and ``1 - c = (1 - eta) kappa`` are
    formed from ``1 - eta`` so that nodes near 1 keep their precision.
    """
    c = 1.0 - one_minus_eta * kappa
    with np.errstate(divide="ignore"):
        log_c = np.log(c)
        log_1mc = np.log(one_minus_eta) + np.log(kappa)
    return eta / c, one_minus_eta * (1.0 - kappa) / c, log_c, log_1mc


class TieTerm:
    """The tie part of the likelihood, integrated over ``tau``, per distinct ``(m, T)``.

    Parameters
    ----------
    m, T : ndarray of int, shape (R,)
        Votes other than ties and ties of each distinct count row.

    Attributes
    ----------
    keys : ndarray of int64, shape (D, 2)
        The distinct ``(m, T)``.
    row_key : ndarray of int64, shape (R,)
        Key of each row.
    """

    def __init__(self, m: np.ndarray, T: np.ndarray) -> None:
        m = np.asarray(m, dtype=np.int64)
        T = np.asarray(T, dtype=np.int64)
        self.keys, self.row_key = np.unique(np.stack([m, T], axis=1), axis=0, return_inverse=True)
        self.row_key = self.row_key.reshape(-1)
        self.m = self.keys[:, 0]
        self.T = self.keys[:, 1]
        sizes = self.T + 1
        self._start = np.concatenate([[0], np.cumsum(sizes)])
        self._key_of = np.repeat(np.arange(self.m.size), sizes)
        self._k = np.arange(self._key_of.size) - self._start[self._key_of]
        t_k = self.T[self._key_of]
        self._tmk = (t_k - self._k).astype(float)
        self._kpm = (self._k + self.m[self._key_of]).astype(float)
        self._log_binom = (
            special.gammaln(t_k + 1.0)
            - special.gammaln(self._k + 1.0)
            - special.gammaln(self._tmk + 1.0)
        )

    @property
    def n_keys(self) -> int:
        """Number of distinct ``(m, T)``."""
        return int(self.m.size)

    def terms(self) -> dict[str, np.ndarray]:
        """The terms of every key's sum, in the layout :func:`tie_pass` takes.

        ``start`` (D + 1,): key ``d`` owns the terms ``start[d] .. start[d + 1] - 1``;
        per term (K,): ``k``, the key's ``m``, ``kpm = k + m``, ``tmk = T - k``
        (floats) and ``log_binom = log C(T, k)``. A term's base is
        ``log_binom + log B(a + k, b + m) - log B(a, b)``.
        """
        return {
            "start": self._start.astype(np.int64),
            "k": self._k.astype(float),
            "m": self.m[self._key_of].astype(float),
            "kpm": self._kpm,
            "tmk": self._tmk,
            "log_binom": self._log_binom,
        }

    def _base(self, a: float, b: float) -> np.ndarray:
        """The terms' parts free of the nodes: binomials and Beta functions, shape (K,)."""
        return (
            self._log_binom
            + special.betaln(a + self._k, b + self.m[self._key_of])
            - special.betaln(a, b)
        )

    def log_factor(self, log_c: np.ndarray, log_1mc: np.ndarray, a: float, b: float) -> np.ndarray:
        """``log E_tau[...]`` of the module docstring per key and node, shape (D, G).

        ``log_c``, ``log_1mc`` have shape (1, G) (the same nodes for every key)
        or (D, G).
        """
        log_c = np.ascontiguousarray(np.atleast_2d(log_c), dtype=float)
        log_1mc = np.ascontiguousarray(np.atleast_2d(log_1mc), dtype=float)
        out = np.empty((self.n_keys, log_c.shape[1]))
        none = np.zeros((0, 0))
        empty = np.zeros(0)
        tie_pass(
            self._start,
            self._base(a, b),
            self._kpm,
            self._tmk,
            log_c,
            log_1mc,
            none,
            empty,
            out,
            empty,
            empty,
            empty,
            empty,
        )
        return out

    def log_factor_rows(
        self, key: np.ndarray, log_c: np.ndarray, log_1mc: np.ndarray, a: float, b: float
    ) -> np.ndarray:
        """The log factor of key ``key[i]`` at its own node ``i``, shape (n,).

        For one point per row (e.g. a search for each row's mode).
        """
        key = np.asarray(key, dtype=np.int64)
        lens = self.T[key] + 1
        first = np.concatenate([[0], np.cumsum(lens)[:-1]])
        owner = np.repeat(np.arange(key.size), lens)
        j = self._start[key][owner] + np.arange(owner.size) - first[owner]
        base = self._base(a, b)[j]
        tmk = self._tmk[j]
        with np.errstate(invalid="ignore"):
            terms = (
                base + self._kpm[j] * log_c[owner] + np.where(tmk > 0, tmk * log_1mc[owner], 0.0)
            )
        peak = np.maximum.reduceat(terms, first)
        return np.log(np.add.reduceat(np.exp(terms - peak[owner]), first)) + peak

    def _weighted_pass(self, weight, eta, one_minus_eta, ties: TieParams, per_node: bool):
        """One weighted pass of :func:`tie_pass` over the shared nodes.

        Returns ``sum W log factor`` and the pass's ``pw``, ``pr`` (ratio
        ``(1 - eta) / c``) and, with ``per_node``, ``pn`` (else empty).
        """
        _, _, log_c, log_1mc = direction_nodes(eta, one_minus_eta, ties.kappa)
        out = np.empty(weight.shape)
        pw = np.zeros(self._k.size)
        pr = np.zeros(self._k.size)
        pn = np.zeros(eta.size if per_node else 0)
        tie_pass(
            self._start,
            self._base(ties.a, ties.b),
            self._kpm,
            self._tmk,
            np.ascontiguousarray(log_c[None, :]),
            np.ascontiguousarray(log_1mc[None, :]),
            weight,
            one_minus_eta / np.exp(log_c),
            out,
            pw,
            pr,
            pn,
            np.zeros(0),
        )
        return float(np.sum(np.where(weight > 0, weight * out, 0.0))), pw, pr, pn

    def weighted(
        self,
        weight: np.ndarray,
        eta: np.ndarray,
        one_minus_eta: np.ndarray,
        ties: TieParams,
        grad: bool = False,
    ):
        """``sum_{d,g} weight_dg log_factor_dg`` and, with ``grad``, its gradient.

        Parameters
        ----------
        weight : ndarray, shape (D, G)
            Expected users per key and node (the E-step's posterior summed per key).
        eta, one_minus_eta : ndarray, shape (G,)
        ties : TieParams
        grad : bool

        Returns
        -------
        value : float
        gradient : ndarray, shape (3,)
            In ``(kappa, a, b)``; only with ``grad``.
        """
        a, b, kappa = ties.a, ties.b, ties.kappa
        weight = np.ascontiguousarray(weight, dtype=float)
        value, pw, pr, _ = self._weighted_pass(weight, eta, one_minus_eta, ties, per_node=False)
        if not grad:
            return value
        k = self._k.astype(float)
        mk = self.m[self._key_of].astype(float)
        dig_ab = special.digamma(a + b + mk + k)
        total_w = weight.sum()
        g = np.array(
            [
                np.dot(pw, self._tmk) / kappa - np.dot(self._kpm, pr),
                np.dot(pw, special.digamma(a + k) - dig_ab)
                - total_w * (special.digamma(a) - special.digamma(a + b)),
                np.dot(pw, special.digamma(b + mk) - dig_ab)
                - total_w * (special.digamma(b) - special.digamma(a + b)),
            ]
        )
        return value, g


class TieStats(NamedTuple):
    """Expected complete-data statistics of the tie part, for the tie M-step.

    The latent variables behind the tie factor are each user's ``tau`` and the
    split of its ``T`` ties into ``k`` of probability ``c tau`` and ``T - k``
    of probability ``1 - c`` (the terms of the sum in the module docstring);
    given ``eta``, ``k`` and the votes, ``tau ~ Beta(a + k, b + m)``. Their
    complete-data log-likelihood is
    ``(k + m) log c + (T - k) log(1 - c) + log Beta(tau; a, b)``, whose
    expectation under the E-step's posterior depends on the data only through
    these sums (each weighted by the expected users per key and node):

    Attributes
    ----------
    node_kpm : ndarray, shape (G,)
        Expected ``k + m`` at each node.
    careless_ties : float
        Expected ``T - k`` over all nodes.
    log_tau, log_1m_tau : float
        Expected ``log tau`` and ``log(1 - tau)``.
    users : float
        Expected users (the weights' sum).
    log_factor_sum : float
        ``sum_{d,g} W_dg log factor_dg`` at the parameters the statistics were
        taken at (:meth:`TieTerm.weighted` there, from the same pass).
    """

    node_kpm: np.ndarray
    careless_ties: float
    log_tau: float
    log_1m_tau: float
    users: float
    log_factor_sum: float


def tie_stats(
    term: TieTerm, weight: np.ndarray, eta: np.ndarray, one_minus_eta: np.ndarray, ties: TieParams
) -> TieStats:
    """:class:`TieStats` of the E-step's ``weight`` (D, G) taken at ``ties``; costs O(terms x G)."""
    a, b = ties.a, ties.b
    weight = np.ascontiguousarray(weight, dtype=float)
    value, pw, _, pn = term._weighted_pass(weight, eta, one_minus_eta, ties, per_node=True)
    k = term._k.astype(float)
    mk = term.m[term._key_of].astype(float)
    dig_ab = special.digamma(a + b + mk + k)
    return TieStats(
        node_kpm=pn,
        careless_ties=float(np.dot(pw, term._tmk)),
        log_tau=float(np.dot(pw, special.digamma(a + k) - dig_ab)),
        log_1m_tau=float(np.dot(pw, special.digamma(b + mk) - dig_ab)),
        users=float(weight.sum()),
        log_factor_sum=value,
    )


def tie_q_complete(
    stats: TieStats, s_stat, f_stat, eta, one_minus_eta, mu, ties: TieParams
) -> tuple[float, np.ndarray]:
    """The complete-data ``Q`` of the tie parameters (:class:`TieStats`), with their prior.

    Up to terms free of the tie parameters. Costs O(pairs x G) (the direction
    part at the transformed nodes) whatever the number of users. Returns the
    value and the gradient in the coordinates of :meth:`TieParams.to_vector`.
    """
    kappa, mean, conc = ties
    a, b = ties.a, ties.b
    v_d, g_k = direction_q(s_stat, f_stat, eta, one_minus_eta, mu, kappa, grad=True)
    c = 1.0 - one_minus_eta * kappa
    # log(1 - c) = log(1 - eta) + log kappa: only the second moves with kappa.
    value = (
        v_d
        + float(np.dot(stats.node_kpm, np.log(c)))
        + stats.careless_ties * np.log(kappa)
        + (a - 1.0) * stats.log_tau
        + (b - 1.0) * stats.log_1m_tau
        - stats.users * special.betaln(a, b)
        + tie_log_prior(ties)
    )
    dk = g_k - float(np.dot(stats.node_kpm, one_minus_eta / c)) + stats.careless_ties / kappa
    dig_ab = special.digamma(a + b)
    da = stats.log_tau - stats.users * (special.digamma(a) - dig_ab)
    db = stats.log_1m_tau - stats.users * (special.digamma(b) - dig_ab)
    grad = np.array(
        [dk * kappa * (1 - kappa), conc * (da - db) * mean * (1 - mean), a * da + b * db]
    )
    return float(value), grad + _tie_log_prior_grad(ties)


def direction_q(
    s_stat: np.ndarray,
    f_stat: np.ndarray,
    eta: np.ndarray,
    one_minus_eta: np.ndarray,
    mu: np.ndarray,
    kappa: float,
    grad: bool = False,
):
    """``sum_pg S log h + F log(1 - h)`` at the transformed nodes, and its kappa-derivative."""
    e1, om1, log_c, _ = direction_nodes(eta, one_minus_eta, kappa)
    d = (np.asarray(mu, dtype=float) - 0.5)[:, None]
    h = 0.5 * om1[None, :] + e1[None, :] * (d + 0.5)
    h1 = 0.5 * om1[None, :] + e1[None, :] * (0.5 - d)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(
            np.sum(np.where(s_stat > 0, s_stat * np.log(h), 0.0))
            + np.sum(np.where(f_stat > 0, f_stat * np.log(h1), 0.0))
        )
        if not grad:
            return value
        de = eta * one_minus_eta / np.exp(2 * log_c)
        inner = np.where(s_stat > 0, s_stat / h, 0.0) - np.where(f_stat > 0, f_stat / h1, 0.0)
    return value, float(np.sum(d * de[None, :] * inner))


def tie_q(term: TieTerm, tie_weight, s_stat, f_stat, eta, one_minus_eta, mu, ties: TieParams):
    """The part of EM's ``Q`` that moves with the tie parameters, with its prior.

    Returns the value and the gradient in the coordinates of
    :meth:`TieParams.to_vector`.
    """
    v_t, g_t = term.weighted(tie_weight, eta, one_minus_eta, ties, grad=True)
    v_d, g_k = direction_q(s_stat, f_stat, eta, one_minus_eta, mu, ties.kappa, grad=True)
    value = v_t + v_d + tie_log_prior(ties)
    dk = g_t[0] + g_k
    da, db = g_t[1], g_t[2]
    kappa, mean, conc = ties
    grad = np.array(
        [
            dk * kappa * (1 - kappa),
            conc * (da - db) * mean * (1 - mean),
            ties.a * da + ties.b * db,
        ]
    )
    return value, grad + _tie_log_prior_grad(ties)
