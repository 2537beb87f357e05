"""Simple per-user scores that attnmodel's attentiveness is measured against.

Two scores a practitioner computes in a few lines, kept here in one place so
that benchmarks and users compute them the same way:

:func:`agreement_score`
    Each user's agreement with every pair's majority direction, weighted by
    how far the pair's win rate is from a coin flip. Under the vote model a
    vote for the stronger model has probability ``1/2 + eta_j (mu_p - 1/2)``,
    so ``E[2 z - 1] = eta_j (2 mu_p - 1)`` and the least-squares moment
    estimator of ``eta_j`` over user ``j``'s votes is::

        eta_hat_j = sum_p (2 mu_hat_p - 1) (2 s_jp - n_jp) / sum_p n_jp (2 mu_hat_p - 1)^2

    with ``n_jp`` the user's votes on pair ``p`` (ties left out), ``s_jp``
    those for the pair's stronger model, and ``mu_hat_p`` the pair's win rate
    estimated from the *other* users' votes (``leave_one_out=True``, the
    default) or from all votes. A vote that agrees with the direction of
    ``mu_hat_p`` adds ``|2 mu_hat_p - 1|`` to the numerator, one that
    disagrees subtracts it: pairs close to a coin flip weigh little. With
    in-sample ``mu_hat`` a user's own votes pull each pair's direction their
    way, which inflates the agreement of users with few votes on thinly voted
    pairs; leaving the user out removes that. The expectation is ``eta_j``
    when ``mu_hat`` is right: ``1`` for a user who votes like the pairs' win
    rates, ``0`` for a coin flipper; a user who always sides with the
    majority scores above 1, and values below 0 occur by chance. Ties carry
    no direction and are left out (they are the tie rate's business).

:func:`tie_rate`
    Each user's share of tie votes, read from the raw vote rows (a
    :class:`~attnmodel.data.votes.VoteData` keeps only each pair's number of
    ties).

Examples
--------
>>> import pandas as pd
>>> from attnmodel.baselines import agreement_score, tie_rate
>>> from attnmodel.data.votes import VoteData
>>> votes = pd.DataFrame({
...     "user": ["u1", "u1", "u2", "u2", "u3", "u3"],
...     "model_a": ["x", "x", "x", "y", "x", "x"],
...     "model_b": ["y", "y", "y", "x", "y", "y"],
...     "winner": ["model_a", "model_a", "model_a", "model_b", "model_b", "tie"],
... })
>>> tie_rate(votes)["tie_rate"].round(2).tolist()
[0.0, 0.0, 0.5]
>>> agreement_score(VoteData.from_frame(votes)).round(3).tolist()
[3.0, 3.0, -1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.votes import VoteData

__all__ = ["agreement_score", "tie_rate"]


def agreement_score(data: VoteData, *, leave_one_out: bool = True) -> pd.Series:
    """Each user's weighted agreement with the pairs' majority directions.

    Parameters
    ----------
    data : VoteData
        The votes (ties already left out by :class:`VoteData`).
    leave_one_out : bool
        Estimate each pair's win rate without the user being scored (default)
        or from all votes.

    Returns
    -------
    pandas.Series
        Named ``"agreement"``, indexed by ``data.users``: the moment estimator
        ``eta_hat_j`` of the module docstring. NaN for a user none of whose
        votes is on a pair with a direction (every such pair's ``mu_hat`` is
        exactly 1/2, or nobody else voted on it).
    """
    c = data.counts
    # Pair totals over users: each distinct count row stands for row_weight users.
    users_per_entry = np.repeat(c.row_weight, np.diff(c.row_ptr))
    total_n = np.bincount(c.entry_pair, weights=users_per_entry * c.entry_n, minlength=c.n_pairs)
    total_s = np.bincount(c.entry_pair, weights=users_per_entry * c.entry_s, minlength=c.n_pairs)
    n_e = c.entry_n.astype(np.float64)
    s_e = c.entry_s.astype(np.float64)
    if leave_one_out:
        # Users sharing a count row have the same counts, so the leave-one-out
        # win rate is a function of the entry.
        other_n = total_n[c.entry_pair] - n_e
        other_s = total_s[c.entry_pair] - s_e
    else:
        other_n = total_n[c.entry_pair]
        other_s = total_s[c.entry_pair]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(other_n > 0, 2.0 * other_s / other_n - 1.0, 0.0)
    num = c.row_sum(d * (2.0 * s_e - n_e))
    den = c.row_sum(n_e * d * d)
    with np.errstate(invalid="ignore", divide="ignore"):
        row_score = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return pd.Series(row_score[c.user_row], index=data.users, name="agreement")


def tie_rate(votes: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    """Each user's votes, ties and share of ties, from one row per vote.

    Parameters
    ----------
    votes : pandas.DataFrame
        Raw vote rows, checked as :meth:`VoteData.from_frame` checks them
        (a bad value raises :class:`~attnmodel.errors.VoteDataError` naming
        its column and row).
    **columns
        Column names and options of :meth:`VoteData.from_frame` (``user``,
        ``model_a``, ``model_b``, ``winner``); ``ties`` is fixed to
        ``"drop"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by user in order of first appearance, users whose votes are
        all ties included; columns ``n_votes`` (all votes), ``n_ties`` and
        ``tie_rate``.
    """
    columns = {**columns, "ties": "drop"}
    data = VoteData.from_frame(votes, **columns)
    user_col = columns.get("user", "user")
    codes, users = pd.factorize(votes[user_col])
    n_all = np.bincount(codes, minlength=len(users))
    users = pd.Index(users, name="user")
    n_kept = data.votes_per_user().reindex(users, fill_value=0).to_numpy()
    n_ties = n_all - n_kept
    return pd.DataFrame(
        {"n_votes": n_all, "n_ties": n_ties, "tie_rate": n_ties / n_all}, index=users
    )
