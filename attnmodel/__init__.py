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
:func:`build_model` and sampled by :func:`sample_nuts`.

Every name below is imported from its module on first use, so that
``import attnmodel`` (and ``attnmodel --help``) costs almost nothing and MAP-EM
never loads PyMC. The package's layers, in the order data flows through them:
``data`` (votes in, tables), ``model`` (families, priors, the compiled
likelihood, the PyMC model), ``inference`` (MAP-EM, NUTS), ``posterior`` (per-user
attentiveness), ``results`` (the result tree), then ``filtering``, ``export``,
``compare``, ``leaderboard`` and ``plots``; ``paper`` holds the paper's experiments and ``cli``
the command line.
"""

import os

# The compiled kernels' parallel loops (numba's OpenMP layer) would otherwise
# have their workers spin between parallel regions. On cores shared with other
# processes a spinning worker holds a core the other one waits for: an E-step
# of 600 users took 260 ms instead of 4 ms at load 5. Idle workers sleep
# instead, unless the environment already sets a policy; the runtime reads it
# when it loads, at the first parallel call.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from attnmodel.errors import (  # noqa: E402
    AttnmodelError,
    AttnmodelWarning,
    ConvergenceWarning,
    DiagnosticsError,
    DiagnosticsWarning,
    NotConvergedError,
    TableFileError,
    VoteDataError,
    VoteDataTypeError,
)

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first access).
_HOME = {
    "VoteData": "attnmodel.data.votes",
    "FAMILY_NAMES": "attnmodel.model.families",
    "get_family": "attnmodel.model.families",
    "DEFAULT_MU_PRIOR": "attnmodel.model.priors",
    "BetaPrior": "attnmodel.model.priors",
    "Prior": "attnmodel.model.priors",
    "PooledMu": "attnmodel.model.mu_structure",
    "BradleyTerryMu": "attnmodel.model.mu_structure",
    "SimulatedVotes": "attnmodel.model.simulate",
    "simulate_counts": "attnmodel.model.simulate",
    "simulate_votes": "attnmodel.model.simulate",
    "build_model": "attnmodel.model.pymc_model",
    "EMResult": "attnmodel.inference.em",
    "fit_em": "attnmodel.inference.em",
    "sample_nuts": "attnmodel.inference.nuts",
    "fit": "attnmodel.inference.fitting",
    "user_posterior": "attnmodel.posterior.users",
    "load": "attnmodel.results.io",
    "save": "attnmodel.results.io",
    "summarize": "attnmodel.results.summary",
    "FilterResult": "attnmodel.filtering",
    "filter_users": "attnmodel.filtering",
    "to_dpo": "attnmodel.export",
    "write_dpo": "attnmodel.export",
    "compare_fits": "attnmodel.compare",
}


#: Subpackages and modules reachable as attributes (``am.results.summarize``).
_SUBMODULES = (
    "baselines",
    "cli",
    "compare",
    "data",
    "export",
    "filtering",
    "inference",
    "leaderboard",
    "model",
    "paper",
    "plots",
    "posterior",
    "results",
)


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"attnmodel.{name}")
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'attnmodel' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME) | set(_SUBMODULES))


__all__ = [
    "AttnmodelError",
    "AttnmodelWarning",
    "ConvergenceWarning",
    "DiagnosticsError",
    "DiagnosticsWarning",
    "NotConvergedError",
    "TableFileError",
    "VoteDataError",
    "VoteDataTypeError",
    *_HOME,
    "__version__",
]
