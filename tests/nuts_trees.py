"""NUTS-shaped result trees built from exact computations at a MAP-EM fit.

The tests of code that reads NUTS results (diagnostics gate, filtering,
EM-vs-NUTS comparison) need trees whose properties are known by
construction: global parameters jittered around the EM estimate in the
family's unconstrained coordinates (so the posterior mean is close to it and
the chains mix perfectly unless a chain is shifted on purpose), exact
independent ``eta`` draws at the EM estimate, and per-user summaries computed
from those draws.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from attnmodel.posterior.users import draw_eta
from attnmodel.results.tree import RESULT_MARKER


def nuts_like(
    em_result,
    em_tree: xr.DataTree,
    *,
    chains: int = 4,
    draws: int = 250,
    jitter: float = 0.02,
    shift: float = 0.0,
    divergences: int = 0,
    seed: int = 0,
) -> xr.DataTree:
    """A tree shaped like a NUTS result around ``em_result``.

    Parameters
    ----------
    jitter : float
        Standard deviation of the iid normal noise added to the unconstrained
        coordinates of the family parameters and of each unknown ``mu``.
    shift : float
        Added to those coordinates in chain 0 only: a chain that disagrees
        with the others, which r_hat must notice.
    divergences : int
        Draws marked divergent in ``sample_stats.diverging``.
    """
    rng = np.random.default_rng(seed)
    fam = em_result.family
    grid = em_result.problem.grid
    vec = fam.to_vector(em_result.params_)
    noise = rng.normal(size=(chains, draws, vec.size)) * jitter
    noise[0] += shift
    params = [
        [fam.from_vector(vec + noise[c, d], grid) for d in range(draws)] for c in range(chains)
    ]
    posterior = {}
    for key, dims in fam.param_dims.items():
        arr = np.array([[np.asarray(p[key], float) for p in row] for row in params])
        posterior[key] = (("chain", "draw", *dims), arr)
    spec = em_result.mu_spec
    mu = np.broadcast_to(em_result.mu_.to_numpy(), (chains, draws, len(spec.pairs))).copy()
    for k in spec.unknown:
        z = special.logit(2.0 * mu[..., k] - 1.0) + jitter * rng.normal(size=(chains, draws))
        z[0] += shift
        mu[..., k] = 0.5 + 0.5 * special.expit(z)
    posterior["mu"] = (("chain", "draw", "pair"), mu)
    users = em_tree["attentiveness"]["user"].to_numpy()
    eta = draw_eta(em_result, chains * draws, seed=seed + 1).reshape(chains, draws, -1)
    posterior["eta"] = (("chain", "draw", "user"), eta)
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "pair": np.asarray(spec.pairs, dtype=object),
        "user": users,
    }
    if any(fam.param_dims.values()):
        coords["component"] = np.arange(fam.n_components)
    post = xr.Dataset(posterior, coords=coords)

    em_attn = em_tree["attentiveness"].to_dataset()
    eta_star = float(em_tree.attrs["eta_star"])
    n = chains * draws
    p = (eta >= eta_star).mean(axis=(0, 1))
    lower, upper = np.quantile(eta, [0.03, 0.97], axis=(0, 1))
    attn = xr.Dataset(
        {
            "eta_mean": ("user", eta.mean(axis=(0, 1))),
            "eta_sd": ("user", eta.std(axis=(0, 1))),
            "eta_hdi": (("user", "ci_bound"), np.stack([lower, upper], axis=1)),
            "p_above": ("user", p),
            # The draws are independent, so the iid formula is the MCSE.
            "p_above_mcse": ("user", np.sqrt(p * (1.0 - p) / n)),
            "n_votes": ("user", em_attn["n_votes"].to_numpy()),
        },
        coords={"user": users, "ci_bound": np.array(["lower", "upper"], dtype=object)},
    )
    if "membership" in em_attn:
        attn["membership"] = em_attn["membership"]
    diverging = np.zeros(n, dtype=bool)
    diverging[rng.choice(n, size=divergences, replace=False)] = True
    row_ll = em_result.estep_.row_log_marginal[em_result.data.counts.user_row]
    attrs = {
        k: v
        for k, v in em_tree.attrs.items()
        if k not in ("converged", "n_iter", "objective", "best_start")
    }
    attrs.update(
        {
            RESULT_MARKER: 1,
            "method": "nuts",
            "sampler": "nuts_like",
            "variant": "marginal",
            "chains": chains,
            "draws": draws,
            "tune": 0,
            "seed": seed,
        }
    )
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=attrs),
            "posterior": post,
            "attentiveness": attn,
            "sample_stats": xr.Dataset(
                {"diverging": (("chain", "draw"), diverging.reshape(chains, draws))},
                coords={"chain": coords["chain"], "draw": coords["draw"]},
            ),
            "log_likelihood": xr.Dataset(
                {"votes": (("chain", "draw", "user"), np.broadcast_to(row_ll, eta.shape).copy())},
                coords={"chain": coords["chain"], "draw": coords["draw"], "user": users},
            ),
        }
    )
