"""The paper's downstream experiments on a preference-learning proxy without a language model.

The paper trains DPO on the kept votes and scores the trained LLM with a
reward model (its section 4.2, Tables 1-2, Figure 6). The proxy keeps the
pipeline and replaces the LLM by a Bradley-Terry reward model on response
features:

1. votes on responses with features (:func:`attnmodel.model.simulate.simulate_response_votes`):
   each response has a feature vector and a true reward, the stronger model's
   response has the higher reward with probability ``mu``, and users vote by
   the attentiveness model;
2. attnmodel's own path: the votes as :class:`~attnmodel.data.votes.VoteData`,
   MAP-EM, :func:`~attnmodel.filtering.filter_users`, and
   :func:`~attnmodel.export.to_dpo` for the ``(chosen, rejected)`` pairs of
   the kept users;
3. a reward model ``s(x) = theta . x`` fitted by L2-penalised logistic
   regression on the feature differences ``x_chosen - x_rejected``
   (:func:`train_reward_model`);
4. its quality on fresh responses of the base policy
   (:class:`ProxyEvaluation`): ``accuracy``, the share of fresh pairs it
   orders as the true reward does, and ``win_rate``, how often the response it
   prefers of two beats a third fresh response (best-of-2 against the base
   policy: 1/2 for a random choice, 2/3 for a perfect reward model).

==============================  =============================================
function                        paper
==============================  =============================================
:func:`proxy_runs`              Table 1 and Figure 6 (all / filtered / oracle
                                votes; quality against the kept fraction)
:func:`mu_tradeoff`             Table 2 (filter against oracle as ``mu`` moves)
:func:`tie_runs`                Table 1 with ties modelled and careless users
                                who tie
==============================  =============================================

Every function returns one row per (setting, seed, selection); :func:`summarize_runs`
gives the mean, standard deviation and 10-90% band over seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.votes import VoteData
from attnmodel.export import to_dpo
from attnmodel.filtering import filter_users
from attnmodel.inference.em import fit_em
from attnmodel.model.simulate import ResponseFeatures, SimulatedVotes, simulate_response_votes
from attnmodel.paper.experiments import PAPER_PRIORS, Truth, child_seed

__all__ = [
    "TABLE1_TRUTHS",
    "SWEET_SPOT_TRUTHS",
    "KEPT_FRACTIONS",
    "PROXY_RESPONSES",
    "ProxyEvaluation",
    "train_reward_model",
    "pair_features",
    "proxy_quality",
    "selections",
    "proxy_runs",
    "mu_tradeoff",
    "tie_runs",
    "summarize_runs",
]

#: The paper's Table 1 truths: type 1, ``0.2 delta(0.2) + 0.8 delta(0.98)``; type 2, ``Beta(6, 2)``.
TABLE1_TRUTHS: tuple[Truth, ...] = (
    Truth(
        "two_point", {"q_low": 0.2, "eta_low": 0.2, "eta_high": 0.98}, "0.2 δ(0.2) + 0.8 δ(0.98)"
    ),
    Truth("beta", {"alpha": 6.0, "beta": 2.0}, "Beta(6, 2)"),
)
#: The truths of the sweet-spot figure (the paper's Figure 6 names Beta(4, 4) and Beta(6, 2)).
SWEET_SPOT_TRUTHS: tuple[Truth, ...] = (
    Truth("beta", {"alpha": 4.0, "beta": 4.0}, "Beta(4, 4)"),
    *TABLE1_TRUTHS,
)
#: Kept fractions of users (rule ``top``) of the sweet-spot figure.
KEPT_FRACTIONS: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)
#: The proxy's responses: 500 features, so that 20,000 votes are few for the reward model.
PROXY_RESPONSES = ResponseFeatures(dim=500)
#: L2 penalty of the reward model (on the sum of the log losses).
L2_PENALTY = 10.0


# ---------------------------------------------------------------------------
# The reward model and its quality
# ---------------------------------------------------------------------------


def train_reward_model(
    chosen: np.ndarray, rejected: np.ndarray, *, l2: float = L2_PENALTY
) -> np.ndarray:
    """Bradley-Terry reward model ``s(x) = theta . x`` from preference pairs.

    Minimises ``sum_i log(1 + exp(-theta . (c_i - r_i))) + l2 |theta|^2 / 2``
    (logistic regression of "chosen beats rejected" on the feature
    differences, no intercept: a Bradley-Terry model is invariant to a shift
    of the reward) with L-BFGS.

    Parameters
    ----------
    chosen, rejected : numpy.ndarray, shape (N, dim)
        Features of the chosen and the rejected response of each pair.
    l2 : float
        Penalty weight, > 0 (it keeps ``theta`` finite when the pairs are
        separable, as clean votes on a linear reward are).

    Returns
    -------
    numpy.ndarray, shape (dim,)
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    chosen = np.asarray(chosen, dtype=np.float64)
    rejected = np.asarray(rejected, dtype=np.float64)
    if chosen.shape != rejected.shape or chosen.ndim != 2:
        raise ValueError(
            f"chosen and rejected must be (N, dim) arrays of one shape, got {chosen.shape} "
            f"and {rejected.shape}"
        )
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    diff = chosen - rejected

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        margin = diff @ theta
        value = np.logaddexp(0.0, -margin).sum() + 0.5 * l2 * theta @ theta
        return float(value), l2 * theta - diff.T @ expit(-margin)

    res = minimize(loss, np.zeros(diff.shape[1]), jac=True, method="L-BFGS-B")
    return res.x


@dataclass
class ProxyEvaluation:
    """Fresh responses of the base policy on which a reward model is scored.

    Parameters
    ----------
    responses : ResponseFeatures
    n_pairs : int
        Fresh pairs (and as many third responses for the win rate).
    seed : int
        The same seed gives every reward model the same fresh responses, so
        selections are compared on one test set.
    """

    responses: ResponseFeatures
    n_pairs: int = 20_000
    seed: int = 0
    _x: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)
    _r: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        x1, x2, x3 = (self.responses.draw(self.n_pairs, rng) for _ in range(3))
        self._x = (x1, x2)
        self._r = tuple(self.responses.reward(x) for x in (x1, x2, x3))

    def score(self, theta: np.ndarray) -> dict[str, float]:
        """``accuracy`` and ``win_rate`` of the reward model ``theta``.

        ``accuracy``: share of fresh pairs ordered as by the true reward.
        ``win_rate``: share of pairs where the response it prefers has a higher
        true reward than a third fresh response (best-of-2 against the base
        policy; a random pick reaches 1/2, the true reward 2/3).
        """
        s1, s2 = self._x[0] @ theta, self._x[1] @ theta
        r1, r2, r3 = self._r
        picked = np.where(s1 >= s2, r1, r2)
        return {
            "accuracy": float(np.mean((s1 > s2) == (r1 > r2))),
            "win_rate": float(np.mean(picked > r3)),
        }


def pair_features(pairs: pd.DataFrame, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of the chosen and the rejected responses of exported pairs.

    ``pairs`` is :func:`~attnmodel.export.to_dpo` output on votes of
    :func:`~attnmodel.model.simulate.simulate_response_votes`, whose responses
    are row numbers into ``features``.
    """
    chosen = pairs["chosen"].astype(np.int64).to_numpy()
    rejected = pairs["rejected"].astype(np.int64).to_numpy()
    return features[chosen], features[rejected]


def proxy_quality(
    sim: SimulatedVotes,
    votes: pd.DataFrame,
    evaluation: ProxyEvaluation,
    *,
    l2: float = L2_PENALTY,
    response_a: str = "response_a",
    response_b: str = "response_b",
) -> dict[str, float]:
    """Train the proxy on the exported pairs of ``votes`` and score it.

    Parameters
    ----------
    sim : SimulatedVotes
        From :func:`~attnmodel.model.simulate.simulate_response_votes` (its
        ``features``).
    votes : pandas.DataFrame
        Vote rows to train on (a filter's ``votes``), ties already left out.
    evaluation : ProxyEvaluation
    l2 : float
    response_a, response_b : str
        Columns of ``votes`` holding the responses' row numbers into
        ``sim.features`` (``feature_a``, ``feature_b`` after
        :func:`~attnmodel.model.simulate.attach_response_features`).

    Returns
    -------
    dict
        ``pairs`` (pairs trained on), ``accuracy``, ``win_rate``.
    """
    if sim.features is None:
        raise ValueError("sim holds no response features: simulate with simulate_response_votes")
    if len(votes) == 0:
        return {"pairs": 0, "accuracy": 0.5, "win_rate": 0.5}
    pairs = to_dpo(votes, response_a=response_a, response_b=response_b)
    chosen, rejected = pair_features(pairs, sim.features)
    return {"pairs": len(votes), **evaluation.score(train_reward_model(chosen, rejected, l2=l2))}


# ---------------------------------------------------------------------------
# Which votes are kept
# ---------------------------------------------------------------------------


def _top_by(values: np.ndarray, fraction: float) -> np.ndarray:
    """The ``round(fraction * m)`` largest values (ties broken by position)."""
    keep = np.zeros(values.size, dtype=bool)
    keep[np.argsort(-values, kind="stable")[: int(round(fraction * values.size))]] = True
    return keep


def selections(
    sim: SimulatedVotes,
    *,
    fit_family: str | None = None,
    fractions: Sequence[float] = (0.8,),
    prob: float | None = 0.95,
    eta_star: float = 0.5,
    ties: str = "drop",
    oracle: bool = True,
    n_init: int = 2,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """The vote rows each selection keeps, from attnmodel's fit and filters.

    The votes are read as :class:`~attnmodel.data.votes.VoteData` (raw layout,
    the simulated stronger model designated), fitted by MAP-EM with the true
    ``mu`` known (the paper's Assumption 1) and flat priors, and filtered.

    Parameters
    ----------
    sim : SimulatedVotes
    fit_family : str, optional
        Default: the family of the truth.
    fractions : sequence of float
        Kept fractions of users for rule ``top`` (``top<f>``) and for the oracle
        (``oracle<f>``: the same fraction by true ``eta``); 1.0 gives ``all``.
    prob : float or None
        Level of rule ``prob`` at ``eta_star`` (``prob<level>``); None: skip.
    eta_star : float
    ties : {"drop", "model"}
        How the fit treats ties (their rows are never exported).
    oracle : bool
    n_init : int
    seed : int

    Returns
    -------
    dict of str to pandas.DataFrame
        Vote rows per selection name, in the order ``all``, ``top...``,
        ``prob...``, ``oracle...``.
    """
    pair = sim.mu.index[0]
    strong = pair.split(" vs ", 1)[0]
    data = VoteData.from_frame(sim.votes, stronger={pair: strong}, ties=ties)
    out: dict[str, pd.DataFrame] = {"all": data.votes}
    fits = [f for f in fractions if f < 1.0]
    if fits or prob is not None:
        res = fit_em(
            data,
            fit_family or sim.family.name,
            mu=float(sim.mu.iloc[0]),
            n_init=n_init,
            seed=seed,
            warn=False,
            priors=PAPER_PRIORS,
        )
        post = res.posterior()
        for f in fits:
            out[f"top{f:g}"] = filter_users(
                res, rule="top", top=f, posterior=post, force=True
            ).votes
        if prob is not None:
            kept = filter_users(res, rule="prob", eta_star=eta_star, prob=prob, force=True)
            out[f"prob{prob:g}"] = kept.votes
    if oracle:
        eta = sim.eta.reindex(data.users).to_numpy()
        for f in fits:
            keep = _top_by(eta, f)
            out[f"oracle{f:g}"] = data.votes[keep[data.vote_user]]
    return out


# ---------------------------------------------------------------------------
# The experiments
# ---------------------------------------------------------------------------


def _runs(
    settings: Iterable[tuple[dict[str, Any], Truth, float, dict[str, Any]]],
    seeds: Iterable[int],
    select: Mapping[str, Any],
    n_users: int,
    n_votes,
    responses: ResponseFeatures,
    n_eval: int,
) -> pd.DataFrame:
    evaluation = ProxyEvaluation(responses, n_eval)
    rows = []
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("need at least one seed")
    for k, (labels, truth, mu, sim_kw) in enumerate(settings):
        for seed in seeds:
            sim = simulate_response_votes(
                truth.family,
                dict(truth.params),
                n_users,
                n_votes,
                mu,
                responses=responses,
                seed=child_seed(seed, k),
                **sim_kw,
            )
            for name, votes in selections(sim, seed=seed, **select).items():
                q = proxy_quality(sim, votes, evaluation)
                rows.append({**labels, "seed": seed, "selection": name, **q})
    return pd.DataFrame(rows)


def proxy_runs(
    truths: Sequence[Truth] = SWEET_SPOT_TRUTHS,
    *,
    fractions: Sequence[float] = KEPT_FRACTIONS,
    prob: float | None = 0.95,
    mu: float = 0.8,
    n_users: int = 400,
    n_votes=50,
    seeds: Iterable[int] = range(20),
    responses: ResponseFeatures = PROXY_RESPONSES,
    n_eval: int = 20_000,
    n_init: int = 2,
) -> pd.DataFrame:
    """All votes against filtered and oracle-filtered votes (the paper's Table 1 and Figure 6).

    For each truth and seed: votes on responses with features, MAP-EM with the
    truth's family and ``mu`` known, the selections of :func:`selections`
    (rule ``top`` at each kept fraction, rule ``prob`` at ``eta_star = 0.5``,
    the oracle at each fraction), and the proxy's quality for each.

    Parameters
    ----------
    truths : sequence of Truth
    fractions : sequence of float
        Kept fractions (1.0 is all votes).
    prob : float or None
    mu : float
    n_users, n_votes
        Default 400 users with 50 votes each (the paper's section 4.2).
    seeds : iterable of int
    responses : ResponseFeatures
    n_eval : int
        Fresh pairs of the evaluation.
    n_init : int

    Returns
    -------
    pandas.DataFrame
        One row per (truth, seed, selection): ``truth`` (label), ``seed``,
        ``selection``, ``pairs``, ``accuracy``, ``win_rate``.
    """
    settings = [({"truth": t.label}, t, mu, {}) for t in truths]
    select = {"fractions": fractions, "prob": prob, "n_init": n_init}
    return _runs(settings, seeds, select, n_users, n_votes, responses, n_eval)


def mu_tradeoff(
    mus: Sequence[float] = (0.55, 0.65, 0.75, 0.85, 0.95),
    *,
    truth: Truth = TABLE1_TRUTHS[1],
    fraction: float = 0.8,
    n_users: int = 400,
    n_votes=50,
    seeds: Iterable[int] = range(20),
    responses: ResponseFeatures = PROXY_RESPONSES,
    n_eval: int = 20_000,
    n_init: int = 2,
) -> pd.DataFrame:
    """All votes, the top ``fraction`` by the fit and by true ``eta`` as ``mu`` moves (Table 2).

    Parameters
    ----------
    mus : sequence of float
        Win rates of the stronger model, each in (1/2, 1).
    truth : Truth
        Default Beta(6, 2), the paper's type 2.
    fraction : float
    n_users, n_votes, seeds, responses, n_eval, n_init
        As :func:`proxy_runs`.

    Returns
    -------
    pandas.DataFrame
        One row per (mu, seed, selection) with ``mu`` and the columns of
        :func:`proxy_runs` but ``truth``.
    """
    settings = [({"mu": float(mu)}, truth, float(mu), {}) for mu in mus]
    select = {"fractions": (fraction,), "prob": None, "n_init": n_init}
    return _runs(settings, seeds, select, n_users, n_votes, responses, n_eval)


def tie_runs(
    *,
    truth: Truth = TABLE1_TRUTHS[0],
    tau: float = 0.1,
    kappa: float = 0.6,
    mu: float = 0.8,
    fraction: float = 0.8,
    n_users: int = 400,
    n_votes=50,
    seeds: Iterable[int] = range(20),
    responses: ResponseFeatures = PROXY_RESPONSES,
    n_eval: int = 20_000,
    n_init: int = 2,
) -> pd.DataFrame:
    """Table 1 with ties: careless users who tie, fitted with ties dropped and with ties modelled.

    Every user ties an attentive vote with probability ``tau``; a careless
    vote is a tie with probability ``tau + (1 - tau) kappa``, so casual users
    tie often. Ties are never exported. Both fits use the Beta family (ties
    are modelled for continuous families only); selections are named
    ``top<f>``/``prob0.95`` with the suffix ``/drop`` or ``/model``.

    Returns
    -------
    pandas.DataFrame
        One row per (seed, selection), the columns of :func:`proxy_runs`.
    """
    evaluation = ProxyEvaluation(responses, n_eval)
    rows = []
    for seed in (int(s) for s in seeds):
        sim = simulate_response_votes(
            truth.family,
            dict(truth.params),
            n_users,
            n_votes,
            mu,
            responses=responses,
            seed=child_seed(seed, 0),
            tau=tau,
            kappa=kappa,
        )
        picked: dict[str, pd.DataFrame] = {}
        for ties in ("drop", "model"):
            sel = selections(
                sim,
                fit_family="beta",
                fractions=(fraction,),
                ties=ties,
                oracle=ties == "drop",
                n_init=n_init,
                seed=seed,
            )
            for name, votes in sel.items():
                if name == "all" or name.startswith("oracle"):
                    picked.setdefault(name, votes)
                else:
                    picked[f"{name}/{ties}"] = votes
        for name, votes in picked.items():
            q = proxy_quality(sim, votes, evaluation)
            rows.append({"truth": truth.label, "seed": seed, "selection": name, **q})
    return pd.DataFrame(rows)


def summarize_runs(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and 10-90% band over seeds of each quality measure.

    Also the mean difference to ``all`` of the same seed (paired, so its spread
    is free of the seed-to-seed variation the selections share) and its
    standard deviation.

    Parameters
    ----------
    runs : pandas.DataFrame
        Output of :func:`proxy_runs`, :func:`mu_tradeoff` or :func:`tie_runs`.
    by : sequence of str
        Setting columns (``truth``, ``mu``); ``selection`` is added.

    Returns
    -------
    pandas.DataFrame
        One row per setting and selection: ``runs``, ``pairs`` (mean), and for
        ``accuracy`` and ``win_rate`` the ``_mean``, ``_sd``, ``_q10``,
        ``_q90``, ``_gain`` (mean paired difference to ``all``) and
        ``_gain_sd``.
    """
    keys = [*by, "seed"]
    base = runs[runs["selection"] == "all"].set_index(keys)
    rows = []
    for key, grp in runs.groupby([*by, "selection"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip([*by, "selection"], key, strict=True))
        row["runs"] = len(grp)
        row["pairs"] = float(grp["pairs"].mean())
        for metric in ("accuracy", "win_rate"):
            x = grp[metric].to_numpy()
            gain = x - base.loc[pd.MultiIndex.from_frame(grp[keys]), metric].to_numpy()
            row.update(
                {
                    f"{metric}_mean": float(x.mean()),
                    f"{metric}_sd": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
                    f"{metric}_q10": float(np.quantile(x, 0.1)),
                    f"{metric}_q90": float(np.quantile(x, 0.9)),
                    f"{metric}_gain": float(gain.mean()),
                    f"{metric}_gain_sd": float(gain.std(ddof=1)) if x.size > 1 else float("nan"),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)
