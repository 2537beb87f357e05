"""attnmodel: turn comparison-mode preference votes into training data you can trust.

Users vote for one of two answers; user ``j`` votes for the stronger model with
probability ``1/2 + eta_j * (mu - 1/2)``, where ``eta_j`` in [0, 1] is the
user's attentiveness and ``mu`` the stronger model's win rate. attnmodel fits
the population distribution of ``eta`` (MAP-EM), infers each user's ``eta``
and keeps the votes of attentive users.

>>> import attnmodel as am
>>> sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 200, 50, mu=0.8, seed=0)
>>> fit = am.fit_em(sim.to_data(), "beta", mu=0.8)
>>> kept = am.filter_users(fit, rule="prob", eta_star=0.5, prob=0.95)

Both fitters return the same ArviZ ``DataTree`` through :func:`fit`
(``method="em"`` or ``"nuts"``); the PyMC model is built by
:func:`build_model` and sampled by :func:`sample_nuts` (both imported on
first use, so that ``import attnmodel`` does not load PyMC).
"""

from attnmodel.compare import compare_fits
from attnmodel.data.votes import VoteData
from attnmodel.inference.em import ConvergenceWarning, EMResult, fit_em
from attnmodel.errors import AttnmodelWarning, VoteDataError
from attnmodel.export import to_dpo, write_dpo
from attnmodel.model.families import FAMILY_NAMES, get_family
from attnmodel.filtering import DiagnosticsError, FilterResult, NotConvergedError, filter_users
from attnmodel.inference.fitting import fit
from attnmodel.posterior.users import user_posterior
from attnmodel.model.priors import DEFAULT_MU_PRIOR, BetaPrior, Prior
from attnmodel.results import load, save, summarize
from attnmodel.model.simulate import SimulatedVotes, simulate_counts, simulate_votes

__version__ = "0.1.0"

# Names whose modules import PyMC, loaded on first access.
_LAZY = {
    "sample_nuts": "attnmodel.inference.nuts",
    "build_model": "attnmodel.model.pymc_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnmodel' has no attribute {name!r}")


__all__ = [
    "AttnmodelWarning",
    "BetaPrior",
    "ConvergenceWarning",
    "DEFAULT_MU_PRIOR",
    "DiagnosticsError",
    "EMResult",
    "FAMILY_NAMES",
    "FilterResult",
    "NotConvergedError",
    "Prior",
    "SimulatedVotes",
    "VoteData",
    "VoteDataError",
    "build_model",
    "compare_fits",
    "filter_users",
    "fit",
    "fit_em",
    "get_family",
    "load",
    "sample_nuts",
    "save",
    "simulate_counts",
    "simulate_votes",
    "summarize",
    "to_dpo",
    "write_dpo",
    "user_posterior",
    "__version__",
]
