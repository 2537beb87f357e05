"""From per-user posteriors to the votes worth training on.

Rules (each keeps a set of users; their vote rows are returned with every
input column) are registered by name in :data:`RULES`: a new rule is a
:class:`Rule` (its argument check and its decision) and one registration.

``prob``
    ``P(eta_j >= eta_star | votes) >= prob`` (the paper's rule, ``prob = 0.95``).
    A user whose probability is a Monte Carlo estimate within ``mcse_k``
    standard errors of ``prob`` is *undetermined*: neither kept nor dropped,
    and reported as such. Exact probabilities (MAP-EM) leave nobody
    undetermined. A decision must also rest on the user's own votes: a user
    is kept only when its votes favour ``eta >= eta_star`` by a Bayes factor
    of at least ``exp(min_evidence)`` (``log_bf >= min_evidence``, see
    :mod:`attnmodel.posterior.users`), and dropped only when they favour the
    other side by as much; anyone else has *too little evidence*, neither
    kept nor dropped (:func:`evidence_decisions`; ``min_evidence=0`` turns
    this off). Without it, a user with one vote is kept whenever ``P_eta``
    has 95% of its mass above the cut, even when that vote went against the
    majority.
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
    ArgumentError,
    DiagnosticsError,
    DiagnosticsWarning,
    NotConvergedError,
)
from attnmodel.model.families import get_family
from attnmodel.posterior.draws import log_bf_from_draws, p_above_from_draws
from attnmodel.results.em import em_to_datatree
from attnmodel.results.summary import align_to_data, diagnostic_checks, family_params
from attnmodel.results.tree import check_same_data, is_result

__all__ = [
    "FilterResult",
    "filter_users",
    "RULES",
    "RULE_DEFAULTS",
    "Rule",
    "RuleArgs",
    "check_rule_args",
    "NotConvergedError",
    "DiagnosticsError",
    "DiagnosticsWarning",
    "prob_decisions",
    "evidence_decisions",
    "screen_evidence",
    "diagnostics_message",
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
        ``users_little_evidence``, and the same for ``votes_`` and, with
        ties modelled, for ``ties_``.
    undetermined : pandas.Series of bool or None
        Users whose ``p_above`` lies within ``mcse_k`` Monte Carlo standard
        errors of the cut (rule ``prob``); None means nobody.
    little_evidence : pandas.Series of bool or None
        Users whose own votes do not favour the rule's decision by a Bayes
        factor of ``exp(min_evidence)`` (rule ``prob``); None means nobody.
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
    little_evidence: pd.Series | None = None

    def _undetermined_mask(self) -> np.ndarray:
        if self.undetermined is None:
            return np.zeros(len(self.keep), dtype=bool)
        return self.undetermined.to_numpy(dtype=bool)

    def _little_mask(self) -> np.ndarray:
        if self.little_evidence is None:
            return np.zeros(len(self.keep), dtype=bool)
        return self.little_evidence.to_numpy(dtype=bool)

    @property
    def kept_users(self) -> pd.Index:
        """Ids of the kept users."""
        return self.keep.index[self.keep.to_numpy()]

    @property
    def dropped_users(self) -> pd.Index:
        """Ids of the dropped users (undetermined ones and those short of evidence excluded)."""
        undecided = self._undetermined_mask() | self._little_mask()
        return self.keep.index[~self.keep.to_numpy() & ~undecided]

    @property
    def undetermined_users(self) -> pd.Index:
        """Ids of the users the rule could not decide (empty unless Monte Carlo error)."""
        return self.keep.index[self._undetermined_mask()]

    @property
    def little_evidence_users(self) -> pd.Index:
        """Ids of the users whose own votes were too little evidence for a decision."""
        return self.keep.index[self._little_mask()]

    def summary(self) -> str:
        """One paragraph on what was kept, dropped and left undetermined."""
        c = self.counts
        und_u = c.get("users_undetermined", 0)
        und_v = c.get("votes_undetermined", 0)
        few_u = c.get("users_little_evidence", 0)
        few_v = c.get("votes_little_evidence", 0)
        total_u = c["users_kept"] + c["users_dropped"] + und_u + few_u
        total_v = c["votes_kept"] + c["votes_dropped"] + und_v + few_v
        desc = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings.items()
        )
        return (
            f"rule {self.rule} ({desc}): kept {c['users_kept']} of {total_u} users "
            f"({c['users_kept'] / max(total_u, 1):.1%}) and {c['votes_kept']} of {total_v} votes "
            f"({c['votes_kept'] / max(total_v, 1):.1%}); dropped {c['users_dropped']} users "
            f"({c['votes_dropped']} votes); undetermined {und_u} users ({und_v} votes)"
            + (
                f"; too little evidence {few_u} users ({few_v} votes)"
                if "min_evidence" in self.settings
                else ""
            )
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


def evidence_decisions(
    keep: np.ndarray, log_bf: np.ndarray, min_evidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep and too-little-evidence masks: a decision must rest on the user's own votes.

    A user the rule keeps stays kept only when its votes favour the side it
    was kept for by a Bayes factor of at least ``exp(min_evidence)``
    (``log_bf >= min_evidence``); a user it does not keep is dropped only
    when ``log_bf <= -min_evidence``. The others (and any with an undefined
    ``log_bf``) have too little evidence. ``min_evidence=0`` screens nobody.
    """
    keep = np.asarray(keep, dtype=bool)
    if not min_evidence > 0.0:
        return keep, np.zeros(keep.size, dtype=bool)
    log_bf = np.asarray(log_bf, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        little = np.where(keep, ~(log_bf >= min_evidence), ~(log_bf <= -min_evidence))
    return keep & ~little, little


def screen_evidence(
    keep: np.ndarray, undetermined: np.ndarray, log_bf: np.ndarray, min_evidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rule's keep and undetermined masks after the evidence screen.

    Returns ``(keep, undetermined, too_little)``: :func:`evidence_decisions`
    applied to the users the rule keeps or leaves undetermined; too little
    evidence comes first, since more draws would not decide those users.
    """
    kept, little = evidence_decisions(keep | undetermined, log_bf, min_evidence)
    return kept & ~undetermined, undetermined & ~little, little


@dataclass(frozen=True)
class RuleArgs:
    """The arguments of :func:`filter_users` that rules read."""

    eta_star: float
    prob: float | None
    top: float | None
    threshold: float | None
    quantile: float | None
    by: str
    mcse_k: float | None
    min_evidence: float | None = None


#: How a check spells an argument and its value in a message (``top=1.5`` in
#: Python, ``--top 1.5`` on the command line).
Spelling = Callable[[str, Any], str]


@dataclass(frozen=True)
class Rule:
    """A filtering rule: its options, how they are checked and how it decides.

    ``options`` are the keyword arguments of :func:`filter_users` that belong
    to the rule (each to one rule only: giving one selects its rule);
    ``needs`` names the option the rule cannot do without, as
    ``(option, metavar, what it is)``. The decisions of a rule with the
    option ``min_evidence`` are then screened by :func:`evidence_decisions`
    (the summaries must hold ``log_bf`` at the rule's ``eta_star``). ``check(kw, given_as)`` raises
    :class:`~attnmodel.errors.ArgumentError` for a bad value, naming it with
    ``given_as(option, value)``. ``decide(summaries, ppf, extra, args)``
    receives the tree's ``attentiveness`` group aligned to the data, the fitted
    ``P_eta``'s quantile function, the names of the summaries the tree offers
    (``extra``, see :func:`filter_users`) and the :class:`RuleArgs`; it returns
    the boolean arrays ``keep`` and ``undetermined`` and the settings to report.
    """

    name: str
    options: tuple[str, ...]
    check: Callable[[dict[str, Any], Spelling], None]
    decide: Callable[..., tuple[np.ndarray, np.ndarray, dict[str, Any]]]
    needs: tuple[str, str, str] | None = None


#: Filtering rules by name; a new rule is one :class:`Rule` registered here.
RULES: dict[str, Rule] = {}
#: Defaults of the rule options that have one (``eta_star``'s is the caller's).
RULE_DEFAULTS = {"prob": 0.95, "mcse_k": 2.0, "by": "map", "min_evidence": 1.0}


def _register(name: str, options: tuple[str, ...], check, needs=None):
    def wrap(decide):
        RULES[name] = Rule(name, options, check, decide, needs)
        return decide

    return wrap


def _check_prob(kw: dict[str, Any], given_as: Spelling) -> None:
    if kw.get("eta_star") is not None and not 0.0 <= kw["eta_star"] <= 1.0:
        raise ArgumentError(f"{given_as('eta_star', kw['eta_star'])}: must lie in [0, 1]")
    if not 0.0 < kw["prob"] <= 1.0:
        raise ArgumentError(f"{given_as('prob', kw['prob'])}: must lie in (0, 1]")
    if not kw["mcse_k"] >= 0.0:
        raise ArgumentError(f"{given_as('mcse_k', kw['mcse_k'])}: must be >= 0")
    if not 0.0 <= kw["min_evidence"] < np.inf:
        raise ArgumentError(
            f"{given_as('min_evidence', kw['min_evidence'])}: must be a finite log Bayes "
            "factor >= 0 (0 turns the evidence screen off)"
        )


def _check_top(kw: dict[str, Any], given_as: Spelling) -> None:
    if not 0.0 < kw["top"] <= 1.0:
        raise ArgumentError(f"{given_as('top', kw['top'])}: must lie in (0, 1]")


def _check_map(kw: dict[str, Any], given_as: Spelling) -> None:
    if not 0.0 <= kw["threshold"] <= 1.0:
        raise ArgumentError(f"{given_as('threshold', kw['threshold'])}: must lie in [0, 1]")


def _check_quantile(kw: dict[str, Any], given_as: Spelling) -> None:
    if not 0.0 < kw["quantile"] < 1.0:
        raise ArgumentError(f"{given_as('quantile', kw['quantile'])}: must lie in (0, 1)")
    if kw["by"] not in ("map", "mean"):
        raise ArgumentError(f"{given_as('by', kw['by'])}: must be 'map' or 'mean'")


@_register("prob", ("eta_star", "prob", "mcse_k", "min_evidence"), _check_prob)
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


@_register("top", ("top",), _check_top, needs=("top", "FRACTION", "a fraction in (0, 1]"))
def _decide_top(summaries, ppf, extra, a: RuleArgs):
    mean = summaries["eta_mean"].to_numpy()
    # Round away float noise first: 0.07 * 100 is 7.000000000000001, whose ceil is 8.
    k = max(1, int(np.ceil(round(a.top * mean.size, 9))))
    cut = np.sort(mean)[::-1][k - 1]
    keep = mean >= cut
    settings = {"top": float(a.top), "cut": float(cut), "kept_fraction": float(keep.mean())}
    return keep, np.zeros(mean.size, dtype=bool), settings


@_register(
    "map", ("threshold",), _check_map, needs=("threshold", "ETA", "an attentiveness in [0, 1]")
)
def _decide_map(summaries, ppf, extra, a: RuleArgs):
    keep = summaries[extra.get("map", "eta_map")].to_numpy() >= a.threshold
    return keep, np.zeros(keep.size, dtype=bool), {"threshold": float(a.threshold)}


@_register(
    "quantile",
    ("quantile", "by"),
    _check_quantile,
    needs=("quantile", "LEVEL", "a level in (0, 1)"),
)
def _decide_quantile(summaries, ppf, extra, a: RuleArgs):
    cut = float(ppf(a.quantile))
    keep = summaries[extra.get(a.by, f"eta_{a.by}")].to_numpy() >= cut
    settings = {"quantile": float(a.quantile), "by": a.by, "cut": cut}
    return keep, np.zeros(keep.size, dtype=bool), settings


def check_rule_args(
    rule: str | None = None,
    *,
    names: dict[str, str] | None = None,
    **options: Any,
) -> tuple[str, dict[str, Any]]:
    """Resolve the filtering rule and check its arguments, before any work.

    The one check of the rule arguments, used by :func:`filter_users` and the
    command line. An option that belongs to another rule (``top`` with
    ``rule="prob"``) is refused; without a rule, the rule is the one whose
    options are given (``top=0.3`` selects ``top``), or ``prob`` when none is.

    Parameters
    ----------
    rule : str or None
        A name in :data:`RULES`; None selects it from the options given.
    names : dict, optional
        How the caller spells each argument in messages (the command line
        passes ``{"top": "--top", "rule": "--rule", ...}``); by default the
        keyword names.
    **options
        The rules' options (``eta_star``, ``prob``, ``mcse_k``,
        ``min_evidence``, ``top``, ``threshold``, ``quantile``, ``by``; see
        :func:`filter_users`); None means not given.

    Returns
    -------
    rule : str
    kwargs : dict
        The rule's own options, defaults filled in (``eta_star`` only when given).

    Raises
    ------
    ArgumentError
        Unknown rule, an option of another rule, options of several rules, a
        missing or out-of-range value; the message names the argument as the
        caller spells it.
    """
    owner = {opt: r.name for r in RULES.values() for opt in r.options}
    unknown = [k for k in options if k not in owner]
    if unknown:
        raise TypeError(f"unknown rule option(s) {unknown}; known: {sorted(owner)}")
    names = names or {}
    cli = bool(names)

    def opt(name: str) -> str:
        return names.get(name, name)

    def given_as(name: str, value: Any) -> str:
        return f"{opt(name)} {value!r}" if cli else f"{name}={value!r}"

    def rule_as(r: str) -> str:
        return f"{opt('rule')} {r}" if cli else f"rule={r!r}"

    given = {k: v for k, v in options.items() if v is not None}
    if rule is not None and rule not in RULES:
        raise ArgumentError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    rules_given = sorted({owner[k] for k in given}, key=list(RULES).index)
    if rule is None:
        if len(rules_given) > 1:
            listed = ", ".join(opt(k) for k in given)
            raise ArgumentError(
                f"{listed} belong to different rules ({', '.join(rules_given)}); "
                f"give the options of one rule, or choose it with {opt('rule')}"
            )
        rule = rules_given[0] if rules_given else "prob"
    for k in given:
        if owner[k] != rule:
            raise ArgumentError(
                f"{opt(k)} belongs to {rule_as(owner[k])}, not {rule_as(rule)}: "
                f"choose {rule_as(owner[k])} or leave {opt(k)} out"
            )
    spec = RULES[rule]
    kw = {k: given.get(k, RULE_DEFAULTS.get(k)) for k in spec.options}
    if "eta_star" in kw and kw["eta_star"] is None:
        kw.pop("eta_star")
    if spec.needs is not None and kw[spec.needs[0]] is None:
        name, metavar, what = spec.needs
        needed = f"{opt(name)} {metavar}" if cli else f"{name}= ({what})"
        raise ArgumentError(f"{rule_as(rule)} needs {needed} (for example 0.5)")
    spec.check(kw, given_as)
    return rule, kw


def filter_users(
    result,
    data=None,
    *,
    rule: str | None = None,
    eta_star: float | None = None,
    prob: float | None = None,
    top: float | None = None,
    threshold: float | None = None,
    quantile: float | None = None,
    by: str | None = None,
    posterior: xr.Dataset | None = None,
    force: bool = False,
    mcse_k: float | None = None,
    min_evidence: float | None = None,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    max_divergences: int = 0,
    allow_other_data: bool = False,
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
    rule : {"prob", "top", "map", "quantile"}, optional
        Default: the rule whose options are given, else ``prob``. An option
        of another rule than the one named is refused (:func:`check_rule_args`).
    eta_star, prob : float
        For ``prob``: keep users with ``P(eta >= eta_star) >= prob``
        (defaults 0.5 and 0.95). Given an EMResult, ``P(eta >= eta_star)`` is
        exact at any cut. Given a result tree (a saved result, and what the
        command line's ``filter`` reads), a cut other than the tree's own
        ``eta_star`` is estimated from its stored ``eta`` draws, with Monte
        Carlo error, and users within ``mcse_k`` errors are undetermined: at
        such a cut the two can decide differently. Fit with that ``eta_star``
        (``attnmodel fit --eta-star``) for exact values in the tree.
    top : float
        For ``top``: fraction of users to keep, in (0, 1].
    threshold : float
        For ``map``: keep users with ``eta_map >= threshold``.
    quantile : float
        For ``quantile``: level of the fitted ``P_eta`` quantile used as cut.
    by : {"map", "mean"}
        Summary compared with the cut by ``quantile`` (default ``"map"``).
    posterior : xarray.Dataset, optional
        With an EMResult only: precomputed
        :func:`~attnmodel.posterior.users.user_posterior`; for ``prob`` it is
        recomputed when its ``eta_star`` differs from ``eta_star``.
    force : bool
        Filter even if the fit did not converge or failed its diagnostics
        (with a :class:`DiagnosticsWarning` for a failed NUTS fit).
    mcse_k : float
        For ``prob``: users within ``mcse_k`` Monte Carlo standard errors of
        the cut are undetermined (default 2).
    min_evidence : float
        For ``prob``: the smallest log Bayes factor (nats) of a user's own
        votes for the side of the cut it is kept (dropped) for; users below
        it have too little evidence (:func:`evidence_decisions`). Default 1
        (a factor of e = 2.7, where Kass and Raftery's "positive" evidence
        starts); 0 turns the screen off. A tree holds ``log_bf`` at the
        ``eta_star`` it was fitted with; at another cut, or in a result
        written before ``log_bf`` was stored, it is estimated from the
        tree's ``eta`` draws (:func:`attnmodel.posterior.draws.log_bf_from_draws`;
        the settings say so as ``log_bf_from``), and a tree without them is
        refused (:class:`~attnmodel.errors.ArgumentError`) unless
        ``min_evidence=0``.
    rhat_max, ess_min, max_divergences
        Thresholds of the NUTS gate over the global parameters.
    allow_other_data : bool
        Filter ``data`` even when it is not the data the result was fitted to
        (its fingerprint differs from the result's ``data_fingerprint``); by
        default that is a :class:`~attnmodel.errors.DataMismatchError` naming
        what differs.

    Returns
    -------
    FilterResult
    """
    rule, kw = check_rule_args(
        rule,
        eta_star=eta_star,
        prob=prob,
        mcse_k=mcse_k,
        min_evidence=min_evidence,
        top=top,
        threshold=threshold,
        quantile=quantile,
        by=by,
    )
    eta_star = kw.get("eta_star", 0.5)
    args = RuleArgs(
        eta_star=eta_star,
        prob=kw.get("prob"),
        top=kw.get("top"),
        threshold=kw.get("threshold"),
        quantile=kw.get("quantile"),
        by=kw.get("by", "map"),
        mcse_k=kw.get("mcse_k"),
        min_evidence=kw.get("min_evidence"),
    )
    if isinstance(result, xr.DataTree):
        if posterior is not None:
            raise ValueError("posterior= applies to an EMResult; a result tree carries its own")
        if data is None:
            raise ValueError(
                "filtering a result tree needs data=: the VoteData it was fitted to "
                "(the tree holds no vote rows)"
            )
        if not allow_other_data:
            check_same_data(result, data)
    else:
        own_data = data is None or data is result.data
        data = result.data if data is None else data
        result = _em_tree(result, rule, eta_star, posterior)
        if not (allow_other_data or own_data):
            check_same_data(result, data)
    gate = {"rhat_max": rhat_max, "ess_min": ess_min, "max_divergences": max_divergences}
    evidence = bool(args.min_evidence)
    summaries, ppf, diagnostics, extra = _tree_inputs(
        result, data, rule, eta_star, force, gate, evidence
    )

    keep, undetermined, settings = RULES[rule].decide(summaries, ppf, extra, args)
    little = np.zeros(keep.size, dtype=bool)
    if args.min_evidence is not None:
        log_bf = _evidence(summaries, args.min_evidence)
        keep, undetermined, little = screen_evidence(keep, undetermined, log_bf, args.min_evidence)
        settings["min_evidence"] = float(args.min_evidence)
    if rule in ("map", "quantile") and extra.get("map") == "eta_mean":
        settings["summary"] = "eta_mean"
    settings.update({k: v for k, v in extra.items() if k in ("p_above_from", "log_bf_from")})
    return _result(rule, settings, keep, undetermined, data, diagnostics, little)


def _evidence(summaries, min_evidence: float):
    """The summaries' ``log_bf`` for the evidence screen (None when it is off)."""
    if not min_evidence > 0.0:
        return None
    if "log_bf" not in summaries:
        raise ArgumentError(
            "the result holds no log_bf (the evidence of each user's votes; results written "
            "by older versions of attnmodel lack it) and no eta draws to estimate it from: "
            "refit, or pass min_evidence=0 to filter without the evidence screen"
        )
    return summaries["log_bf"].to_numpy()


def _result(rule, settings, keep, undetermined, data, diagnostics, little) -> FilterResult:
    users = pd.Index(data.users, name="user")
    keep_s = pd.Series(keep, index=users, name="keep")
    dropped = ~keep & ~undetermined & ~little
    n_votes = np.asarray(data.counts.votes_per_user())
    counts = {
        "users_kept": int(keep.sum()),
        "users_dropped": int(dropped.sum()),
        "users_undetermined": int(undetermined.sum()),
        "users_little_evidence": int(little.sum()),
        "votes_kept": int(n_votes[keep].sum()),
        "votes_dropped": int(n_votes[dropped].sum()),
        "votes_undetermined": int(n_votes[undetermined].sum()),
        "votes_little_evidence": int(n_votes[little].sum()),
    }
    if data.counts.has_ties:
        # Ties modelled: they were evidence, so the counts say where they went too.
        n_ties = data.counts.ties_per_user()
        groups = {
            "kept": keep,
            "dropped": dropped,
            "undetermined": undetermined,
            "little_evidence": little,
        }
        for name, users_in in groups.items():
            counts[f"ties_{name}"] = int(n_ties[users_in].sum())
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
        little_evidence=pd.Series(little, index=users, name="little_evidence")
        if little.any()
        else None,
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


def _tree_inputs(dt, data, rule, eta_star, force, gate, evidence=False):
    """Summaries, quantile function, gate report and rule notes of a result tree.

    With ``evidence`` (rule ``prob`` with the evidence screen on), ``log_bf``
    at a cut the tree holds none for is estimated from its draws
    (:func:`attnmodel.posterior.draws.log_bf_from_draws`) when it has them.
    """
    if not is_result(dt) or "attentiveness" not in dt.children:
        raise ValueError("not an attnmodel result tree (no attentiveness group or marker)")
    method = dt.attrs.get("method")
    if method == "nuts":
        report = diagnostic_checks(dt, **gate)
        failed = report[~report["passed"]]
        if len(failed):
            msg = diagnostics_message(failed)
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
    other_cut = float(dt.attrs["eta_star"]) != float(eta_star)
    if rule == "prob" and other_cut:
        p, mcse, how = p_above_from_draws(dt, eta_star)
        summaries = summaries.assign(
            p_above=("user", align_to_data(p, pd.Index(data.users)).to_numpy()),
            p_above_mcse=("user", align_to_data(mcse, pd.Index(data.users)).to_numpy()),
        )
        extra["p_above_from"] = how
        # The stored evidence is that of the fitted cut.
        summaries = summaries.drop_vars("log_bf", errors="ignore")
    if rule == "prob" and evidence and "log_bf" not in summaries and "eta" in dt["posterior"]:
        bf = align_to_data(log_bf_from_draws(dt, eta_star), pd.Index(data.users))
        summaries = summaries.assign(log_bf=("user", bf.to_numpy()))
        extra["log_bf_from"] = "eta draws"
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


def diagnostics_message(failed: pd.DataFrame) -> str:
    """``"NUTS diagnostics failed: ..."``, naming each failed check, its variable and value.

    Parameters
    ----------
    failed : pandas.DataFrame
        The failed rows of :func:`attnmodel.results.summary.diagnostic_checks`.
    """
    return "NUTS diagnostics failed: " + "; ".join(
        _describe(c, row) for c, row in failed.iterrows()
    )
