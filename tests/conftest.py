"""Seeded data shared by the tests."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from attnmodel.data.votes import VoteData
from attnmodel.model.simulate import simulate_counts, simulate_votes

TWO_POINT_TRUTH = {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98}
BETA_TRUTH = {"alpha": 3.0, "beta": 5.0}


def paper_counts(family: str, n_users: int, n_votes, seed: int, mu: float = 0.8) -> VoteData:
    """Votes of the paper's synthetic setting as per-user counts."""
    truth = TWO_POINT_TRUTH if family == "two_point" else BETA_TRUTH
    n, s, _ = simulate_counts(family, truth, n_users, n_votes, mu, seed=seed)
    return VoteData.from_counts(n, s)


@pytest.fixture
def sigint_as_in_a_terminal():
    """Ctrl-C reaches the test and the processes it starts, as in a terminal.

    A command that a non-interactive shell starts in the background (``nohup
    ... &``, some CI runners) inherits SIGINT ignored, Python keeps it ignored,
    and so do the processes it starts: a test of what Ctrl-C does would then
    test nothing. Python's own handler for the test's duration; the processes
    it starts begin with SIGINT at its default.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def beta_data() -> VoteData:
    """Paper setting, Beta(3, 5) truth, mu = 0.8, m = 400, n_j in 50..100."""
    return paper_counts("beta", 400, (50, 100), seed=11)


@pytest.fixture(scope="session")
def two_point_data() -> VoteData:
    """Paper setting, 0.6 delta(0.4) + 0.4 delta(0.98) truth, mu = 0.8."""
    return paper_counts("two_point", 400, (50, 100), seed=12)


@pytest.fixture(scope="session")
def multi_pair_sim():
    """Three pairs of different strength, raw layout, users with 1 to 40 votes."""
    return simulate_votes(
        "beta",
        BETA_TRUTH,
        150,
        (1, 40),
        {"gpt vs llama": 0.9, "claude vs alpaca": 0.75, "vicuna vs alpaca": 0.62},
        layout="raw",
        seed=5,
    )


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(2026)
