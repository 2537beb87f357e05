"""Regenerate the model page's prior predictive figure and table: what the default priors imply.

Draws the Beta family's shapes from their default prior
(:func:`attnmodel.model.priors.default_priors`: mean ``m ~ Beta(1.5, 1.5)``,
concentration ``kappa ~ LogNormal(log 8, 0.8)``, truncated to the shapes' box
``[0.2, 50]``) and summarises the attentiveness distributions ``P_eta`` they
describe. Writes

- ``generated/prior_predictive.png``: ``P_eta`` densities of prior draws, the
  pointwise band of their CDFs, and the share of users above ``eta = 1/2``;
- ``generated/prior_predictive.md``: the table the model page includes.

Usage (from the repository root)::

    .venv/bin/python docs/prior_predictive.py --force

Existing outputs are only replaced with ``--force``; files are written atomically.
The numbers are seeded, so a run reproduces the committed table exactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

DOCS = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python docs/prior_predictive.py --force"
TABLE = "prior_predictive.md"
FIGURE = "prior_predictive.png"
#: Prior draws summarised in the table (seeded).
DRAWS = 40_000
SEED = 20261201


def prior_draws(n: int = DRAWS, seed: int = SEED) -> dict[str, np.ndarray]:
    """Shapes drawn from the default prior and what each ``P_eta`` implies."""
    from attnmodel.model.families import get_family
    from attnmodel.model.priors import MEAN_CONCENTRATION, default_priors

    fam = get_family("beta")
    joint = default_priors(fam)[MEAN_CONCENTRATION]
    lo, hi = fam.shape_box(None)
    a, b = joint.sample(n, np.random.default_rng(seed), lo, hi)
    k = a + b
    return {
        "alpha": a,
        "beta": b,
        "mean": a / k,
        "sd": np.sqrt(a * b / (k * k * (k + 1.0))),
        "above_half": stats.beta.sf(0.5, a, b),
        "above_090": stats.beta.sf(0.9, a, b),
    }


def table(draws: dict[str, np.ndarray]) -> str:
    """The Markdown table of prior quantiles and probabilities."""
    rows = [
        ("mean attentiveness `E[eta]`", "mean"),
        ("spread between users `sd(eta)`", "sd"),
        ("share of users with `eta >= 0.5`", "above_half"),
        ("share of users with `eta >= 0.9`", "above_090"),
    ]
    lines = [
        "| quantity of `P_eta` | 5% | 25% | median | 75% | 95% |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in rows:
        q = np.quantile(draws[key], [0.05, 0.25, 0.5, 0.75, 0.95])
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in q) + " |")
    a, b = draws["alpha"], draws["beta"]
    lo, hi = 0.2, 50.0
    tol = 0.01 * np.log(hi / lo)

    def near(x):
        return (np.log(x / lo) <= tol) | (np.log(hi / x) <= tol)

    lines += [
        "",
        "| event | prior probability |",
        "|---|---|",
        f"| `P_eta` unbounded at `eta = 1` (`beta < 1`) | {np.mean(b < 1):.3f} |",
        f"| `P_eta` unbounded at `eta = 0` (`alpha < 1`) | {np.mean(a < 1):.3f} |",
        f"| a shape within 1% of the box `[0.2, 50]` (log scale) | {np.mean(near(a) | near(b)):.4f}"
        " |",
    ]
    return "\n".join(lines) + "\n"


def figure(draws: dict[str, np.ndarray]):
    """Densities of 40 prior draws, the CDF band, and the share of users above 1/2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eta = np.linspace(0.0005, 0.9995, 400)
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.6))
    a, b = draws["alpha"], draws["beta"]
    for i in range(40):
        axes[0].plot(eta, stats.beta.pdf(eta, a[i], b[i]), color="tab:blue", alpha=0.35, lw=0.8)
    axes[0].set(ylim=(0, 6), xlabel="eta", ylabel="density", title="P_eta of 40 prior draws")
    cdf = stats.beta.cdf(eta[None, :], a[:4000, None], b[:4000, None])
    q = np.quantile(cdf, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    axes[1].fill_between(eta, q[0], q[4], color="tab:blue", alpha=0.2, label="90%")
    axes[1].fill_between(eta, q[1], q[3], color="tab:blue", alpha=0.35, label="50%")
    axes[1].plot(eta, q[2], color="tab:blue", label="median")
    axes[1].set(xlabel="eta", ylabel="P(eta_j <= eta)", title="CDF of P_eta, pointwise")
    axes[1].legend(loc="upper left", frameon=False)
    axes[2].hist(draws["above_half"], bins=40, range=(0, 1), color="tab:blue", alpha=0.7)
    axes[2].set(xlabel="share of users with eta >= 0.5", ylabel="prior draws", yticks=[])
    axes[2].set_title("implied share above 1/2")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """Write the table and the figure; returns the exit status."""
    from attnmodel.data.io import atomic_write

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DOCS / "generated"), help="output folder")
    ap.add_argument("--force", action="store_true", help="replace existing outputs")
    args = ap.parse_args(argv)
    out = Path(args.out)
    draws = prior_draws()
    text = table(draws)
    atomic_write(out / TABLE, lambda p: p.write_text(text, encoding="utf-8"), force=args.force)
    fig = figure(draws)
    atomic_write(out / FIGURE, lambda p: fig.savefig(p, dpi=110, format="png"), force=args.force)
    print(f"wrote {out / TABLE} and {out / FIGURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
