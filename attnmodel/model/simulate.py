"""Synthetic users and their votes.

A user with attentiveness ``eta`` votes for pair ``k``'s stronger model with
probability ``1/2 + eta * (mu_k - 1/2)``. The reward-score scheme draws the
same distribution the way the paper's section 4.2 does: each comparison has
reward scores for both responses (the stronger model's response scores higher
with probability ``mu``), and on each vote the user is attentive with
probability ``eta`` (then picks the higher score) or flips a coin.

Ties (``tau``, ``kappa``; see :mod:`attnmodel.model.ties`): user ``j`` has a
tie propensity ``tau_j`` of its own. Each vote is attentive with probability
``eta_j``: it is then a tie with probability ``tau_j`` and otherwise goes to the
stronger model with probability ``mu``; a careless vote is a tie with
probability ``tau_j + (1 - tau_j) kappa`` and otherwise a coin flip. The votes
are drawn by this mechanism, vote by vote, not from the likelihood derived
from it.

Responses with features (:class:`ResponseFeatures`, :func:`simulate_response_votes`)
extend the reward-score scheme for training a reward model on the votes: each
response is a feature vector whose true reward is a function of it, the two
models generate responses whose reward gap gives the pair its ``mu``, and an
attentive vote goes to the response of higher true reward.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.texts import add_texts
from attnmodel.model.families import Family, family_for_params

__all__ = [
    "SimulatedVotes",
    "simulate_votes",
    "simulate_counts",
    "simulate_tie_counts",
    "draw_n_votes",
    "draw_tau",
    "ResponseFeatures",
    "simulate_response_votes",
    "attach_response_features",
]


def draw_n_votes(n_votes, n_users: int, rng: np.random.Generator) -> np.ndarray:
    """Votes per user from an int (fixed), a ``(lo, hi)`` range (uniform, inclusive) or an array."""
    if isinstance(n_votes, (int, np.integer)):
        if n_votes < 1:
            raise ValueError(f"n_votes must be >= 1, got {n_votes}")
        return np.full(n_users, int(n_votes), dtype=np.int64)
    arr = np.asarray(n_votes)
    if arr.shape == (2,) and not (n_users == 2 and isinstance(n_votes, np.ndarray)):
        lo, hi = int(arr[0]), int(arr[1])
        if not 1 <= lo <= hi:
            raise ValueError(f"n_votes range must satisfy 1 <= lo <= hi, got {lo}..{hi}")
        return rng.integers(lo, hi + 1, size=n_users, dtype=np.int64)
    if arr.shape != (n_users,) or np.any(arr < 1):
        raise ValueError(
            "n_votes must be an int >= 1, a (lo, hi) range, or one count >= 1 per user"
        )
    return arr.astype(np.int64)


def _pairs_and_mu(mu, pairs) -> tuple[list[str], np.ndarray]:
    if isinstance(mu, Mapping):
        labels = [str(p) for p in mu]
        values = np.array([float(v) for v in mu.values()])
    else:
        labels = list(pairs) if pairs is not None else ["A vs B"]
        values = np.full(len(labels), float(mu))
    if np.any((values <= 0.5) | (values > 1)):
        raise ValueError(f"every mu must lie in (1/2, 1], got {values}")
    return labels, values


def draw_tau(tau, n_users: int, rng: np.random.Generator) -> np.ndarray:
    """Tie propensities from a number (all users), an ``(a, b)`` Beta population or an array."""
    if isinstance(tau, (int, float, np.floating)):
        out = np.full(n_users, float(tau))
    else:
        arr = np.asarray(tau, dtype=float)
        if arr.shape == (2,) and not (n_users == 2 and isinstance(tau, np.ndarray)):
            if np.any(arr <= 0):
                raise ValueError(f"a Beta population of tau needs a, b > 0, got {tau}")
            out = rng.beta(arr[0], arr[1], size=n_users)
        elif arr.shape == (n_users,):
            out = arr.copy()
        else:
            raise ValueError("tau must be a number, an (a, b) Beta population or one per user")
    if np.any((out < 0) | (out > 1)):
        raise ValueError("tie propensities tau must lie in [0, 1]")
    return out


def _tie_votes(rng, eta_v, tau_v, kappa, mu_v) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: (went to the stronger model, was a tie), by the mechanism of the module."""
    if not 0.0 <= kappa < 1.0:
        raise ValueError(f"kappa must lie in [0, 1), got {kappa}")
    size = eta_v.size
    attentive = rng.random(size) < eta_v
    tie_rate = np.where(attentive, tau_v, tau_v + (1.0 - tau_v) * kappa)
    tie = rng.random(size) < tie_rate
    z = rng.random(size) < np.where(attentive, mu_v, 0.5)
    return z & ~tie, tie


def simulate_tie_counts(
    eta,
    tau,
    kappa: float,
    n_votes,
    mu: float | Sequence[float] = 0.8,
    *,
    pair_probs: Sequence[float] | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user, per-pair counts ``(n, s, t)`` of users with given ``eta`` and ``tau``.

    Every vote (ties included) is drawn by the mechanism of the module, so
    users of any kind can be put together: careful frequent tiers (high
    ``eta``, high ``tau``), tie spammers (low ``eta``, ``kappa`` near 1), ...

    Parameters
    ----------
    eta : array_like, shape (m,)
    tau : float, (a, b) or array_like of shape (m,)
        Tie propensities (see :func:`draw_tau`).
    kappa : float
        Extra tie rate of careless votes, in [0, 1).
    n_votes : int, (lo, hi) or array of shape (m,)
        Votes per user, ties included.
    mu : float or sequence of float, length P
        Win rate of each pair's stronger model.
    pair_probs : sequence of float, optional
        Probability that a vote concerns each pair (default uniform).
    seed : int, optional

    Returns
    -------
    n, s, t : ndarray of int64, shape (m, P)
        Votes other than ties, of them for the stronger model, and ties.
    """
    rng = np.random.default_rng(seed)
    eta = np.asarray(eta, dtype=float)
    m = eta.size
    tau_u = draw_tau(tau, m, rng)
    mu_values = np.atleast_1d(np.asarray(mu, dtype=float))
    n_pairs = mu_values.size
    votes = draw_n_votes(n_votes, m, rng)
    user = np.repeat(np.arange(m), votes)
    probs = None if pair_probs is None else np.asarray(pair_probs, float) / np.sum(pair_probs)
    pair = rng.choice(n_pairs, size=user.size, p=probs)
    z, tie = _tie_votes(rng, eta[user], tau_u[user], float(kappa), mu_values[pair])
    cell = user * n_pairs + pair
    size = m * n_pairs
    t = np.bincount(cell[tie], minlength=size).reshape(m, n_pairs)
    n = np.bincount(cell[~tie], minlength=size).reshape(m, n_pairs)
    s = np.bincount(cell[z], minlength=size).reshape(m, n_pairs)
    return n, s, t


@dataclass
class SimulatedVotes:
    """Simulated votes with the truth that generated them.

    Attributes
    ----------
    votes : pandas.DataFrame
        One row per vote: ``user``, ``pair``, ``z`` (oriented layout) or
        ``user``, ``model_a``, ``model_b``, ``winner`` (raw layout), plus
        ``reward_a``/``reward_b`` for the reward-score scheme.
    eta : pandas.Series
        True attentiveness, indexed by user.
    mu : pandas.Series
        True win rate per pair.
    family : Family
    params : dict
    tau : pandas.Series or None
        True tie propensity per user when ties were simulated.
    kappa : float or None
        Extra tie rate of careless votes when ties were simulated.
    features : numpy.ndarray or None, shape (2 N, dim)
        With :func:`simulate_response_votes`: the feature vector of every
        response; the columns ``response_a`` and ``response_b`` hold row
        numbers into it (as text).
    responses : ResponseFeatures or None
        The scheme that generated ``features``.
    """

    votes: pd.DataFrame
    eta: pd.Series
    mu: pd.Series
    family: Family
    params: dict[str, Any]
    tau: pd.Series | None = None
    kappa: float | None = None
    features: np.ndarray | None = None
    responses: ResponseFeatures | None = None

    def to_data(self, **kwargs):
        """The votes as a :class:`attnmodel.data.votes.VoteData`."""
        from attnmodel.data.votes import VoteData

        if "z" in self.votes.columns:
            kwargs.setdefault("pair", "pair")
        return VoteData.from_frame(self.votes, **kwargs)


def simulate_counts(
    family: str | Family,
    params: dict[str, Any],
    n_users: int,
    n_votes,
    mu: float = 0.8,
    *,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user counts for one pair without materialising vote rows (fast for 10^6 users).

    Returns
    -------
    n, s, eta : ndarray, shape (n_users,)
    """
    fam = family_for_params(family, params)
    params = fam.validate(params)
    rng = np.random.default_rng(seed)
    eta = fam.sample(params, n_users, rng)
    n = draw_n_votes(n_votes, n_users, rng)
    s = rng.binomial(n, 0.5 + eta * (float(mu) - 0.5))
    return n, s, eta


def simulate_votes(
    family: str | Family,
    params: dict[str, Any],
    n_users: int,
    n_votes,
    mu: float | Mapping[str, float] = 0.8,
    *,
    pairs: Sequence[str] | None = None,
    pair_probs: Sequence[float] | None = None,
    layout: str = "oriented",
    reward_scores: bool = False,
    seed: int | None = None,
    texts: bool = False,
    tau=None,
    kappa: float = 0.0,
) -> SimulatedVotes:
    """Simulate a vote log.

    Parameters
    ----------
    family : str or Family
    params : dict
        Parameters of ``P_eta``.
    n_users : int
    n_votes : int, (lo, hi) or array of shape (n_users,)
        Votes per user.
    mu : float or mapping pair -> float
        Win rate(s) of the stronger model(s).
    pairs : sequence of str, optional
        Pair labels when ``mu`` is one number (default one pair ``"A vs B"``).
        In the raw layout a label ``"X vs Y"`` names the stronger model X.
    pair_probs : sequence of float, optional
        Probability that a vote concerns each pair (default uniform).
    layout : {"oriented", "raw"}
        Raw rows show the two models in random order with a ``winner`` column.
        The default here is ``"oriented"``; the command line's ``simulate``
        writes ``"raw"`` unless given ``--layout oriented``.
    reward_scores : bool
        Use the reward-score scheme and add ``reward_a``, ``reward_b``.
    seed : int, optional
    texts : bool
        Add synthetic ``prompt``, ``response_a`` and ``response_b`` columns
        (:func:`attnmodel.data.texts.add_texts`, seeded with ``seed``), as the
        command line's ``simulate --texts`` does, so that the votes can be
        exported as DPO pairs.
    tau : float, (a, b) or array of shape (n_users,), optional
        Tie propensities (:func:`draw_tau`); ties need the raw layout, where
        they are written as ``winner = "tie"``. None: no ties.
    kappa : float
        Extra tie rate of careless votes, in [0, 1) (with ``tau``).

    Returns
    -------
    SimulatedVotes
    """
    fam = family_for_params(family, params)
    params = fam.validate(params)
    labels, mu_values = _pairs_and_mu(mu, pairs)
    if layout not in ("oriented", "raw"):
        raise ValueError(f"layout must be 'oriented' or 'raw', got {layout!r}")
    if tau is not None and (layout != "raw" or reward_scores):
        raise ValueError("ties (tau) are simulated in the raw layout without reward scores")
    rng = np.random.default_rng(seed)
    eta = fam.sample(params, n_users, rng)
    n = draw_n_votes(n_votes, n_users, rng)
    user = np.repeat(np.arange(n_users), n)
    total = int(n.sum())
    probs = None if pair_probs is None else np.asarray(pair_probs, float) / np.sum(pair_probs)
    pair = rng.choice(len(labels), size=total, p=probs)
    if reward_scores:
        stronger_better = rng.random(total) < mu_values[pair]
        attentive = rng.random(total) < eta[user]
        coin = rng.random(total) < 0.5
        z = np.where(attentive, stronger_better, coin)
        gap = rng.exponential(1.0, size=total)
        base = rng.normal(0.0, 1.0, size=total)
        reward_strong = np.where(stronger_better, base + gap, base - gap)
    elif tau is not None:
        tau_u = draw_tau(tau, n_users, rng)
        z, tie = _tie_votes(rng, eta[user], tau_u[user], float(kappa), mu_values[pair])
    else:
        z = rng.random(total) < 0.5 + eta[user] * (mu_values[pair] - 0.5)
    users = np.array([f"u{j:0{len(str(n_users - 1))}d}" for j in range(n_users)], dtype=object)
    frame: dict[str, Any] = {"user": users[user]}
    if layout == "oriented":
        frame["pair"] = np.asarray(labels, dtype=object)[pair]
        frame["z"] = z.astype(np.int8)
        if reward_scores:
            frame["reward_a"] = reward_strong
            frame["reward_b"] = base
    else:
        names = [
            lab.split(" vs ", 1) if " vs " in lab else [f"{lab}:A", f"{lab}:B"] for lab in labels
        ]
        strong = np.array([x[0] for x in names], dtype=object)[pair]
        weak = np.array([x[1] for x in names], dtype=object)[pair]
        swap = rng.random(total) < 0.5
        frame["model_a"] = np.where(swap, weak, strong)
        frame["model_b"] = np.where(swap, strong, weak)
        strong_won = z.astype(bool)
        a_won = strong_won ^ swap
        frame["winner"] = np.where(a_won, "model_a", "model_b")
        if tau is not None:
            frame["winner"] = np.where(tie, "tie", frame["winner"])
        if reward_scores:
            frame["reward_a"] = np.where(swap, base, reward_strong)
            frame["reward_b"] = np.where(swap, reward_strong, base)
    votes = pd.DataFrame(frame)
    if texts:
        votes = add_texts(votes, seed)
    return SimulatedVotes(
        votes=votes,
        eta=pd.Series(eta, index=pd.Index(users, name="user"), name="eta"),
        mu=pd.Series(mu_values, index=pd.Index(labels, name="pair"), name="mu"),
        family=fam,
        params=params,
        tau=None if tau is None else pd.Series(tau_u, index=pd.Index(users, name="user")),
        kappa=None if tau is None else float(kappa),
    )


@functools.lru_cache(maxsize=4)
def _squares_gap(n: int) -> np.ndarray:
    """``Z1^2 - Z2^2`` for ``n`` pairs of standard normals from a fixed seed (read-only)."""
    z = np.random.default_rng(12345).standard_normal((n, 2))
    out = z[:, 0] ** 2 - z[:, 1] ** 2
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class ResponseFeatures:
    """Responses as feature vectors with a true reward.

    A response is a point ``x`` in ``R^dim``. Its true reward is

    ``r(x) = w . x + curvature * (v . x)^2 / 2``

    with ``w`` and ``v`` orthonormal: linear, plus a mild nonlinearity that no
    linear reward model captures. The weaker model of a pair (and the base
    policy that fresh evaluation responses come from) draws ``x ~ N(0, I)``; the
    stronger model draws ``x ~ N(shift * u, I)`` where the direction of its
    advantage ``u = cos(angle) w + sin(angle) s`` also moves along a direction
    ``s`` (style) that the reward ignores. ``shift`` is set so that the
    stronger model's response has the higher reward with probability ``mu``.
    The larger ``mu``, the more the chosen and rejected responses differ in
    style as well as in reward, so a reward model trained on them learns style
    (the paper's observation that too large a gap between the models hinders
    training).

    Parameters
    ----------
    dim : int
        Features per response (at least 3).
    curvature : float
        Weight of the quadratic term.
    angle : float
        Angle (radians) between the stronger model's advantage and ``w``.
    seed : int
        Seeds the directions ``w``, ``v``, ``s``.
    """

    dim: int = 200
    curvature: float = 0.3
    angle: float = np.pi / 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 3:
            raise ValueError(f"dim must be at least 3, got {self.dim}")
        if not 0.0 <= self.angle < np.pi / 2:
            raise ValueError(f"angle must lie in [0, pi/2), got {self.angle}")

    def directions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(w, v, u)``: reward direction, curvature direction, stronger model's advantage."""
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, 3)))
        w, v, s = q.T
        return w, v, np.cos(self.angle) * w + np.sin(self.angle) * s

    def reward(self, x: np.ndarray) -> np.ndarray:
        """True reward of each row of ``x`` (shape ``(k, dim)``)."""
        w, v, _ = self.directions()
        return x @ w + 0.5 * self.curvature * (x @ v) ** 2

    def win_rate(self, shift: float, n: int = 200_000) -> float:
        """P(the stronger model's response has the higher reward) at ``shift``.

        Only ``w . x`` and ``v . x`` matter: given the quadratic terms ``Q``,
        the linear gap is normal, so ``mu = E[Phi((shift cos(angle) + Q) / sqrt 2)]``,
        averaged over ``n`` draws of ``Q`` from a fixed seed.
        """
        from scipy.special import ndtr

        q = 0.5 * self.curvature * _squares_gap(n)
        return float(np.mean(ndtr((shift * np.cos(self.angle) + q) / np.sqrt(2.0))))

    @functools.lru_cache(maxsize=64)  # noqa: B019 (frozen, hashable, few instances)
    def shift_for(self, mu: float) -> float:
        """The stronger model's shift that gives win rate ``mu`` (bisection)."""
        if not 0.5 <= mu < 1.0:
            raise ValueError(f"mu must lie in [1/2, 1), got {mu}")
        lo, hi = 0.0, 1.0
        while self.win_rate(hi) < mu:
            hi *= 2.0
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.win_rate(mid) < mu else (lo, mid)
        return 0.5 * (lo + hi)

    def draw(self, size: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
        """``size`` responses of a model whose mean is ``shift * u`` (0: the weaker/base model)."""
        x = rng.standard_normal((size, self.dim))
        if shift:
            x += shift * self.directions()[2]
        return x


def simulate_response_votes(
    family: str | Family,
    params: dict[str, Any],
    n_users: int,
    n_votes,
    mu: float = 0.8,
    *,
    responses: ResponseFeatures | None = None,
    seed: int | None = None,
    tau=None,
    kappa: float = 0.0,
    models: tuple[str, str] = ("model-A", "model-B"),
) -> SimulatedVotes:
    """Votes on responses with features, in the raw layout (one pair of models).

    Each vote shows a response of the stronger model ``models[0]`` and one of
    the weaker ``models[1]`` in random order, drawn by ``responses`` so that the
    stronger one has the higher true reward with probability ``mu``. An
    attentive vote goes to the response of higher true reward, a careless one
    is a coin flip; with ``tau`` the votes include ties by the mechanism of the
    module (an attentive vote is a tie with probability ``tau_j``, a careless
    one with ``tau_j + (1 - tau_j) kappa``).

    Parameters
    ----------
    family, params, n_users, n_votes
        As :func:`simulate_votes`.
    mu : float
        Win rate of the stronger model, in [1/2, 1).
    responses : ResponseFeatures, optional
        Default ``ResponseFeatures()``.
    seed : int, optional
    tau, kappa
        Ties, as :func:`simulate_votes`.
    models : (str, str)
        Names of the stronger and the weaker model.

    Returns
    -------
    SimulatedVotes
        ``votes`` has ``user``, ``model_a``, ``model_b``, ``winner``,
        ``prompt``, ``response_a``, ``response_b`` (row numbers into
        ``features``, as text), ``reward_a`` and ``reward_b``.
    """
    responses = responses if responses is not None else ResponseFeatures()
    fam = family_for_params(family, params)
    params = fam.validate(params)
    shift = responses.shift_for(float(mu))
    rng = np.random.default_rng(seed)
    eta = fam.sample(params, n_users, rng)
    n = draw_n_votes(n_votes, n_users, rng)
    user = np.repeat(np.arange(n_users), n)
    total = int(n.sum())
    strong_x = responses.draw(total, rng, shift)
    weak_x = responses.draw(total, rng)
    strong_r, weak_r = responses.reward(strong_x), responses.reward(weak_x)
    better = strong_r > weak_r
    if tau is not None:
        tau_u = draw_tau(tau, n_users, rng)
        # P(stronger better) is 0 or 1 per vote: the attentive vote follows the rewards.
        z, tie = _tie_votes(rng, eta[user], tau_u[user], float(kappa), better.astype(float))
    else:
        attentive = rng.random(total) < eta[user]
        z = np.where(attentive, better, rng.random(total) < 0.5)
        tie = np.zeros(total, dtype=bool)
    swap = rng.random(total) < 0.5
    row = np.arange(total)
    # Features: rows 0..N-1 the stronger model's responses, N..2N-1 the weaker's.
    ids = np.char.mod("%d", np.stack([row, total + row]))
    users = np.array([f"u{j:0{len(str(n_users - 1))}d}" for j in range(n_users)], dtype=object)
    a_won = z.astype(bool) ^ swap
    votes = pd.DataFrame(
        {
            "user": users[user],
            "model_a": np.where(swap, models[1], models[0]),
            "model_b": np.where(swap, models[0], models[1]),
            "winner": np.where(tie, "tie", np.where(a_won, "model_a", "model_b")),
            "prompt": np.char.mod("prompt %d", row),
            "response_a": np.where(swap, ids[1], ids[0]),
            "response_b": np.where(swap, ids[0], ids[1]),
            "reward_a": np.where(swap, weak_r, strong_r),
            "reward_b": np.where(swap, strong_r, weak_r),
        }
    )
    return SimulatedVotes(
        votes=votes,
        eta=pd.Series(eta, index=pd.Index(users, name="user"), name="eta"),
        mu=pd.Series([float(mu)], index=pd.Index([f"{models[0]} vs {models[1]}"], name="pair")),
        family=fam,
        params=params,
        tau=None if tau is None else pd.Series(tau_u, index=pd.Index(users, name="user")),
        kappa=None if tau is None else float(kappa),
        features=np.concatenate([strong_x, weak_x]),
        responses=responses,
    )


def _pairs_in_order(
    responses: ResponseFeatures, better: np.ndarray, shift: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stronger and weaker responses per vote, the stronger one better exactly where ``better``."""
    strong = np.empty((better.size, responses.dim))
    weak = np.empty_like(strong)
    need = {True: np.flatnonzero(better), False: np.flatnonzero(~better)}
    while need[True].size or need[False].size:
        size = max(need[True].size, need[False].size, 64)
        s, w = responses.draw(size, rng, shift), responses.draw(size, rng)
        won = responses.reward(s) > responses.reward(w)
        for outcome in (True, False):
            slots, got = need[outcome], np.flatnonzero(won == outcome)
            k = min(slots.size, got.size)
            strong[slots[:k]], weak[slots[:k]] = s[got[:k]], w[got[:k]]
            need[outcome] = slots[k:]
    return strong, weak


def attach_response_features(
    sim: SimulatedVotes,
    responses: ResponseFeatures | None = None,
    *,
    seed: int | None = None,
) -> SimulatedVotes:
    """Responses with features for a log simulated without them, consistent with its votes.

    Given a vote and its user's true ``eta``, whether the stronger model's
    response had the higher reward is drawn from its conditional probability
    (a vote for the stronger model came from an attentive user who saw it
    better, ``eta mu``, or from a coin flip, ``(1 - eta) / 2``), and the two
    responses are then drawn given that order. The result has the joint
    distribution of :func:`simulate_response_votes`, on the log's own votes.

    Parameters
    ----------
    sim : SimulatedVotes
        Raw layout, one pair, no ties (``simulate_votes(..., layout="raw")``).
    responses : ResponseFeatures, optional
    seed : int, optional

    Returns
    -------
    SimulatedVotes
        A copy whose votes gain ``feature_a`` and ``feature_b`` (row numbers
        into ``features``, as text) and ``reward_a``, ``reward_b``.
    """
    responses = responses if responses is not None else ResponseFeatures()
    votes = sim.votes
    if "winner" not in votes.columns or sim.tau is not None or len(sim.mu) != 1:
        raise ValueError("attach_response_features needs one pair in the raw layout without ties")
    mu = float(sim.mu.iloc[0])
    strong_name = str(sim.mu.index[0]).split(" vs ", 1)[0]
    swap = (votes["model_a"] != strong_name).to_numpy()
    z = (votes["winner"] == "model_a").to_numpy() ^ swap
    eta = sim.eta.reindex(votes["user"]).to_numpy()
    p_better = np.where(
        z,
        mu * (1 + eta) / 2 / (eta * mu + (1 - eta) / 2),
        mu * (1 - eta) / 2 / (eta * (1 - mu) + (1 - eta) / 2),
    )
    rng = np.random.default_rng(seed)
    better = rng.random(len(votes)) < p_better
    strong_x, weak_x = _pairs_in_order(responses, better, responses.shift_for(mu), rng)
    strong_r, weak_r = responses.reward(strong_x), responses.reward(weak_x)
    row = np.arange(len(votes))
    ids = np.char.mod("%d", np.stack([row, len(votes) + row]))
    out = votes.assign(
        feature_a=np.where(swap, ids[1], ids[0]),
        feature_b=np.where(swap, ids[0], ids[1]),
        reward_a=np.where(swap, weak_r, strong_r),
        reward_b=np.where(swap, strong_r, weak_r),
    )
    return dataclasses.replace(
        sim, votes=out, features=np.concatenate([strong_x, weak_x]), responses=responses
    )
