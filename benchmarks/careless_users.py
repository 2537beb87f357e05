"""Benchmark: finding careless users injected into real votes (MT-Bench).

What is measured
----------------
The real votes are the 3,355 human judgments of MT-Bench (65 judges, 15 model
pairs, 780 ties; Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and
Chatbot Arena", arXiv:2306.05685, the ``human`` split of
``lmsys/mt_bench_human_judgments``, CC-BY-4.0). Into them each run injects
``--inject`` careless users (default 16, i.e. 16 of 81 users, 20%) of one
kind:

``coin``
    every vote a coin flip between the two answers shown, no ties;
``tie``
    a tie spammer: each vote a tie with probability 0.8, else a coin flip;
``left``
    an always-left clicker: every vote ``model_a``, the answer shown first;
``mix``
    the three kinds together, taken in turn (of 16 users: 6 coin flippers,
    5 tie spammers, 5 always-left clickers), in random order.

An injected user's number of votes is drawn (with replacement) from the real
judges' numbers of votes (ties included: 4 to 205, median 44), and their
items from the real log's distinct shown items (question, turn, ``model_a``,
``model_b`` in the order shown), without replacement within the user. So
they vote on what real judges saw, in the order the judges saw it.

Each user gets a score, higher meaning more attentive:

* ``agreement score``: :func:`attnmodel.baselines.agreement_score`, the
  moment estimator of ``eta_j`` from each pair's majority direction weighted
  by ``|2 mu_hat - 1|``, ``mu_hat`` leave-one-user-out, ties left out; and
  the same with ``mu_hat`` from all votes (``in-sample``);
* ``tie rate``: minus :func:`attnmodel.baselines.tie_rate`;
* for each attnmodel variant in :data:`VARIANTS` (the Beta and the two-point
  family with independent ``mu`` per pair; the Beta family with pooled and
  Bradley-Terry ``mu``; the Beta family with ties modelled, independent and
  pooled ``mu``; ties dropped unless said): the posterior
  mean ``eta_mean`` and ``p_above = P(eta >= 0.5 | votes)`` of
  ``attnmodel.fit(..., method="em", seed=seed)``.

A user a scorer cannot score (all their votes ties, so absent from the data
attnmodel and the agreement score see; or no vote on a pair with a
direction) ranks below every scored user: with ties dropped nothing of theirs
reaches the training data, and ``filter_users`` does not keep them.

Metrics, per run, then median and 10th-90th percentiles over ``--seeds``
runs (seeds 0, 1, ...):

* AUC of separating real from injected users: the Mann-Whitney probability
  that a real user scores above an injected one, ties counting one half;
* precision and recall of keeping real users: attnmodel's default filter
  (``filter_users(fit, data)``: rule ``prob``, ``P(eta >= 0.5) >= 0.95``);
  the baselines keep as many users as the first variant's filter keeps, the
  top of their ranking (equal scores at the cut broken at random).

A second table pairs the runs by seed (same seed, same injected users):
each attnmodel scorer's AUC minus that of the better of the agreement score
and the tie rate (by median AUC in the case).

Run
---
``PYTHONPATH=. .venv/bin/python benchmarks/careless_users.py`` (20 seeds; add
``--seeds 3`` while developing, ``--figure PATH`` for the figure, default
``benchmarks/.cache/careless_users.png``). The per-run numbers go to
``benchmarks/.cache/careless_users.csv``, rewritten after each seed;
``--from-csv`` prints the tables and draws the figure from one or more such
files without running, and ``--variants`` fits a subset of :data:`VARIANTS`
and ``--cases``/``--first-seed`` a subset of the runs, so a run can be split
over processes. A fit with ties modelled takes about 12 s of CPU time (4
starts; ``benchmarks/bench_ties.py --speed`` times it; the Beta with ties
dropped 1-2 s, the two-point 0.3 s), so the 20-seed run of all variants takes
about 40 minutes of CPU time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from attnmodel.baselines import agreement_score, tie_rate
from attnmodel.data.votes import VoteData
from attnmodel.filtering import filter_users
from attnmodel.inference.fitting import fit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import banner  # noqa: E402

MTBENCH = Path("/work/shared/data/mtbench_human_judgments.csv")
CACHE = HERE / ".cache"

#: Kinds of careless users; ``mix`` takes them in turn.
KINDS = ("coin", "tie", "left")
CASES = (*KINDS, "mix")
#: Injected users per run (16 of 81 users, 20%).
N_INJECT = 16
#: A tie spammer's probability of a tie on each vote.
TIE_SHARE = 0.8
#: What makes a shown item: the question, its turn, and the two answers in the order shown.
ITEM = ("question_id", "turn", "model_a", "model_b")

#: attnmodel's variants: each is keyword arguments of ``attnmodel.fit`` (method "em"),
#: with an optional ``"data"`` dict of keyword arguments of ``VoteData.from_frame``.
#: The filter's number of kept users of the first variant sets the baselines'.
VARIANTS: dict[str, dict] = {
    "attnmodel beta (independent, ties dropped)": dict(family="beta"),
    "attnmodel two_point (independent, ties dropped)": dict(family="two_point"),
    "attnmodel beta (pooled, ties dropped)": dict(family="beta", mu_structure="pooled"),
    "attnmodel beta (bradley_terry, ties dropped)": dict(
        family="beta", mu_structure="bradley_terry"
    ),
    "attnmodel beta (independent, ties modelled)": dict(family="beta", data=dict(ties="model")),
    "attnmodel beta (pooled, ties modelled)": dict(
        family="beta", mu_structure="pooled", data=dict(ties="model")
    ),
}


# ---------------------------------------------------------------------------
# injection


def inject(real: pd.DataFrame, case: str, n_users: int, rng: np.random.Generator) -> pd.DataFrame:
    """Vote rows of ``n_users`` careless users of ``case``, drawn from the real log.

    Returns the columns of ``real`` (``user_id``, ``model_a``, ``model_b``,
    ``winner``, ``question_id``, ``turn``) and ``kind`` (the user's kind);
    users are named ``careless-<kind>-<i>``.
    """
    if case == "mix":
        kinds = rng.permutation(np.resize(np.array(KINDS), n_users))
    elif case in KINDS:
        kinds = np.full(n_users, case)
    else:
        raise ValueError(f"unknown case {case!r}; choose one of {CASES}")
    items = real.drop_duplicates(list(ITEM))[list(ITEM)].reset_index(drop=True)
    counts = real.groupby("user_id", sort=False).size().to_numpy()
    frames = []
    for i, kind in enumerate(kinds):
        n = int(rng.choice(counts))
        rows = items.iloc[rng.choice(len(items), size=n, replace=False)].copy()
        side = np.where(rng.random(n) < 0.5, "model_a", "model_b")
        if kind == "coin":
            winner = side
        elif kind == "tie":
            winner = np.where(rng.random(n) < TIE_SHARE, "tie", side)
        else:
            winner = np.full(n, "model_a")
        rows["winner"] = winner
        rows["user_id"] = f"careless-{kind}-{i}"
        rows["kind"] = kind
        frames.append(rows)
    out = pd.concat(frames, ignore_index=True)
    return out[[*real.columns, "kind"]]


# ---------------------------------------------------------------------------
# metrics


def auc(score_pos: np.ndarray, score_neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties one half (the Mann-Whitney AUC).

    ``-inf`` is a valid score (ranks below everything else); NaN is not.
    """
    pos = np.asarray(score_pos, dtype=float)
    neg = np.asarray(score_neg, dtype=float)
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("scores must not be NaN; give unscored users -inf")
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    equal = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (pos.size * neg.size))


def top_k(score: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of the ``k`` highest scores, equal scores at the cut broken at random."""
    order = np.lexsort((rng.random(score.size), -score))
    keep = np.zeros(score.size, dtype=bool)
    keep[order[:k]] = True
    return keep


def precision_recall(keep: np.ndarray, is_real: np.ndarray) -> tuple[float, float]:
    """Of the kept users, the share real; of the real users, the share kept."""
    n_kept = int(keep.sum())
    hits = int((keep & is_real).sum())
    return (hits / n_kept if n_kept else float("nan"), hits / int(is_real.sum()))


# ---------------------------------------------------------------------------
# one run


def _scored(users: pd.Index, values: pd.Series) -> np.ndarray:
    """Scores in the order of ``users``; users without one get -inf."""
    out = values.reindex(users).to_numpy(dtype=float)
    return np.where(np.isnan(out), -np.inf, out)


def run_one(
    real: pd.DataFrame,
    case: str,
    seed: int,
    n_inject: int = N_INJECT,
    variants: list[str] | None = None,
) -> list[dict]:
    """Inject, score, fit and measure once; one dict per scorer.

    ``variants`` names the entries of :data:`VARIANTS` to fit (default all);
    the first of them sets the baselines' number of kept users.
    """
    variants = list(VARIANTS) if variants is None else variants
    rng = np.random.default_rng([seed, CASES.index(case)])
    careless = inject(real, case, n_inject, rng)
    votes = pd.concat([real.assign(kind="real"), careless], ignore_index=True)
    kind_of = votes.groupby("user_id", sort=False)["kind"].first()
    users = kind_of.index
    is_real = (kind_of == "real").to_numpy()
    columns = dict(user="user_id")

    scores: dict[str, np.ndarray] = {}
    kept: dict[str, np.ndarray] = {}
    fits: dict[str, dict] = {}
    data_cache: dict[tuple, VoteData] = {}
    with warnings.catch_warnings():
        # Fit warnings (an estimate on a bound, ...) are part of what is measured, not noise
        # for the table; the count of fits that warned goes to the csv.
        warnings.simplefilter("ignore")
        for name in variants:
            spec = dict(VARIANTS[name])
            data_kw = spec.pop("data", {})
            key = tuple(sorted(data_kw.items()))
            if key not in data_cache:
                data_cache[key] = VoteData.from_frame(votes, **columns, **data_kw)
            data = data_cache[key]
            start = time.perf_counter()
            tree = fit(data, method="em", seed=seed, **spec)
            seconds = time.perf_counter() - start
            attn = tree["attentiveness"].to_dataset()
            at = pd.Index(attn["user"].to_numpy())
            scores[f"{name}: eta_mean"] = _scored(users, pd.Series(attn["eta_mean"].values, at))
            scores[f"{name}: p_above"] = _scored(users, pd.Series(attn["p_above"].values, at))
            # A fit that did not converge is filtered anyway (force) and counted in the
            # csv's ``converged`` column: the benchmark measures what the defaults give.
            converged = bool(tree.attrs.get("converged", 1))
            keep = users.isin(filter_users(tree, data, force=not converged).kept_users)
            kept[f"{name}: eta_mean"] = kept[f"{name}: p_above"] = keep
            said = json.loads(tree.attrs.get("fit_warnings", "[]"))
            fits[name] = dict(
                seconds=seconds, warned=bool(said), fit_warnings=" | ".join(said),
                converged=converged,
            )  # fmt: skip
    first = variants[0]
    k = int(kept[f"{first}: eta_mean"].sum())
    plain = VoteData.from_frame(votes, **columns)
    baselines = {
        "agreement score": _scored(users, agreement_score(plain)),
        "agreement score (in-sample)": _scored(users, agreement_score(plain, leave_one_out=False)),
        "tie rate": _scored(users, -tie_rate(votes, **columns)["tie_rate"]),
    }
    for name, score in baselines.items():
        scores[name] = score
        kept[name] = top_k(score, k, rng)

    rows = []
    for name, score in scores.items():
        prec, rec = precision_recall(kept[name], is_real)
        variant = name.split(": ")[0]
        rows.append(
            dict(
                case=case,
                seed=seed,
                scorer=name,
                auc=auc(score[is_real], score[~is_real]),
                precision=prec,
                recall=rec,
                n_kept=int(kept[name].sum()),
                n_unscored=int(np.isneginf(score).sum()),
                **fits.get(variant, {}),
            )
        )
    return rows


# ---------------------------------------------------------------------------
# report


def _band(x: pd.Series) -> str:
    q10, q50, q90 = np.percentile(x, [10, 50, 90])
    return f"{q50:.3f} [{q10:.3f}, {q90:.3f}]"


def table(results: pd.DataFrame) -> str:
    """AUC, precision and recall per case and scorer: median [p10, p90]."""
    lines = []
    head = f"{'case':<5} {'scorer':<58} {'AUC':<22} {'precision':<22} {'recall':<22} kept  runs"
    lines += [head, "-" * len(head)]
    for case in CASES:
        sub = results[results["case"] == case]
        if sub.empty:
            continue
        for scorer, g in sub.groupby("scorer", sort=False):
            lines.append(
                f"{case:<5} {scorer:<58} {_band(g['auc']):<22} {_band(g['precision']):<22} "
                f"{_band(g['recall']):<22} {np.median(g['n_kept']):<5g} {len(g)}"
            )
    return "\n".join(lines)


#: The baselines attnmodel must match: the better of them (by median AUC) per case.
BASELINES = ("agreement score", "tie rate")


def paired(results: pd.DataFrame) -> str:
    """Per seed, each attnmodel scorer's AUC minus the better baseline's, per case.

    The better baseline is the one of :data:`BASELINES` with the higher median
    AUC in the case; the same seed means the same injected users, so the
    difference is paired.
    """
    lines = []
    head = f"{'case':<5} {'scorer':<58} {'better baseline':<16} {'AUC difference':<24} seeds >= 0"
    lines += [head, "-" * len(head)]
    for case, scorer, best, _, diff in _differences(results):
        q10, q50, q90 = np.percentile(diff, [10, 50, 90])
        lines.append(
            f"{case:<5} {scorer:<58} {best:<16} {q50:+.3f} [{q10:+.3f}, {q90:+.3f}]"
            f"{'':<3} {int((diff >= 0).sum())} of {len(diff)}"
        )
    return "\n".join(lines)


def _differences(results: pd.DataFrame):
    """``(case, scorer, best, auc_by, diff)`` per case and attnmodel scorer.

    ``best`` is the better baseline of the case, ``auc_by`` the AUC per seed
    (rows) and scorer (columns), ``diff`` the scorer's AUC minus ``best``'s on
    the seeds both were run on (a variant run on fewer seeds leaves the others out).
    """
    for case in CASES:
        sub = results[results["case"] == case]
        if sub.empty:
            continue
        auc_by = sub.pivot(index="seed", columns="scorer", values="auc")
        best = max(BASELINES, key=lambda b: auc_by[b].median())
        for scorer in auc_by.columns:
            if scorer.startswith("attnmodel"):
                yield case, scorer, best, auc_by, (auc_by[scorer] - auc_by[best]).dropna()


def criterion(results: pd.DataFrame) -> str:
    """Issue 12's target per case and attnmodel scorer: PASS or MISS.

    Level with the better baseline (:func:`paired`) on every single kind: the
    median paired AUC difference is >= 0. Ahead of both on the mix: the
    median difference is > 0 and the 10th percentile >= 0 (ahead or level in
    nine seeds of ten).
    """
    lines = []
    head = (
        f"{'case':<5} {'scorer':<58} {'target':<8} {'AUC':<22} "
        f"{'better baseline':<16} {'AUC':<22} {'difference':<24} result"
    )
    lines += [head, "-" * len(head)]
    for case, scorer, best, auc_by, diff in _differences(results):
        q10, q50, q90 = np.percentile(diff, [10, 50, 90])
        if case == "mix":
            target, ok = "ahead", q50 > 0 and q10 >= 0
        else:
            target, ok = "level", q50 >= 0
        lines.append(
            f"{case:<5} {scorer:<58} {target:<8} {_band(auc_by[scorer].dropna()):<22} "
            f"{best:<16} {_band(auc_by[best][diff.index]):<22} "
            f"{q50:+.3f} [{q10:+.3f}, {q90:+.3f}]{'':<3} {'PASS' if ok else 'MISS'}"
        )
    return "\n".join(lines)


def figure(results: pd.DataFrame, path: Path, lo: float = 0.85) -> None:
    """AUC and precision of every run, one panel per case, median marked.

    The axes start at ``lo``, where the scorers differ; a run below it is drawn at
    the edge as ``<`` and the scorer's median is written beside it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scorers = list(dict.fromkeys(results["scorer"]))
    cases = [c for c in CASES if c in set(results["case"])]
    fig, axes = plt.subplots(
        2,
        len(cases),
        figsize=(3.0 * len(cases) + 3.5, 1.2 + 0.45 * len(scorers) * 2),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    y = np.arange(len(scorers))[::-1]
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, results["seed"].nunique())
    for col, case in enumerate(cases):
        sub = results[results["case"] == case]
        for row, metric in enumerate(("auc", "precision")):
            ax = axes[row, col]
            for i, (yi, scorer) in enumerate(zip(y, scorers, strict=True)):
                vals = sub.loc[sub["scorer"] == scorer, metric].to_numpy()
                below = vals < lo
                color = f"C{i}"
                ax.plot(
                    vals[~below],
                    yi + jitter[: vals.size][~below],
                    "o",
                    ms=3,
                    alpha=0.45,
                    color=color,
                )
                if below.any():
                    ax.plot(
                        np.full(below.sum(), lo),
                        yi + jitter[: vals.size][below],
                        "<",
                        ms=5,
                        alpha=0.6,
                        color=color,
                    )
                med = float(np.median(vals))
                if med >= lo:
                    ax.plot(med, yi, "|", ms=16, mew=2.5, color="black")
                else:
                    ax.annotate(
                        f"median {med:.3f}",
                        (lo, yi),
                        xytext=(10, -3),
                        textcoords="offset points",
                        fontsize=7,
                    )
            ax.set_xlim(lo - 0.005, 1.005)
            ax.set_title(
                f"{case}: {'AUC' if metric == 'auc' else 'precision (real kept)'}", fontsize=9
            )
            ax.grid(axis="x", alpha=0.3)
    for row in range(2):
        axes[row, 0].set_yticks(y, scorers, fontsize=8)
    fig.suptitle(
        f"Careless users injected into MT-Bench human judgments ({results['seed'].nunique()} "
        "seeds; bar: median)",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    tmp.replace(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=Path, default=MTBENCH, help="the MT-Bench vote file")
    parser.add_argument("--seeds", type=int, default=20, help="runs per case (default 20)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds run are first-seed, first-seed + 1, ... (to split a run over processes)",
    )
    parser.add_argument("--inject", type=int, default=N_INJECT, help="careless users per run")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--figure", type=Path, default=CACHE / "careless_users.png")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        metavar="NAME",
        help="attnmodel variants to fit (names of VARIANTS; default all)",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        nargs="+",
        default=[CACHE / "careless_users.csv"],
        help="where the per-run rows go; with --from-csv, one or more files to read",
    )
    parser.add_argument(
        "--from-csv",
        action="store_true",
        help="print the table and draw the figure from the per-run rows of --csv, no runs",
    )
    args = parser.parse_args(argv)

    print(banner("careless_users"))
    if args.from_csv:
        # Files of runs of different variants repeat the baselines of their common seeds.
        results = pd.concat([pd.read_csv(p) for p in args.csv], ignore_index=True)
        results = results.drop_duplicates(["case", "seed", "scorer"], ignore_index=True)
        print(f"per-run rows read from {', '.join(map(str, args.csv))}")
    else:
        real = pd.read_csv(args.votes)
        n_real = real["user_id"].nunique()
        print(
            f"real: {len(real)} votes of {n_real} users "
            f"({int((real['winner'] == 'tie').sum())} ties); injected per run: {args.inject} "
            f"users ({args.inject / (n_real + args.inject):.0%} of {n_real + args.inject}); "
            f"{args.seeds} seeds per case"
        )
        if len(args.csv) != 1:
            parser.error("--csv takes one file when running")
        out = args.csv[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        start = time.perf_counter()
        rows = []
        # Seeds in the outer loop, the csv rewritten after each: a stopped run keeps the
        # seeds it finished for every case.
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for case in args.cases:
                rows += run_one(real, case, seed, args.inject, args.variants)
            pd.DataFrame(rows).to_csv(tmp, index=False)
            tmp.replace(out)
        results = pd.DataFrame(rows)
        elapsed = time.perf_counter() - start
    figure(results, args.figure)
    print()
    print(
        "AUC (real vs injected), precision and recall of keeping real users: "
        "median [10th, 90th percentile] over seeds"
    )
    print(table(results))
    print()
    print("Paired by seed: attnmodel's AUC minus the better baseline's, median [10th, 90th]")
    print(paired(results))
    print()
    print(
        "Issue 12's target: level with the better baseline on each kind (median paired "
        "difference >= 0), ahead on the mix (median > 0, 10th percentile >= 0)"
    )
    print(criterion(results))
    print()
    unscored = results[results["scorer"] == "agreement score"].groupby("case")["n_unscored"]
    print(
        "users without a non-tie vote (unscored but by the tie rate), median per run: "
        + ", ".join(f"{c} {v:g}" for c, v in unscored.median().items())
    )
    fitted = results[results["scorer"].str.endswith(": eta_mean")]
    for scorer, g in fitted.groupby("scorer", sort=False):
        # One count per kind of warning: the sentence up to its colon, without the value.
        said = (
            g["fit_warnings"]
            .dropna()
            .str.split(" | ", regex=False)
            .explode()
            .str.split(":")
            .str[0]
            .str.replace(r" = \S+ is", " is", regex=True)
            .value_counts()
        )
        print(
            f"{scorer.removesuffix(': eta_mean')}: median fit {g['seconds'].median():.2f} s; "
            f"{int(g['warned'].astype(bool).sum())} of {len(g)} fits warned"
            + (
                f"; {int((~g['converged'].astype(bool)).sum())} did not converge"
                if "converged" in g and g["converged"].notna().all()
                else ""
            )
            + "".join(f"; {n}x '{w}'" for w, n in said.items())
        )
    if not args.from_csv:
        print(f"total {elapsed:.0f} s; per-run rows: {out}; figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
