"""``attnmodel demo``: the whole pipeline on simulated votes, written to one folder.

It simulates a vote log like the paper's synthetic setting, fits MAP-EM (``mu``
known, and under a Beta(8, 2) prior) and NUTS, filters, scores each filter
against the true attentiveness (:func:`attnmodel.paper.experiments.selection_scores`),
exports DPO pairs, trains the reward-model proxy of
:mod:`attnmodel.paper.downstream` on all, filtered and truly attentive users'
votes, and writes the summary, results, tables and plots.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.cli.commands import (
    Progress,
    check_output,
    comparison_text,
    format_summary,
    json_safe,
    run_fit,
    save_result,
    write_figure,
    write_table,
    write_text,
)
from attnmodel.data.io import output_mode, temporary_beside
from attnmodel.errors import CommandError

__all__ = ["DEMO_FILES", "cmd_demo"]

#: Files the demo writes, in the order a reader looks at them.
DEMO_FILES = (
    "summary.txt",
    "summary.json",
    "votes.csv",
    "em.nc",
    "em_known_mu.nc",
    "nuts.nc",
    "users.csv",
    "kept_votes.csv",
    "dpo.jsonl",
    "em_convergence.png",
    "em_vs_nuts.png",
    "attentiveness.png",
)


def _demo_files(outdir: Path, with_nuts: bool) -> dict[str, Path]:
    skip = set() if with_nuts else {"nuts.nc", "em_vs_nuts.png"}
    return {name: outdir / name for name in DEMO_FILES if name not in skip}


def _other_files(outdir: Path) -> list[str]:
    """Names in ``outdir`` that the demo does not write (none when it does not exist)."""
    if not outdir.is_dir():
        return []
    return sorted(p.name for p in outdir.iterdir() if p.name not in DEMO_FILES)


def _check_demo_folder(outdir: Path, force: bool) -> bool:
    """Refuse an output folder the demo may not use; return whether it holds an earlier run.

    The demo owns its folder: one holding nothing but the demo's own files (an
    earlier run) is replaced whole once the new run is complete. A folder with
    other files is refused, unless ``force``, which writes the demo's files
    among them and leaves the others alone.
    """
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--out {str(outdir)!r} exists and is not a directory")
    others = _other_files(outdir)
    if others and not force:
        shown = ", ".join(repr(n) for n in others[:3]) + (", ..." if len(others) > 3 else "")
        raise CommandError(
            f"--out {str(outdir)!r} holds files the demo does not write ({shown}); choose "
            "another folder, or pass --force to write the demo's files among them"
        )
    return outdir.is_dir() and not others and any(outdir.iterdir())


def _stage(outdir: Path) -> Path:
    """A new empty folder beside ``outdir`` to write a run into, with the mode ``outdir`` gets."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    stage = temporary_beside(outdir, directory=True)
    os.chmod(stage, output_mode(outdir, directory=True))
    return stage


def _publish(stage: Path, outdir: Path) -> None:
    """Move a complete run from ``stage`` to ``outdir``.

    A folder holding only an earlier run is swapped out whole (renamed aside,
    then removed); into a folder with other files (``--force``), each of the
    demo's files is moved on its own, replacing the one of the same name.
    """
    if not outdir.exists():
        os.rename(stage, outdir)
        return
    if _other_files(outdir):
        for path in stage.iterdir():
            os.replace(path, outdir / path.name)
        stage.rmdir()
        return
    old = temporary_beside(outdir, ".old", directory=True)
    os.rename(outdir, old)
    try:
        os.rename(stage, outdir)
    except OSError:
        os.rename(old, outdir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _proxy_report(sim, data, kept_by, attentive, args, progress, say) -> list[dict[str, Any]]:
    """What a reward model trained on each set of votes learns (:mod:`attnmodel.paper.downstream`).

    The demo's votes get responses with features consistent with them
    (:func:`~attnmodel.model.simulate.attach_response_features`); a
    Bradley-Terry reward model is trained on the DPO pairs of all votes, of
    two filters and of the truly attentive users, and scored on fresh pairs.
    """
    from attnmodel.model.simulate import attach_response_features
    from attnmodel.paper.downstream import PROXY_RESPONSES, ProxyEvaluation, proxy_quality

    if not args.mu < 1.0:
        say(
            "\nThe reward-model proxy needs mu < 1 (at mu = 1 every vote is for one model); "
            "skipped."
        )
        return []
    sets = {
        "all votes": data.votes,
        "filtered, rule prob (the exported pairs)": kept_by["prob"].votes,
        "filtered, rule top": kept_by["top"].votes,
        "oracle, true eta >= eta_star": data.votes[attentive[np.asarray(data.vote_user)]],
    }
    rows = []
    with progress.step("training the proxy reward model on each set of pairs"):
        featured = attach_response_features(sim, PROXY_RESPONSES, seed=args.seed)
        evaluation = ProxyEvaluation(PROXY_RESPONSES, seed=args.seed)
        for label, votes in sets.items():
            q = proxy_quality(
                featured,
                featured.votes.loc[votes.index],
                evaluation,
                response_a="feature_a",
                response_b="feature_b",
            )
            rows.append({"votes": label, **q})
    say(
        "\nA reward model trained on each set's DPO pairs (a proxy without a language model; "
        "accuracy: fresh response pairs ordered as the true reward orders them; win rate: "
        "its pick of two against a fresh response, 50% for a random pick, 66.7% at best):"
    )
    width = max(len(r["votes"]) for r in rows)
    for r in rows:
        say(
            f"  {r['votes'] + ':':<{width + 1}} {r['pairs']:>6} pairs, accuracy "
            f"{r['accuracy']:.1%}, win rate {r['win_rate']:.1%}"
        )
    return rows


def cmd_demo(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel demo``: run the whole pipeline on simulated votes."""
    from attnmodel.data.votes import VoteData
    from attnmodel.export import to_dpo, write_dpo
    from attnmodel.filtering import filter_users
    from attnmodel.model.priors import BetaPrior, resolve_mu
    from attnmodel.model.simulate import simulate_votes
    from attnmodel.paper.experiments import selection_scores
    from attnmodel.plots import plot_attentiveness, plot_em_objective
    from attnmodel.results import summarize, user_table

    if args.users < 10:
        raise CommandError(f"--users {args.users}: the demo needs at least 10 users")
    pair = "strong-model vs weak-model"
    try:
        resolve_mu([pair], args.mu)
    except ValueError as e:
        raise CommandError(f"--mu {args.mu!r}: {e}") from None
    outdir = Path(args.out)
    earlier = _check_demo_folder(outdir, args.force)
    for path in _demo_files(outdir, not args.no_nuts).values():
        check_output(path, True)  # the folder is writable
    if earlier:
        progress.note(
            f"{outdir}/ holds an earlier demo run: it is replaced when this run is complete"
        )

    lines: list[str] = []

    def say(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    truth = {"alpha": 3.0, "beta": 5.0}
    say(
        f"Simulating {args.users} users with 50..100 votes each on one pair ({pair}); "
        f"attentiveness ~ Beta(3, 5), stronger model's win rate mu = {args.mu:g}"
    )
    sim = simulate_votes(
        "beta",
        truth,
        args.users,
        (50, 100),
        mu=args.mu,
        pairs=[pair],
        layout="raw",
        seed=args.seed,
        texts=True,
    )
    votes = sim.votes
    data = VoteData.from_frame(votes)
    say(f"  {data!r}")
    eta_star = float(sim.family.ppf(np.array(0.5), sim.params))
    say(f"  eta_star = {eta_star:.3f}, the median of the true P_eta\n")

    fits: dict[str, Any] = {}
    for key, label, mu_kw in (
        ("em", "MAP-EM, mu ~ Beta(8, 2)", {"mu_prior": BetaPrior(8.0, 2.0)}),
        ("em_known_mu", "MAP-EM, mu known", {"mu": args.mu}),
    ):
        fits[key] = run_fit(
            data, "beta", "em", mu_kw, eta_star, args.seed, {}, progress, f"fitting {label}"
        )
    if not args.no_nuts:
        fits["nuts"] = run_fit(
            data,
            "beta",
            "nuts",
            {"mu_prior": BetaPrior(8.0, 2.0)},
            eta_star,
            args.seed,
            {"draws": args.draws, "tune": args.tune, "chains": args.chains},
            progress,
            "sampling with NUTS, mu ~ Beta(8, 2)",
        )
    summaries = {key: summarize(dt) for key, dt in fits.items()}
    titles = {
        "em": "MAP-EM, mu ~ Beta(8, 2)",
        "em_known_mu": "MAP-EM, mu known",
        "nuts": "NUTS, mu ~ Beta(8, 2)",
    }
    say("Truth: alpha = 3, beta = 5, mu = " + f"{args.mu:g}")
    for key, s in summaries.items():
        say(f"\n{titles[key]}:")
        say("  " + format_summary(s).replace("\n", "\n  "))

    true_eta = sim.eta.reindex(pd.Index(data.users)).to_numpy()
    attentive = true_eta >= eta_star
    say(f"\nFiltering the MAP-EM fit (mu ~ Beta(8, 2)) at eta_star = {eta_star:.3f}:")
    filters = []
    kept_main = None
    kept_by: dict[str, Any] = {}
    for rule, kw in (
        ("prob", {"eta_star": eta_star, "prob": 0.95}),
        ("prob", {"eta_star": eta_star, "prob": 0.8}),
        ("top", {"top": 0.5}),
        ("quantile", {"quantile": 0.5}),
    ):
        res = filter_users(fits["em"], data, rule=rule, **kw)
        kept = res.keep.reindex(pd.Index(data.users)).fillna(False).to_numpy(dtype=bool)
        scores = selection_scores(kept, attentive)
        precision, recall = scores["precision"], scores["recall"]
        say(f"  {res.summary()}")
        say(f"    truly attentive among kept: {precision:.1%}; attentive users kept: {recall:.1%}")
        filters.append({"rule": rule, **kw, **res.counts, "precision": precision, "recall": recall})
        kept_by.setdefault(rule, res)
        if kept_main is None:
            kept_main = res
    proxy = _proxy_report(sim, data, kept_by, attentive, args, progress, say)
    comparison = None
    if "nuts" in fits:
        from attnmodel.compare import compare_fits

        comparison = compare_fits(fits["em"], fits["nuts"])
        say("\nMAP-EM against NUTS (both mu ~ Beta(8, 2)):")
        say("  " + comparison_text(comparison).replace("\n", "\n  "))

    assert kept_main is not None
    pairs = to_dpo(kept_main.votes, keep=["user"])
    say(f"\n{len(pairs)} DPO pairs (prompt, chosen, rejected) from the kept votes.")

    with progress.step("plotting"):
        figs = {
            "em_convergence.png": plot_em_objective(fits["em"]),
            "attentiveness.png": plot_attentiveness(fits["em"], true_eta=true_eta),
        }
        if "nuts" in fits:
            from attnmodel.compare import plot_comparison

            figs["em_vs_nuts.png"] = plot_comparison(fits["em"], fits["nuts"])
    names = list(_demo_files(outdir, "nuts" in fits))
    say(f"\nWritten to {outdir}/: " + ", ".join(names))
    report = {
        "truth": {"family": "beta", "params": truth, "mu": args.mu, "eta_star": eta_star},
        "data": {"users": data.n_users, "votes": data.n_votes, "pairs": list(data.pairs)},
        "fits": summaries,
        "filters": filters,
        "dpo_pairs": len(pairs),
        "proxy": proxy,
        "files": names,
    }
    say("Done.")

    # Every file is written to a new folder beside --out, moved there when complete.
    quiet = Progress(quiet=True)
    with progress.step(f"writing {outdir}/") as info:
        stage = _stage(outdir)
        files = _demo_files(stage, "nuts" in fits)
        try:
            write_table(votes, files["votes.csv"], quiet)
            for key in fits:
                save_result(fits[key], files[f"{key}.nc"], quiet, False)
            write_table(user_table(fits["em"]), files["users.csv"], quiet)
            write_table(kept_main.votes, files["kept_votes.csv"], quiet)
            write_dpo(pairs, files["dpo.jsonl"])
            for name, fig in figs.items():
                write_figure(fig, files[name])
            write_text(json.dumps(json_safe(report), indent=2) + "\n", files["summary.json"])
            write_text("\n".join(lines) + "\n", files["summary.txt"])
            _publish(stage, outdir)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        info["detail"] = f"{len(files)} files"
    if earlier:
        progress.note(f"replaced the earlier demo run in {outdir}/")
    return 0
