"""The paper's synthetic experiments, as functions of their sizes and seeds.

Each function simulates votes, fits them with MAP-EM and returns tidy pandas
tables (or a small dataclass of them); nothing here plots or writes files, so
notebooks, docs and the command line call the same code at full size and the
tests call it small. :mod:`attnmodel.paper.plots` draws what these return.

==============================  =============================================
function                        paper
==============================  =============================================
:func:`em_trajectories`         Figure 3 (EM paths from several starts)
:func:`relative_error_table`    Table 4 (relative error against ``(m, n)``)
:func:`misspecification`        Figure 4 (fits outside the true family)
:func:`logistic_normal_truths`  Figure 7 (3-component logistic-normal fits)
:func:`accuracy_vs_mu`          Figure 8 (recovering attentive users)
:func:`filter_tradeoff`         section 4.2 (votes kept against casual share)
==============================  =============================================

Unless an argument says otherwise the setting is the paper's appendix D.2:
``mu = 0.8`` known, ``m = 400`` users with ``n_j`` drawn uniformly from 50..100.
The fits keep the paper's flat priors on the family parameters
(:data:`PAPER_PRIORS`: maximum likelihood in them, Algorithm 1), not the
package's default priors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.votes import VoteData
from attnmodel.filtering import filter_users
from attnmodel.inference.em import fit_em
from attnmodel.model.families import Family, family_for_params
from attnmodel.model.priors import BetaPrior
from attnmodel.model.simulate import simulate_counts

#: The paper's priors of the family parameters: flat on the admissible box.
PAPER_PRIORS = "flat"

__all__ = [
    "PAPER_PRIORS",
    "TWO_POINT_TRUTH",
    "BETA_TRUTH",
    "PAPER_TRUTHS",
    "TABLE4_CELLS",
    "PAPER_TABLE4",
    "FIGURE7_TRUTHS",
    "Truth",
    "Trajectories",
    "RelativeErrors",
    "DensityFit",
    "child_seed",
    "simulate_data",
    "relative_error",
    "em_trajectories",
    "relative_error_table",
    "density_fit",
    "misspecification",
    "logistic_normal_truths",
    "selection_scores",
    "accuracy_vs_mu",
    "filter_tradeoff",
]

#: Example 1 of the paper: ``0.6 delta(0.4) + 0.4 delta(0.98)``.
TWO_POINT_TRUTH: dict[str, float] = {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98}
#: Example 2 of the paper: ``Beta(3, 5)``.
BETA_TRUTH: dict[str, float] = {"alpha": 3.0, "beta": 5.0}
PAPER_TRUTHS: dict[str, dict[str, float]] = {"two_point": TWO_POINT_TRUTH, "beta": BETA_TRUTH}

#: The ``(m, n)`` cells of the paper's Table 4.
TABLE4_CELLS: tuple[tuple[int, int], ...] = (
    (200, 50),
    (400, 50),
    (200, 100),
    (400, 100),
    (800, 100),
    (800, 200),
)

#: The paper's Table 4 (one run per cell): estimates and ``delta`` (a fraction, not %).
PAPER_TABLE4 = pd.DataFrame(
    [
        ("two_point", 200, 50, {"q_low": 0.53, "eta_low": 0.35, "eta_high": 0.95}, 0.120),
        ("two_point", 400, 50, {"q_low": 0.63, "eta_low": 0.42, "eta_high": 0.99}, 0.051),
        ("two_point", 200, 100, {"q_low": 0.61, "eta_low": 0.39, "eta_high": 0.99}, 0.021),
        ("two_point", 400, 100, {"q_low": 0.60, "eta_low": 0.40, "eta_high": 0.97}, 0.013),
        ("two_point", 800, 100, {"q_low": 0.60, "eta_low": 0.40, "eta_high": 0.98}, 0.008),
        ("two_point", 800, 200, {"q_low": 0.60, "eta_low": 0.40, "eta_high": 0.98}, 0.005),
        ("beta", 200, 50, {"alpha": 3.61, "beta": 5.50}, 0.203),
        ("beta", 400, 50, {"alpha": 2.54, "beta": 4.28}, 0.151),
        ("beta", 200, 100, {"alpha": 2.41, "beta": 4.05}, 0.200),
        ("beta", 400, 100, {"alpha": 2.89, "beta": 4.73}, 0.053),
        ("beta", 800, 100, {"alpha": 2.85, "beta": 4.77}, 0.048),
        ("beta", 800, 200, {"alpha": 3.01, "beta": 5.02}, 0.004),
    ],
    columns=["family", "m", "n", "params", "delta"],
)


@dataclass(frozen=True)
class Truth:
    """A true ``P_eta``: a family and its parameters, with a label for tables and plots."""

    family: str
    params: Mapping[str, Any]
    label: str

    @property
    def dist(self) -> Family:
        """The family instance (component count taken from the parameters)."""
        return family_for_params(self.family, dict(self.params))


#: The four truths of the paper's Figure 7 (appendix D.2), in the paper's order.
FIGURE7_TRUTHS: tuple[Truth, ...] = (
    Truth(
        "beta_mixture",
        {"weights": [0.6, 0.4], "alpha": [4.0, 16.0], "beta": [16.0, 4.0]},
        "0.6 Beta(4,16) + 0.4 Beta(16,4)",
    ),
    Truth(
        "logistic_normal_mixture",
        {"weights": [1.0], "logit_mean": [-0.6], "logit_sd": [0.8]},
        "sigmoid(-0.6 + 0.8 N(0,1))",
    ),
    Truth(
        "k_point",
        {"weights": [0.2, 0.6, 0.2], "locations": [0.2, 0.6, 0.9]},
        "0.2 δ(0.2) + 0.6 δ(0.6) + 0.2 δ(0.9)",
    ),
    Truth(
        "beta_mixture",
        {"weights": [0.2, 0.6, 0.2], "alpha": [8.0, 20.0, 32.0], "beta": [32.0, 20.0, 8.0]},
        "0.2 Beta(8,32) + 0.6 Beta(20,20) + 0.2 Beta(32,8)",
    ),
)


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def child_seed(seed: int, *keys: int) -> int:
    """An independent integer seed for one cell of an experiment.

    Mixing the keys through ``SeedSequence`` keeps cells apart (an additive
    scheme such as ``1000 m + n + seed`` makes different cells share data).
    """
    return int(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(1)[0])


def simulate_data(
    family: str | Family,
    params: Mapping[str, Any],
    n_users: int,
    n_votes,
    mu: float = 0.8,
    *,
    seed: int | None = None,
) -> tuple[VoteData, np.ndarray]:
    """One pair's votes as per-user counts, with the true attentiveness.

    Parameters
    ----------
    family : str or Family
    params : mapping
        Parameters of the true ``P_eta``.
    n_users : int
    n_votes : int, (lo, hi) or array
        Votes per user (see :func:`attnmodel.model.simulate.simulate_counts`).
    mu : float
    seed : int, optional

    Returns
    -------
    data : VoteData
        Users ``0 .. n_users - 1``.
    eta : ndarray, shape (n_users,)
        True attentiveness of each user, in the order of ``data.users``.
    """
    n, s, eta = simulate_counts(family, dict(params), n_users, n_votes, mu, seed=seed)
    return VoteData.from_counts(n, s), eta


def relative_error(estimate: Mapping[str, Any], truth: Mapping[str, Any]) -> float:
    """The paper's relative error ``Delta``: the largest ``|estimate - truth| / |truth|``.

    Taken over every scalar parameter of ``truth`` (component vectors
    element by element), as in the paper's Table 4, e.g.
    ``max(|alpha_hat - alpha| / alpha, |beta_hat - beta| / beta)`` for Beta.

    Parameters
    ----------
    estimate, truth : mapping
        Parameter name -> value (scalar or array); ``estimate`` must hold every
        key of ``truth``.

    Returns
    -------
    float
    """
    missing = [k for k in truth if k not in estimate]
    if missing:
        raise KeyError(f"estimate lacks parameters {missing}")
    worst = 0.0
    for key, value in truth.items():
        t = np.asarray(value, dtype=np.float64)
        e = np.asarray(estimate[key], dtype=np.float64)
        if e.shape != t.shape:
            raise ValueError(f"parameter {key!r}: estimate shape {e.shape} != truth {t.shape}")
        if np.any(t == 0):
            raise ValueError(f"parameter {key!r} is 0 in the truth: relative error undefined")
        worst = max(worst, float(np.max(np.abs(e - t) / np.abs(t))))
    return worst


def _flat_params(family: Family, params: Mapping[str, Any]) -> dict[str, float]:
    return family.flat(family.validate(dict(params)))


# ---------------------------------------------------------------------------
# Figure 3: EM trajectories
# ---------------------------------------------------------------------------

#: Six starts spread over each family's parameter space, away from the truth.
DEFAULT_INITS: dict[str, tuple[dict[str, float], ...]] = {
    "two_point": (
        {"q_low": 0.2, "eta_low": 0.05, "eta_high": 0.5},
        {"q_low": 0.8, "eta_low": 0.1, "eta_high": 0.9},
        {"q_low": 0.5, "eta_low": 0.25, "eta_high": 0.35},
        {"q_low": 0.3, "eta_low": 0.7, "eta_high": 0.99},
        {"q_low": 0.9, "eta_low": 0.6, "eta_high": 0.75},
        {"q_low": 0.4, "eta_low": 0.02, "eta_high": 0.99},
    ),
    "beta": (
        {"alpha": 1.0, "beta": 1.0},
        {"alpha": 1.0, "beta": 10.0},
        {"alpha": 10.0, "beta": 2.0},
        {"alpha": 12.0, "beta": 12.0},
        {"alpha": 6.0, "beta": 16.0},
        {"alpha": 0.6, "beta": 3.0},
    ),
}


@dataclass
class Trajectories:
    """EM paths from several starts on one simulated data set.

    Attributes
    ----------
    family : str
    truth : dict
        True parameters.
    optimum : dict
        Parameters of the best of a separate multi-start fit (EM's maximum).
    optimum_objective : float
        Log posterior at ``optimum``.
    paths : pandas.DataFrame
        One row per iterate: ``start`` (0, 1, ...), ``iteration``, ``step``
        (``start``, ``em``, ``squarem``, ``lbfgs``), ``objective``,
        ``log_likelihood``, ``log_prior`` and one column per flat parameter.
    inits : list of dict
        The starting points, in the order of ``start``.
    param_names : list of str
        Flat parameter columns of ``paths``.
    data : VoteData
    eta : ndarray
        True attentiveness per user.
    """

    family: str
    truth: dict[str, float]
    optimum: dict[str, float]
    optimum_objective: float
    paths: pd.DataFrame
    inits: list[dict[str, float]]
    param_names: list[str]
    data: VoteData
    eta: np.ndarray


def em_trajectories(
    family: str = "two_point",
    *,
    truth: Mapping[str, Any] | None = None,
    inits: Sequence[Mapping[str, Any]] | None = None,
    n_users: int = 400,
    n_votes=(50, 100),
    mu: float = 0.8,
    seed: int = 0,
    accelerate: bool = False,
) -> Trajectories:
    """Paths of EM in parameter space from several starts (the paper's Figure 3).

    Parameters
    ----------
    family : {"two_point", "beta"} or another family name
        Fitted family, also the family of the truth.
    truth : mapping, optional
        True parameters (default: the paper's Example 1 or 2).
    inits : sequence of mapping, optional
        Starting points (default: six spread over the parameter space, in
        :data:`DEFAULT_INITS`).
    n_users : int
    n_votes : int, (lo, hi) or array
    mu : float
        True and known win rate.
    seed : int
        Seeds the simulated votes.
    accelerate : bool
        False (default) records plain EM steps, the path of the paper's
        Algorithm 1; True records what :func:`~attnmodel.inference.em.fit_em` does by
        default (SQUAREM jumps and the L-BFGS finish).

    Returns
    -------
    Trajectories
    """
    if truth is None:
        if family not in PAPER_TRUTHS:
            raise ValueError(f"no default truth for family {family!r}; pass truth=")
        truth = PAPER_TRUTHS[family]
    if inits is None:
        if family not in DEFAULT_INITS:
            raise ValueError(f"no default starts for family {family!r}; pass inits=")
        inits = DEFAULT_INITS[family]
    if len(inits) == 0:
        raise ValueError("inits is empty: give at least one starting point")
    data, eta = simulate_data(family, truth, n_users, n_votes, mu, seed=seed)
    settings: dict[str, Any] = {"mu": mu, "seed": seed, "warn": False, "priors": PAPER_PRIORS}
    if not accelerate:
        settings.update(accelerate=False, polish_after=None)
    frames = []
    for k, init in enumerate(inits):
        res = fit_em(data, family, init=dict(init), n_init=1, **settings)
        # runs_[0] is the path from ``init``; the best run may be the extra moment start.
        path = res.runs_[0].copy()
        path.insert(0, "start", k)
        frames.append(path)
    best = fit_em(data, family, mu=mu, n_init=4, seed=seed, priors=PAPER_PRIORS)
    fam = best.family
    return Trajectories(
        family=fam.name,
        truth=_flat_params(family_for_params(family, dict(truth)), truth),
        optimum=fam.flat(best.params_),
        optimum_objective=best.objective_,
        paths=pd.concat(frames, ignore_index=True),
        inits=[_flat_params(fam, i) for i in inits],
        param_names=list(fam.flat(best.params_)),
        data=data,
        eta=eta,
    )


# ---------------------------------------------------------------------------
# Table 4: relative error against (m, n)
# ---------------------------------------------------------------------------


@dataclass
class RelativeErrors:
    """Table 4 over seeds.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per fit: ``family``, ``m``, ``n``, ``seed``, ``converged``,
        ``n_iter``, the estimated parameters and ``delta``.
    summary : pandas.DataFrame
        One row per ``(family, m, n)``: ``runs``, ``delta_median``,
        ``delta_q25``, ``delta_q75``, the median of each parameter, the
        paper's single run (``paper_<param>``, ``paper_delta``) and
        ``paper_percentile``, the share of our runs with an error at most the
        paper's.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame


def relative_error_table(
    cells: Iterable[tuple[int, int]] = TABLE4_CELLS,
    *,
    seeds: Iterable[int] = range(20),
    families: Sequence[str] = ("two_point", "beta"),
    mu: float = 0.8,
    n_init: int = 2,
) -> RelativeErrors:
    """Relative error ``Delta`` of MAP-EM with known ``mu`` over seeds (the paper's Table 4).

    Every user casts exactly ``n`` votes, as in the paper's table.

    Parameters
    ----------
    cells : iterable of (m, n)
        Users and votes per user (default: the paper's six cells).
    seeds : iterable of int
        One simulated data set per seed and cell (the paper reports one run).
    families : sequence of {"two_point", "beta"}
        Truths: the paper's Example 1 and Example 2.
    mu : float
    n_init : int
        Starts per fit.

    Returns
    -------
    RelativeErrors
    """
    cells = [(int(m), int(n)) for m, n in cells]
    seeds = [int(s) for s in seeds]
    if not cells or not seeds:
        raise ValueError("need at least one cell and one seed")
    rows = []
    for f_idx, family in enumerate(families):
        if family not in PAPER_TRUTHS:
            raise ValueError(f"family must be one of {list(PAPER_TRUTHS)}, got {family!r}")
        truth = PAPER_TRUTHS[family]
        for m, n in cells:
            for seed in seeds:
                data, _ = simulate_data(family, truth, m, n, mu, seed=child_seed(seed, f_idx, m, n))
                res = fit_em(
                    data, family, mu=mu, n_init=n_init, seed=seed, warn=False, priors=PAPER_PRIORS
                )
                rows.append(
                    {
                        "family": family,
                        "m": m,
                        "n": n,
                        "seed": seed,
                        "converged": res.converged_,
                        "n_iter": res.n_iter_,
                        **res.family.flat(res.params_),
                        "delta": relative_error(res.params_, truth),
                    }
                )
    runs = pd.DataFrame(rows)
    return RelativeErrors(runs=runs, summary=_summarize_errors(runs))


def _summarize_errors(runs: pd.DataFrame) -> pd.DataFrame:
    paper = PAPER_TABLE4.set_index(["family", "m", "n"])
    rows = []
    for (family, m, n), grp in runs.groupby(["family", "m", "n"], sort=False):
        d = grp["delta"].to_numpy()
        row: dict[str, Any] = {
            "family": family,
            "m": m,
            "n": n,
            "runs": d.size,
            "converged": int(grp["converged"].sum()),
            "delta_median": float(np.median(d)),
            "delta_q25": float(np.quantile(d, 0.25)),
            "delta_q75": float(np.quantile(d, 0.75)),
        }
        for key in PAPER_TRUTHS[family]:
            row[f"{key}_median"] = float(grp[key].median())
        if (family, m, n) in paper.index:
            p = paper.loc[(family, m, n)]
            for key, value in p["params"].items():
                row[f"paper_{key}"] = value
            row["paper_delta"] = float(p["delta"])
            row["paper_percentile"] = float(np.mean(d <= p["delta"]))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Figures 4 and 7: true against fitted P_eta
# ---------------------------------------------------------------------------


@dataclass
class DensityFit:
    """A true ``P_eta`` and its fit, evaluated on a grid of ``eta``.

    Attributes
    ----------
    truth : Truth
    fit_family : str
    fit_params : dict
        Fitted parameters (flat names).
    curves : pandas.DataFrame
        ``eta``, ``true_pdf``, ``fit_pdf`` (NaN for a discrete distribution),
        ``true_cdf``, ``fit_cdf``.
    atoms : pandas.DataFrame
        Atoms of whichever side is discrete: ``side`` (``"true"`` or
        ``"fit"``), ``location``, ``weight``.
    distance : dict
        ``ks`` (largest CDF gap on the grid) and ``wasserstein`` (integral of
        the absolute CDF gap, the mean distance ``eta`` moves between the two).
    converged : bool
    n_users, n_votes : int
        Users and total votes of the fitted data.
    """

    truth: Truth
    fit_family: str
    fit_params: dict[str, float]
    curves: pd.DataFrame
    atoms: pd.DataFrame
    distance: dict[str, float]
    converged: bool
    n_users: int
    n_votes: int


def _pdf_cdf(family: Family, params: Mapping[str, Any], eta: np.ndarray):
    params = family.validate(dict(params))
    cdf = np.asarray(family.cdf(eta, params), dtype=np.float64)
    if family.discrete:
        return np.full(eta.shape, np.nan), cdf
    return np.exp(family.log_pdf(eta, params)), cdf


def _atoms(side: str, family: Family, params: Mapping[str, Any]) -> pd.DataFrame:
    if not family.discrete:
        return pd.DataFrame({"side": [], "location": [], "weight": []})
    w, loc = family.components(family.validate(dict(params)))
    return pd.DataFrame({"side": side, "location": loc, "weight": w})


def density_fit(
    truth: Truth,
    fit_family: str,
    *,
    n_components: int | None = None,
    n_users: int = 400,
    n_votes=(50, 100),
    mu: float = 0.8,
    seed: int = 0,
    n_init: int = 4,
    grid_size: int = 2001,
) -> DensityFit:
    """Simulate under ``truth``, fit ``fit_family`` with known ``mu`` and compare the two.

    Parameters
    ----------
    truth : Truth
    fit_family : str
    n_components : int, optional
        Components of the fitted family.
    n_users : int
    n_votes : int, (lo, hi) or array
    mu : float
    seed : int
        Seeds the votes and the random starts.
    n_init : int
    grid_size : int
        Points of the ``eta`` grid in (0, 1) for ``curves`` and the distances.

    Returns
    -------
    DensityFit
    """
    data, _ = simulate_data(truth.family, truth.params, n_users, n_votes, mu, seed=seed)
    res = fit_em(
        data,
        fit_family,
        mu=mu,
        n_components=n_components,
        n_init=n_init,
        seed=seed,
        warn=False,
        priors=PAPER_PRIORS,
    )
    # Open grid: densities such as Beta(a < 1) are infinite at the ends.
    eta = (np.arange(grid_size) + 0.5) / grid_size
    true_pdf, true_cdf = _pdf_cdf(truth.dist, truth.params, eta)
    fit_pdf, fit_cdf = _pdf_cdf(res.family, res.params_, eta)
    gap = np.abs(true_cdf - fit_cdf)
    atoms = pd.concat(
        [_atoms("true", truth.dist, truth.params), _atoms("fit", res.family, res.params_)],
        ignore_index=True,
    )
    return DensityFit(
        truth=truth,
        fit_family=res.family.name,
        fit_params=res.family.flat(res.params_),
        curves=pd.DataFrame(
            {
                "eta": eta,
                "true_pdf": true_pdf,
                "fit_pdf": fit_pdf,
                "true_cdf": true_cdf,
                "fit_cdf": fit_cdf,
            }
        ),
        atoms=atoms,
        distance={"ks": float(gap.max()), "wasserstein": float(gap.mean())},
        converged=res.converged_,
        n_users=int(data.counts.n_users),
        n_votes=int(np.sum(data.counts.votes_per_user())),
    )


def misspecification(
    *,
    n_users: int = 400,
    n_votes=(50, 100),
    mu: float = 0.8,
    seed: int = 0,
    n_init: int = 4,
) -> list[DensityFit]:
    """Fits outside the true family (the paper's Figure 4).

    Left: the two-point family fitted to ``0.6 Beta(4, 16) + 0.4 Beta(16, 4)``.
    Right: the Beta family fitted to ``sigmoid(-0.6 + 0.8 N(0, 1))``.

    Parameters
    ----------
    n_users : int
    n_votes : int, (lo, hi) or array
    mu : float
    seed : int
    n_init : int

    Returns
    -------
    list of DensityFit
        The two panels, in the paper's order.
    """
    kw = {"n_users": n_users, "n_votes": n_votes, "mu": mu, "n_init": n_init}
    return [
        density_fit(FIGURE7_TRUTHS[0], "two_point", seed=child_seed(seed, 0), **kw),
        density_fit(FIGURE7_TRUTHS[1], "beta", seed=child_seed(seed, 1), **kw),
    ]


def logistic_normal_truths(
    truths: Sequence[Truth] = FIGURE7_TRUTHS,
    *,
    n_components: int = 3,
    n_users: int = 4000,
    n_votes=500,
    mu: float = 0.8,
    seed: int = 0,
    n_init: int = 4,
) -> list[DensityFit]:
    """A logistic-normal mixture fitted to each of the paper's Figure 7 truths.

    Parameters
    ----------
    truths : sequence of Truth
        Default: the four truths of the paper's appendix D.2.
    n_components : int
        Components of the fitted mixture (the paper uses 3).
    n_users : int
        Default 4000, as in the paper.
    n_votes : int, (lo, hi) or array
        Default 500 per user, as in the paper.
    mu : float
    seed : int
    n_init : int

    Returns
    -------
    list of DensityFit
        One per truth.
    """
    return [
        density_fit(
            t,
            "logistic_normal_mixture",
            n_components=n_components,
            n_users=n_users,
            n_votes=n_votes,
            mu=mu,
            seed=child_seed(seed, k),
            n_init=n_init,
        )
        for k, t in enumerate(truths)
    ]


# ---------------------------------------------------------------------------
# Figure 8: recovering attentive users
# ---------------------------------------------------------------------------

#: Selection rules of :func:`accuracy_vs_mu`.
SELECTIONS = ("ranking", "threshold", "map_threshold")


def selection_scores(selected: np.ndarray, attentive: np.ndarray) -> dict[str, float]:
    """How well a selection of users recovers the truly attentive ones.

    Parameters
    ----------
    selected, attentive : numpy.ndarray of bool
        Per user, in the same order: kept by a filter, and truly attentive
        (``eta >= eta_star``).

    Returns
    -------
    dict
        ``kept_fraction`` (share of users selected), ``recall`` (share of the
        attentive users selected; 0 when there are none), ``precision``
        (share of the selected users that are attentive; NaN when none is
        selected) and ``accuracy`` (share of users classified correctly).
    """
    selected = np.asarray(selected, dtype=bool)
    attentive = np.asarray(attentive, dtype=bool)
    tp = float(np.sum(selected & attentive))
    return {
        "kept_fraction": float(selected.mean()),
        "recall": tp / max(float(attentive.sum()), 1.0),
        "precision": tp / float(selected.sum()) if selected.any() else float("nan"),
        "accuracy": float(np.mean(selected == attentive)),
    }


def accuracy_vs_mu(
    mus: Sequence[float] = (0.6, 0.7, 0.8, 0.9),
    *,
    truth: Truth | None = None,
    quantile: float = 0.5,
    mu_prior: BetaPrior | tuple[float, float] = (8.0, 2.0),
    prob: float = 0.95,
    n_users: int = 400,
    n_votes=(50, 100),
    seeds: Iterable[int] = range(10),
    n_init: int = 2,
) -> pd.DataFrame:
    """How well the filter recovers the truly attentive users (the paper's Figure 8).

    A user is truly attentive when its true ``eta`` is above the ``quantile``
    of the true ``P_eta`` (by default the median of Beta(3, 5)). For each
    ``mu`` and seed the Beta family is fitted twice, with ``mu`` known and
    with ``mu`` under ``mu_prior`` (the paper's Beta(8, 2)), and users are
    selected three ways:

    ``ranking``
        The top ``1 - quantile`` of users by posterior mean (rule ``top``).
    ``threshold``
        ``P(eta_j >= cut | votes) >= prob`` with ``cut`` the true quantile
        (rule ``prob``).
    ``map_threshold``
        ``eta_map >= cut`` (rule ``map``; the paper's "Threshold").

    Parameters
    ----------
    mus : sequence of float
        True win rates.
    truth : Truth, optional
        Default Beta(3, 5).
    quantile : float
        Level of the true ``P_eta`` that separates attentive users.
    mu_prior : BetaPrior or (alpha, beta)
        Prior of the unknown ``mu`` for the ``"prior"`` fits.
    prob : float
        Level of the ``threshold`` rule.
    n_users : int
    n_votes : int, (lo, hi) or array
    seeds : iterable of int
    n_init : int

    Returns
    -------
    pandas.DataFrame
        One row per ``(mu, seed, mu_mode, selection)`` with ``mu_mode`` in
        ``{"known", "prior"}``: ``mu_hat`` (the fitted ``mu``),
        ``kept_fraction``, ``recall`` (share of truly attentive users selected:
        the paper's "accuracy"), ``precision`` (share of selected users that
        are truly attentive) and ``accuracy`` (share of all users classified
        correctly).
    """
    truth = truth if truth is not None else Truth("beta", BETA_TRUTH, "Beta(3, 5)")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    prior = mu_prior if isinstance(mu_prior, BetaPrior) else BetaPrior(*mu_prior)
    cut = float(truth.dist.ppf(np.array(quantile), truth.dist.validate(dict(truth.params))))
    rows = []
    for i, mu in enumerate(mus):
        for seed in seeds:
            data, eta = simulate_data(
                truth.family, truth.params, n_users, n_votes, mu, seed=child_seed(seed, i)
            )
            attentive = eta > cut
            kw = {"n_init": n_init, "seed": seed, "warn": False, "priors": PAPER_PRIORS}
            fits = {
                "known": fit_em(data, truth.family, mu=mu, **kw),
                "prior": fit_em(data, truth.family, mu_prior=prior, **kw),
            }
            for mode, res in fits.items():
                post = res.posterior(eta_star=cut)
                rules = {
                    "ranking": {"rule": "top", "top": 1.0 - quantile},
                    # The paper's rule, without the evidence screen it predates.
                    "threshold": {"rule": "prob", "eta_star": cut, "prob": prob, "min_evidence": 0},
                    "map_threshold": {"rule": "map", "threshold": cut},
                }
                for name, kw in rules.items():
                    kept = filter_users(res, posterior=post, force=True, **kw)
                    selected = kept.keep.to_numpy()
                    rows.append(
                        {
                            "mu": float(mu),
                            "seed": int(seed),
                            "mu_mode": mode,
                            "selection": name,
                            "mu_hat": float(res.mu_.iloc[0]),
                            "converged": res.converged_,
                            **selection_scores(selected, attentive),
                        }
                    )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Section 4.2: how much data a filter keeps against how clean it is
# ---------------------------------------------------------------------------


def filter_tradeoff(
    *,
    truth: Truth | None = None,
    fit_family: str | None = None,
    casual_below: float = 0.3,
    eta_stars: Sequence[float] | None = None,
    prob: float = 0.95,
    tops: Sequence[float] | None = None,
    n_users: int = 400,
    n_votes=50,
    mu: float = 0.8,
    seed: int = 0,
    n_init: int = 2,
) -> pd.DataFrame:
    """Votes kept against the share of kept votes cast by casual users, as a filter tightens.

    A user is casual when its attentiveness is below ``casual_below``. Two
    filters are swept: the rule ``prob`` (keep ``P(eta_j >= eta_star) >=
    prob``) over ``eta_stars``, and the rule ``top`` over the kept fractions
    ``tops``. For each setting the casual share is read off the posterior,
    ``sum_kept n_j P(eta_j < casual_below | votes) / sum_kept n_j`` (what an
    engineer can compute on real logs), and, since the data are simulated,
    from the true ``eta``. Each sweep starts with its loosest setting; the
    unfiltered data appear as ``top = 1``.

    Parameters
    ----------
    truth : Truth, optional
        True ``P_eta`` (default Beta(4, 4), the paper's Figure 6 population
        with many casual users).
    fit_family : str, optional
        Fitted family (default: the truth's family).
    casual_below : float
        Attentiveness below which a user counts as casual.
    eta_stars : sequence of float, optional
        Cuts of the ``prob`` rule (default 0.05, 0.10, ..., 0.95).
    prob : float
    tops : sequence of float, optional
        Kept fractions of the ``top`` rule (default 1.0, 0.95, ..., 0.05).
    n_users : int
    n_votes : int, (lo, hi) or array
        Default 50 per user (the paper's section 4 setting).
    mu : float
        True and known win rate.
    seed : int
    n_init : int

    Returns
    -------
    pandas.DataFrame
        One row per setting: ``rule``, ``setting`` (``eta_star`` or ``top``),
        ``users_kept``, ``votes_kept``, ``votes_kept_fraction``,
        ``casual_share_posterior``, ``casual_share_true`` (NaN when nothing is
        kept) and ``casual_users_kept_true``; ``attrs`` holds ``casual_below``,
        ``truth`` (its label) and ``prob``.
    """
    truth = truth if truth is not None else Truth("beta", {"alpha": 4.0, "beta": 4.0}, "Beta(4, 4)")
    if not 0.0 < casual_below < 1.0:
        raise ValueError(f"casual_below must be in (0, 1), got {casual_below}")
    eta_stars = np.round(np.arange(1, 20) * 0.05, 10) if eta_stars is None else eta_stars
    tops = np.round(np.arange(20, 0, -1) * 0.05, 10) if tops is None else tops
    data, eta = simulate_data(truth.family, truth.params, n_users, n_votes, mu, seed=seed)
    res = fit_em(
        data,
        fit_family or truth.family,
        mu=mu,
        n_init=n_init,
        seed=seed,
        warn=False,
        priors=PAPER_PRIORS,
    )
    n_j = np.asarray(data.counts.votes_per_user(), dtype=np.float64)
    p_casual = 1.0 - res.posterior(eta_star=casual_below)["p_above"].to_numpy()
    casual = eta < casual_below
    total_votes = n_j.sum()

    def row(rule: str, setting: float, keep: np.ndarray) -> dict[str, Any]:
        kept_votes = float(n_j[keep].sum())
        share = (lambda x: float(np.dot(n_j[keep], x[keep]) / kept_votes)) if kept_votes else None
        return {
            "rule": rule,
            "setting": float(setting),
            "users_kept": int(keep.sum()),
            "votes_kept": int(kept_votes),
            "votes_kept_fraction": kept_votes / total_votes,
            "casual_share_posterior": share(p_casual) if share else float("nan"),
            "casual_share_true": share(casual.astype(float)) if share else float("nan"),
            "casual_users_kept_true": int(np.sum(keep & casual)),
        }

    rows = []
    for e in sorted(float(x) for x in eta_stars):
        # The paper's rule, without the evidence screen it predates.
        kept = filter_users(res, rule="prob", eta_star=e, prob=prob, min_evidence=0, force=True)
        rows.append(row("prob", e, kept.keep.to_numpy()))
    post = res.posterior()
    for t in sorted((float(x) for x in tops), reverse=True):
        kept = filter_users(res, rule="top", top=t, posterior=post, force=True)
        rows.append(row("top", t, kept.keep.to_numpy()))
    table = pd.DataFrame(rows)
    table.attrs.update(casual_below=float(casual_below), truth=truth.label, prob=float(prob))
    return table
