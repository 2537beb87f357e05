"""From per-user posteriors to the votes worth training on.

Rules (each keeps a set of users; their vote rows are returned with every
input column):

``prob``
    ``P(eta_j >= eta_star | votes) >= prob`` (the paper's rule, ``prob = 0.95``).
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

A fit that did not converge is refused unless ``force=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["FilterResult", "filter_users", "RULES", "NotConvergedError"]

RULES = ("prob", "top", "map", "quantile")


class NotConvergedError(RuntimeError):
    """Filtering was asked of a fit that did not converge."""


@dataclass
class FilterResult:
    """Users kept by a rule and their votes.

    Attributes
    ----------
    rule : str
    settings : dict
        The rule's parameters (and the threshold it resolved to).
    keep : pandas.Series of bool
        Decision per user, indexed by user id.
    votes : pandas.DataFrame or None
        Kept vote rows with every input column (None when the data holds only counts).
    counts : dict
        ``users_kept``, ``users_dropped``, ``votes_kept``, ``votes_dropped``.
    """

    rule: str
    settings: dict[str, Any]
    keep: pd.Series
    votes: pd.DataFrame | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def kept_users(self) -> pd.Index:
        """Ids of the kept users."""
        return self.keep.index[self.keep.to_numpy()]

    @property
    def dropped_users(self) -> pd.Index:
        """Ids of the dropped users."""
        return self.keep.index[~self.keep.to_numpy()]

    def summary(self) -> str:
        """One paragraph on what was kept."""
        c = self.counts
        total_u = c["users_kept"] + c["users_dropped"]
        total_v = c["votes_kept"] + c["votes_dropped"]
        desc = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings.items()
        )
        return (
            f"rule {self.rule} ({desc}): kept {c['users_kept']} of {total_u} users "
            f"({c['users_kept'] / max(total_u, 1):.1%}) and {c['votes_kept']} of {total_v} votes "
            f"({c['votes_kept'] / max(total_v, 1):.1%})"
        )

    def __repr__(self) -> str:
        return f"FilterResult({self.summary()})"


def filter_users(
    result,
    rule: str = "prob",
    *,
    eta_star: float = 0.5,
    prob: float = 0.95,
    top: float | None = None,
    threshold: float | None = None,
    quantile: float | None = None,
    by: str = "map",
    posterior: xr.Dataset | None = None,
    force: bool = False,
) -> FilterResult:
    """Apply a filtering rule to a fitted model.

    Parameters
    ----------
    result : EMResult
        The fit (its ``data`` supplies the vote rows).
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
        Precomputed :func:`~attnmodel.posterior.user_posterior`; for ``prob``
        it is recomputed when its ``eta_star`` differs from ``eta_star``.
    force : bool
        Filter even if the fit did not converge.

    Returns
    -------
    FilterResult
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if not getattr(result, "converged_", True) and not force:
        raise NotConvergedError(
            "the fit did not converge, so its posteriors are not trustworthy; refit with a larger "
            "max_iter or pass force=True to filter anyway"
        )
    if posterior is None or (rule == "prob" and posterior.attrs.get("eta_star") != eta_star):
        posterior = result.posterior(eta_star=eta_star)
    data = result.data
    posterior = _align_to_data(posterior, pd.Index(data.users))
    settings: dict[str, Any]
    if rule == "prob":
        if not 0.0 < prob <= 1.0:
            raise ValueError(f"prob must be in (0, 1], got {prob}")
        keep = posterior["p_above"].to_numpy() >= prob
        settings = {"eta_star": float(eta_star), "prob": float(prob)}
    elif rule == "top":
        if top is None or not 0.0 < top <= 1.0:
            raise ValueError(f"rule 'top' needs top in (0, 1], got {top}")
        mean = posterior["eta_mean"].to_numpy()
        # Round away float noise first: 0.07 * 100 is 7.000000000000001, whose ceil is 8.
        k = max(1, int(np.ceil(round(top * mean.size, 9))))
        cut = np.sort(mean)[::-1][k - 1]
        keep = mean >= cut
        settings = {"top": float(top), "cut": float(cut), "kept_fraction": float(keep.mean())}
    elif rule == "map":
        if threshold is None or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"rule 'map' needs threshold in [0, 1], got {threshold}")
        keep = posterior["eta_map"].to_numpy() >= threshold
        settings = {"threshold": float(threshold)}
    else:
        if quantile is None or not 0.0 < quantile < 1.0:
            raise ValueError(f"rule 'quantile' needs quantile in (0, 1), got {quantile}")
        if by not in ("map", "mean"):
            raise ValueError(f"by must be 'map' or 'mean', got {by!r}")
        cut = float(result.family.ppf(np.array(quantile), result.params_))
        keep = posterior[f"eta_{by}"].to_numpy() >= cut
        settings = {"quantile": float(quantile), "by": by, "cut": cut}

    users = pd.Index(data.users, name="user")
    keep_s = pd.Series(keep, index=users, name="keep")
    n_votes = np.asarray(data.counts.votes_per_user())
    counts = {
        "users_kept": int(keep.sum()),
        "users_dropped": int((~keep).sum()),
        "votes_kept": int(n_votes[keep].sum()),
        "votes_dropped": int(n_votes[~keep].sum()),
    }
    votes = None
    if getattr(data, "votes", None) is not None:
        votes = data.votes[keep[np.asarray(data.vote_user)]]
    return FilterResult(rule=rule, settings=settings, keep=keep_s, votes=votes, counts=counts)


def _align_to_data(posterior: xr.Dataset, users: pd.Index) -> xr.Dataset:
    """Reorder the posterior's users like the fitted data's users.

    The keep mask indexes the data's vote rows by user position, so a
    posterior listing the same users in another order must be reordered, and
    one listing other users is an error.
    """
    post_users = pd.Index(posterior["user"].to_numpy())
    if post_users.equals(users):
        return posterior
    pos = post_users.get_indexer(users) if post_users.is_unique else None
    if pos is None or post_users.size != users.size or np.any(pos < 0):
        raise ValueError(
            "posterior users do not match the fitted data's users; pass the output of "
            "result.posterior() (or user_posterior(result))"
        )
    return posterior.isel(user=pos)
