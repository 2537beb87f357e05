"""From per-user posteriors to the votes worth training on.

Rules (each keeps a set of users; their vote rows are returned with every
input column) are registered by name in :data:`RULES`: a new rule is a
:class:`Rule` (its argument check and its decision) and one registration.

``prob``
    ``P(eta_j >= eta_star | votes) >= prob`` (the paper's rule, ``prob = 0.95``).
    A user whose probability is a Monte Carlo estimate within ``mcse_k``
    standard errors of ``prob`` is *undetermined*: neither kept nor dropped,
    and reported as such. Exact probabilities (MAP-EM) leave nobody
    undetermined.
``top``
    The top fraction ``top`` of users by posterior mean attentiveness. Users
    with identical count rows have identical posteriors, so a tie at the cut is
    kept whole: the kept fraction can exceed ``top`` slightly, and the report
    says by how much.
``map``
    ``eta_map >= threshold``.
``quantile``
    ``eta_map`` (or ``eta_mean`` with ``by="mean"``) at or above the
    ``quantile`` of the fitted ``P_eta``.

The input is a result tree (:mod:`attnmodel.results.tree`, from MAP-EM or
NUTS) together with the :class:`~attnmodel.data.votes.VoteData` it was fitted
to, or an :class:`~attnmodel.inference.em.EMResult`, which is first turned
into its tree (:func:`attnmodel.results.em.em_to_datatree`, without ``eta``
draws) and filtered as one. Before filtering, a gate
checks that the fit can be trusted: a MAP-EM fit must have converged; a NUTS
fit's global parameters must have ``r_hat <= rhat_max``, bulk and tail ESS of
at least ``ess_min`` and no more than ``max_divergences`` divergent
transitions. A fit that fails is refused (:class:`NotConvergedError`,
:class:`DiagnosticsError`) unless ``force=True``, which filters with a warning.

On a tree:

- ``map`` (and ``quantile`` with ``by="map"``) reads ``eta_map`` where the
  tree has it (MAP-EM: the exact posterior mode) and otherwise the posterior
  mean ``eta_mean`` (NUTS: a mode estimated from draws would be noisy); the
  settings name the summary used.
- ``quantile`` cuts at the quantile of ``P_eta`` at the EM estimate or, for
  NUTS, at the posterior mean of the family parameters.
- ``prob`` with an ``eta_star`` other than the tree's recomputes ``p_above``
  from the stored ``eta`` draws as the mean of the indicator
  ``eta >= eta_star``. Its Monte Carlo standard error is ``sqrt(p (1 - p) / S)``
  for MAP-EM trees, whose ``S`` draws are independent, and ArviZ's MCSE of the
  mean (which accounts for autocorrelation) for NUTS trees.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from attnmodel.errors import (
    DiagnosticsError,
    DiagnosticsWarning,
    NotConvergedError,
)
from attnmodel.model.families import get_family
from attnmodel.posterior.draws import p_above_from_draws
from attnmodel.results.em import em_to_datatree
from attnmodel.results.summary import align_to_data, diagnostic_checks, family_params
from attnmodel.results.tree import is_result

__all__ = [
    "FilterResult",
    "filter_users",
    "RULES",
    "Rule",
    "RuleArgs",
    "check_rule_args",
    "NotConvergedError",
    "DiagnosticsError",
    "DiagnosticsWarning",
    "prob_decisions",
]

@dataclass
class FilterResult:
    """Users kept by a rule and their votes.

    Attributes
    ----------
    rule : str
    settings : dict
        The rule's parameters (and the threshold it resolved to).
    keep : pandas.Series of bool
        Decision per user, indexed by user id (False for undetermined users).
    votes : pandas.DataFrame or None
        Kept vote rows with every input column (None when the data holds only counts).
    counts : dict
        ``users_kept``, ``users_dropped``, ``users_undetermined``,
        ``votes_kept``, ``votes_dropped``, ``votes_undetermined``.
    undetermined : pandas.Series of bool or None
        Users whose ``p_above`` lies within ``mcse_k`` Monte Carlo standard
        errors of the cut (rule ``prob``); None means nobody.
    diagnostics : pandas.DataFrame or None
        The checks of the gate: index ``check``; columns ``variable``,
        ``value``, ``threshold``, ``passed``.
    """

    rule: str
    settings: dict[str, Any]
    keep: pd.Series
    votes: pd.DataFrame | None
    counts: dict[str, int] = field(default_factory=dict)
    undetermined: pd.Series | None = None
    diagnostics: pd.DataFrame | None = None

    def _undetermined_mask(self) -> np.ndarray:
        if self.undetermined is None:
            return np.zeros(len(self.keep), dtype=bool)
        return self.undetermined.to_numpy(dtype=bool)

    @property
    def kept_users(self) -> pd.Index:
        """Ids of the kept users."""
        return self.keep.index[self.keep.to_numpy()]

    @property
    def dropped_users(self) -> pd.Index:
        """Ids of the dropped users (undetermined ones excluded)."""
        return self.keep.index[~self.keep.to_numpy() & ~self._undetermined_mask()]

    @property
    def undetermined_users(self) -> pd.Index:
        """Ids of the users the rule could not decide (empty unless Monte Carlo error)."""
        return self.keep.index[self._undetermined_mask()]

    def summary(self) -> str:
        """One paragraph on what was kept, dropped and left undetermined."""
        c = self.counts
        und_u = c.get("users_undetermined", 0)
        und_v = c.get("votes_undetermined", 0)
        total_u = c["users_kept"] + c["users_dropped"] + und_u
        total_v = c["votes_kept"] + c["votes_dropped"] + und_v
        desc = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings.items()
        )
        return (
            f"rule {self.rule} ({desc}): kept {c['users_kept']} of {total_u} users "
            f"({c['users_kept'] / max(total_u, 1):.1%}) and {c['votes_kept']} of {total_v} votes "
            f"({c['votes_kept'] / max(total_v, 1):.1%}); dropped {c['users_dropped']} users "
            f"({c['votes_dropped']} votes); undetermined {und_u} users ({und_v} votes)"
        )

    def __repr__(self) -> str:
        return f"FilterResult({self.summary()})"


def prob_decisions(
    p_above: np.ndarray, mcse: np.ndarray, prob: float, mcse_k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep and undetermined masks of the ``prob`` rule.

    A user is undetermined when its ``p_above`` has a positive Monte Carlo
    standard error and lies strictly within ``mcse_k`` of them from ``prob``;
    otherwise it is kept when ``p_above >= prob``.
    """
    p_above = np.asarray(p_above, dtype=np.float64)
    mcse = np.nan_to_num(np.asarray(mcse, dtype=np.float64), nan=0.0)
    undetermined = (mcse > 0) & (np.abs(p_above - prob) < mcse_k * mcse)
    return (p_above >= prob) & ~undetermined, undetermined


@dataclass(frozen=True)
class RuleArgs:
    """The arguments of :func:`filter_users` that rules read."""

    eta_star: float
    prob: float
    top: float | None
    threshold: float | None
    quantile: float | None
    by: str
    mcse_k: float


@dataclass(frozen=True)
class Rule:
    """A filtering rule: how its arguments are checked and how it decides.

    ``decide(summaries, ppf, extra, args)`` receives the tree's
    ``attentiveness`` group aligned to the data, the fitted ``P_eta``'s quantile
    function, the names of the summaries the tree offers (``extra``, see
    :func:`filter_users`) and the :class:`RuleArgs`; it returns the boolean
    arrays ``keep`` and ``undetermined`` and the settings to report.
    """

    name: str
    check: Callable[[RuleArgs], None]
    decide: Callable[..., tuple[np.ndarray, np.ndarray, dict[str, Any]]]


#: Filtering rules by name; a new rule is one :class:`Rule` registered here.
RULES: dict[str, Rule] = {}


def _register(name: str, check: Callable[[RuleArgs], None]):
    def wrap(decide):
        RULES[name] = Rule(name, check, decide)
        return decide

    return wrap


def _check_prob(a: RuleArgs) -> None:
    if not 0.0 < a.prob <= 1.0:
        raise ValueError(f"prob must be in (0, 1], got {a.prob}")
    if not a.mcse_k >= 0.0:
        raise ValueError(f"mcse_k must be >= 0, got {a.mcse_k}")


def _check_top(a: RuleArgs) -> None:
    if a.top is None or not 0.0 < a.top <= 1.0:
        raise ValueError(f"rule 'top' needs top in (0, 1], got {a.top}")


def _check_map(a: RuleArgs) -> None:
    if a.threshold is None or not 0.0 <= a.threshold <= 1.0:
        raise ValueError(f"rule 'map' needs threshold in [0, 1], got {a.threshold}")


def _check_quantile(a: RuleArgs) -> None:
    if a.quantile is None or not 0.0 < a.quantile < 1.0:
        raise ValueError(f"rule 'quantile' needs quantile in (0, 1), got {a.quantile}")
    if a.by not in ("map", "mean"):
        raise ValueError(f"by must be 'map' or 'mean', got {a.by!r}")


@_register("prob", _check_prob)
def _decide_prob(summaries, ppf, extra, a: RuleArgs):
    p_above = summaries["p_above"].to_numpy()
    settings: dict[str, Any] = {"eta_star": float(a.eta_star), "prob": float(a.prob)}
    if "p_above_mcse" not in summaries:
        return p_above >= a.prob, np.zeros(p_above.size, dtype=bool), settings
    keep, undetermined = prob_decisions(
        p_above, summaries["p_above_mcse"].to_numpy(), a.prob, a.mcse_k
    )
    settings["mcse_k"] = float(a.mcse_k)
    return keep, undetermined, settings


@_register("top", _check_top)
def _decide_top(summaries, ppf, extra, a: RuleArgs):
    mean = summaries["eta_mean"].to_numpy()
    # Round away float noise first: 0.07 * 100 is 7.000000000000001, whose ceil is 8.
    k = max(1, int(np.ceil(round(a.top * mean.size, 9))))
    cut = np.sort(mean)[::-1][k - 1]
    keep = mean >= cut
    settings = {"top": float(a.top), "cut": float(cut), "kept_fraction": float(keep.mean())}
    return keep, np.zeros(mean.size, dtype=bool), settings


@_register("map", _check_map)
def _decide_map(summaries, ppf, extra, a: RuleArgs):
    keep = summaries[extra.get("map", "eta_map")].to_numpy() >= a.threshold
    return keep, np.zeros(keep.size, dtype=bool), {"threshold": float(a.threshold)}


@_register("quantile", _check_quantile)
def _decide_quantile(summaries, ppf, extra, a: RuleArgs):
    cut = float(ppf(a.quantile))
    keep = summaries[extra.get(a.by, f"eta_{a.by}")].to_numpy() >= cut
    settings = {"quantile": float(a.quantile), "by": a.by, "cut": cut}
    return keep, np.zeros(keep.size, dtype=bool), settings


def check_rule_args(rule: str, args: RuleArgs) -> None:
    """Raise ``ValueError`` unless ``rule`` is registered and ``args`` suit it."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    RULES[rule].check(args)


def filter_users(
    result,
    data=None,
    *,
    rule: str = "prob",
    eta_star: float = 0.5,
    prob: float = 0.95,
    top: float | None = None,
    threshold: float | None = None,
    quantile: float | None = None,
    by: str = "map",
    posterior: xr.Dataset | None = None,
    force: bool = False,
    mcse_k: float = 2.0,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    max_divergences: int = 0,
) -> FilterResult:
    """Apply a filtering rule to a fitted model.

    Parameters
    ----------
    result : EMResult or xarray.DataTree
        The fit: an EM result (its ``data`` supplies the vote rows) or a
        result tree from :func:`attnmodel.inference.fitting.fit` or
        :func:`attnmodel.results.io.load`.
    data : VoteData, optional
        The votes to filter; required with a tree (its users must be the
        tree's users), defaults to ``result.data`` for an EMResult.
    rule : {"prob", "top", "map", "quantile"}
    eta_star, prob : float
        For ``prob``: keep users with ``P(eta >= eta_star) >= prob``.
    top : float
        For ``top``: fraction of users to keep, in (0, 1].
    threshold : float
        For ``map``: keep users with ``eta_map >= threshold``.
    quantile : float
        For ``quantile``: level of the fitted ``P_eta`` quantile used as cut.
    by : {"map", "mean"}
        Summary compared with the cut by ``quantile``.
    posterior : xarray.Dataset, optional
        With an EMResult only: precomputed
        :func:`~attnmodel.posterior.users.user_posterior`; for ``prob`` it is
        recomputed when its ``eta_star`` differs from ``eta_star``.
    force : bool
        Filter even if the fit did not converge or failed its diagnostics
        (with a :class:`DiagnosticsWarning` for a failed NUTS fit).
    mcse_k : float
        For ``prob``: users within ``mcse_k`` Monte Carlo standard errors of
        the cut are undetermined.
    rhat_max, ess_min, max_divergences
        Thresholds of the NUTS gate over the global parameters.

    Returns
    -------
    FilterResult
    """
    args = RuleArgs(eta_star, prob, top, threshold, quantile, by, mcse_k)
    check_rule_args(rule, args)
    if isinstance(result, xr.DataTree):
        if posterior is not None:
            raise ValueError("posterior= applies to an EMResult; a result tree carries its own")
        if data is None:
            raise ValueError(
                "filtering a result tree needs data=: the VoteData it was fitted to "
                "(the tree holds no vote rows)"
            )
    else:
        data = result.data if data is None else data
        result = _em_tree(result, rule, eta_star, posterior)
    gate = {"rhat_max": rhat_max, "ess_min": ess_min, "max_divergences": max_divergences}
    summaries, ppf, diagnostics, extra = _tree_inputs(result, data, rule, eta_star, force, gate)

    keep, undetermined, settings = RULES[rule].decide(summaries, ppf, extra, args)
    if rule in ("map", "quantile") and extra.get("map") == "eta_mean":
        settings["summary"] = "eta_mean"
    settings.update({k: v for k, v in extra.items() if k == "p_above_from"})
    return _result(rule, settings, keep, undetermined, data, diagnostics)


def _result(rule, settings, keep, undetermined, data, diagnostics) -> FilterResult:
    users = pd.Index(data.users, name="user")
    keep_s = pd.Series(keep, index=users, name="keep")
    dropped = ~keep & ~undetermined
    n_votes = np.asarray(data.counts.votes_per_user())
    counts = {
        "users_kept": int(keep.sum()),
        "users_dropped": int(dropped.sum()),
        "users_undetermined": int(undetermined.sum()),
        "votes_kept": int(n_votes[keep].sum()),
        "votes_dropped": int(n_votes[dropped].sum()),
        "votes_undetermined": int(n_votes[undetermined].sum()),
    }
    votes = None
    if getattr(data, "votes", None) is not None:
        votes = data.votes[keep[np.asarray(data.vote_user)]]
    return FilterResult(
        rule=rule,
        settings=settings,
        keep=keep_s,
        votes=votes,
        counts=counts,
        undetermined=pd.Series(undetermined, index=users, name="undetermined")
        if undetermined.any()
        else None,
        diagnostics=diagnostics,
    )


def _converged_report(converged: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {"variable": [""], "value": [float(converged)], "threshold": [1.0], "passed": [converged]},
        index=pd.Index(["converged"], name="check"),
    )


_NOT_CONVERGED = (
    "the fit did not converge, so its posteriors are not trustworthy; refit with a larger "
    "max_iter or pass force=True to filter anyway"
)


def _em_tree(result, rule, eta_star, posterior) -> xr.DataTree:
    """An EMResult as the tree :func:`filter_users` reads (exact summaries, no ``eta`` draws).

    ``posterior`` (precomputed per-user summaries) is used unless the rule
    ``prob`` needs them at another ``eta_star``.
    """
    if posterior is not None and (rule != "prob" or posterior.attrs.get("eta_star") == eta_star):
        return em_to_datatree(
            result,
            eta_star=float(posterior.attrs.get("eta_star", eta_star)),
            hdi_prob=float(posterior.attrs.get("hdi_prob", 0.94)),
            n_draws=1,
            store_eta=False,
            summaries=align_to_data(posterior, pd.Index(result.data.users)),
        )
    return em_to_datatree(result, eta_star=eta_star, n_draws=1, store_eta=False)


def _tree_inputs(dt, data, rule, eta_star, force, gate):
    """Summaries, quantile function, gate report and rule notes of a result tree."""
    if not is_result(dt) or "attentiveness" not in dt.children:
        raise ValueError("not an attnmodel result tree (no attentiveness group or marker)")
    method = dt.attrs.get("method")
    if method == "nuts":
        report = diagnostic_checks(dt, **gate)
        failed = report[~report["passed"]]
        if len(failed):
            msg = "NUTS diagnostics failed: " + "; ".join(
                _describe(c, row) for c, row in failed.iterrows()
            )
            if not force:
                raise DiagnosticsError(msg + "; sample longer or pass force=True to filter anyway")
            warnings.warn(msg + " (filtering anyway: force=True)", DiagnosticsWarning, stacklevel=3)
    else:
        converged = bool(int(dt.attrs.get("converged", 1)))
        if not converged and not force:
            raise NotConvergedError(_NOT_CONVERGED)
        report = _converged_report(converged)

    summaries = align_to_data(dt["attentiveness"].to_dataset(), pd.Index(data.users), what="data")
    extra: dict[str, Any] = {}
    if "eta_map" not in summaries:
        extra["map"] = "eta_mean"
    if rule == "prob" and float(dt.attrs["eta_star"]) != float(eta_star):
        p, mcse, how = p_above_from_draws(dt, eta_star)
        summaries = summaries.assign(
            p_above=("user", align_to_data(p, pd.Index(data.users)).to_numpy()),
            p_above_mcse=("user", align_to_data(mcse, pd.Index(data.users)).to_numpy()),
        )
        extra["p_above_from"] = how
    fam = get_family(dt.attrs["family"], int(dt.attrs["n_components"]))
    params = family_params(dt)

    def ppf(q):
        return fam.ppf(np.array(q), params)

    return summaries, ppf, report, extra


def _describe(check: str, row: pd.Series) -> str:
    if check == "divergences":
        return f"{int(row['value'])} divergent transitions (allowed {int(row['threshold'])})"
    if check == "r_hat":
        return f"r_hat of {row['variable']} is {row['value']:.4g} > {row['threshold']:g}"
    return f"{check} of {row['variable']} is {row['value']:.0f} < {row['threshold']:g}"
