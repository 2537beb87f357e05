"""Command line entry point: ``attnmodel demo``.

The demo simulates a comparison-mode vote log like the paper's synthetic
setting, fits ``P_eta`` by MAP-EM with ``mu`` known and with ``mu`` under a
prior, filters users and checks the kept set against the simulated truth.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from attnmodel import BetaPrior, filter_users, fit_em, simulate_votes

    truth = {"alpha": 3.0, "beta": 5.0}
    print(
        f"Simulating {args.users} users with 50..100 votes each; attentiveness ~ Beta(3, 5), "
        f"stronger model's win rate mu = {args.mu}"
    )
    sim = simulate_votes("beta", truth, args.users, (50, 100), mu=args.mu, seed=args.seed)
    data = sim.to_data()
    print(f"  {data!r}\n")

    fits = {}
    for label, kw in (
        ("mu known", {"mu": args.mu}),
        ("mu ~ Beta(8, 2)", {"mu_prior": BetaPrior(8, 2)}),
    ):
        t0 = time.perf_counter()
        fit = fit_em(data, "beta", seed=args.seed, **kw)
        seconds = time.perf_counter() - t0
        fits[label] = fit
        print(f"MAP-EM, {label}: {seconds:.2f} s")
        print("  " + fit.summary().replace("\n", "\n  "))
        print()

    fit = fits["mu known"]
    eta_star = float(fit.family.ppf(np.array(0.5), truth))
    post = fit.posterior(eta_star=eta_star)
    true_eta = sim.eta.reindex(post["user"].to_numpy()).to_numpy()
    attentive = true_eta >= eta_star
    print(f"Filtering at eta_star = {eta_star:.3f} (median of the true P_eta):")
    for rule, kw in (
        ("prob", {"eta_star": eta_star, "prob": 0.95}),
        ("prob", {"eta_star": eta_star, "prob": 0.8}),
        ("top", {"top": 0.5}),
        ("quantile", {"quantile": 0.5}),
    ):
        res = filter_users(fit, rule=rule, posterior=post if rule != "prob" else None, **kw)
        kept = res.keep.to_numpy()
        precision = attentive[kept].mean() if kept.any() else float("nan")
        recall = kept[attentive].mean() if attentive.any() else float("nan")
        print(f"  {res.summary()}")
        print(
            f"    truly attentive among kept: {precision:.1%}; attentive users kept: {recall:.1%}"
        )
    print("\nDone.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``attnmodel`` command line."""
    parser = argparse.ArgumentParser(
        prog="attnmodel",
        description="Infer user attentiveness from comparison-mode votes and filter the votes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate votes, fit, filter and print a summary")
    demo.add_argument(
        "--users", type=int, default=400, help="number of simulated users (default 400)"
    )
    demo.add_argument(
        "--mu", type=float, default=0.8, help="win rate of the stronger model (default 0.8)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
