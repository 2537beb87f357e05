"""Synthetic prompt and response texts for simulated votes.

Simulated vote logs carry no texts; :func:`add_texts` gives each vote a prompt
and the two models' answers to it, so that a simulated log can go all the way
to a DPO export (:func:`attnmodel.export.to_dpo`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["add_texts"]


def add_texts(votes: pd.DataFrame, seed: int | None, n_prompts: int = 200) -> pd.DataFrame:
    """Add synthetic ``prompt``, ``response_a``, ``response_b`` columns to simulated votes.

    Each vote gets one of ``n_prompts`` prompts (``"Question 17"``) drawn
    uniformly, and each model's answer names the model and the prompt
    (``"gpt's answer to q17"``). ``response_a`` is the answer of the model
    shown first (``model_a`` in the raw layout, the pair's stronger model in
    the oriented one), so that the texts follow each vote into the DPO export.

    Parameters
    ----------
    votes : pandas.DataFrame
        Raw (``model_a``, ``model_b``) or oriented (``pair`` read
        ``"stronger vs weaker"``) vote rows, for example
        ``SimulatedVotes.votes``.
    seed : int or None
        Seed of the prompt draws.
    n_prompts : int
        Number of distinct prompts.

    Returns
    -------
    pandas.DataFrame
        A copy of ``votes`` with the three text columns added.
    """
    rng = np.random.default_rng(seed)
    q = rng.integers(1, n_prompts + 1, size=len(votes))
    if "model_a" in votes.columns:
        a = votes["model_a"].astype(str).to_numpy()
        b = votes["model_b"].astype(str).to_numpy()
    else:
        split = votes["pair"].astype(str).str.split(" vs ", n=1, regex=False)
        a = split.str[0].to_numpy()
        b = split.str[-1].to_numpy()
    out = votes.copy()
    prompt = np.char.add("Question ", q.astype(str))
    out["prompt"] = prompt.astype(object)
    out["response_a"] = np.char.add(np.char.add(a.astype(str), "'s answer to q"), q.astype(str))
    out["response_b"] = np.char.add(np.char.add(b.astype(str), "'s answer to q"), q.astype(str))
    out["response_a"] = out["response_a"].astype(object)
    out["response_b"] = out["response_b"].astype(object)
    return out
