"""The parser of the ``attnmodel`` command line: subcommands and their option groups.

Building it imports nothing but :mod:`argparse`, so that ``attnmodel --help``
and usage errors answer at once; the subcommands' work, and the libraries it
needs, are loaded by :mod:`attnmodel.cli.commands` and :mod:`attnmodel.cli.demo`
only when a subcommand runs. The chosen subcommand is ``args.command``.
"""

from __future__ import annotations

import argparse

__all__ = ["PROG", "COMPARE_FILES", "build_parser"]

PROG = "attnmodel"

#: Files ``attnmodel compare`` writes to its folder.
COMPARE_FILES = ("comparison.txt", "em_vs_nuts.png", "params.csv", "users.csv")


# ---------------------------------------------------------------------------
# option groups


def _add_vote_columns(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "columns of VOTES",
        "Raw layout: user, model_a, model_b, winner ('model_a', 'model_b' or 'tie'). "
        "Oriented layout: user, z (1 = the pair's stronger model won) and optionally pair. "
        "The layout is raw when the winner column exists.",
    )
    g.add_argument("--layout", choices=("raw", "oriented"), default=None, help="table layout")
    g.add_argument("--user-col", metavar="COL", help="column of user ids (default user)")
    g.add_argument(
        "--pair-col",
        metavar="COL",
        help="oriented layout: column of pair labels (default pair, when it exists)",
    )
    g.add_argument("--z-col", metavar="COL", help="oriented layout: 0/1 label column (default z)")
    g.add_argument("--model-a-col", metavar="COL", help="raw layout: first model shown")
    g.add_argument("--model-b-col", metavar="COL", help="raw layout: second model shown")
    g.add_argument("--winner-col", metavar="COL", help="raw layout: winner column")
    g.add_argument(
        "--stronger",
        metavar="'X vs Y'",
        action="append",
        help="raw layout: model X is the stronger one of its pair with Y (repeatable); "
        "other pairs are oriented by win rate",
    )
    g.add_argument(
        "--ties",
        choices=("drop", "error", "model"),
        default=None,
        help="drop tie votes (default), treat them as an error, or model them as evidence "
        "(a tie propensity per user, careless votes tying extra; MAP-EM or NUTS with a continuous "
        "family)",
    )


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "reading VOTES",
        "DuckDB counts the votes out of core, so a log larger than memory can be read; "
        "pandas holds the whole table; Dask counts on a cluster.",
    )
    g.add_argument(
        "--engine",
        choices=("auto", "duckdb", "pandas", "dask"),
        default="auto",
        help="default auto: pandas for one file under 8 MB, else duckdb (dask with --scheduler)",
    )
    g.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786)"
    )
    g.add_argument("--memory-limit", metavar="SIZE", help="DuckDB memory limit (default 1GB)")
    g.add_argument("--temp-dir", metavar="DIR", help="where DuckDB spills beyond its memory limit")


def _add_mu_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "win rate mu of each pair",
        "Default: unknown with the prior 2 mu - 1 ~ Beta(2, 2).",
    ).add_mutually_exclusive_group()
    g.add_argument("--mu", type=float, metavar="X", help="known mu, the same for every pair")
    g.add_argument(
        "--mu-prior",
        metavar="A,B[,LO,HI]",
        help="prior of every pair's mu: LO + (HI - LO) * Beta(A, B) truncated to mu > 1/2 "
        "(the paper: 8,2)",
    )
    g.add_argument(
        "--mu-file",
        metavar="PAIRS.csv",
        help="per-pair mu: columns pair, mu and optionally prior_alpha, prior_beta "
        "(a row with mu empty gets that prior; pairs not listed get the default prior)",
    )


def _add_mu_structure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mu-structure",
        choices=("auto", "independent", "pooled", "bradley_terry"),
        default="auto",
        help="structure on mu across pairs: independent (each its own prior), pooled (one "
        "population of pairs), bradley_terry (one strength per model; see 'attnmodel "
        "leaderboard'). Default auto: pooled for 3 or more pairs with a median under 100 "
        "votes each, else independent; the choice is printed",
    )


def _add_leaderboard(sub, quiet) -> None:
    p = sub.add_parser(
        "leaderboard",
        parents=quiet,
        help="model strengths of a Bradley-Terry fit beside plain Bradley-Terry",
        description="Print the models ranked by their strength theta with intervals, from a "
        "result fitted with --mu-structure bradley_terry, beside plain Bradley-Terry with "
        "every vote weighted equally (fitted on the vote totals the result stores).",
    )
    p.add_argument("result", metavar="RESULT")
    p.add_argument("--plot", metavar="FILE", help="also draw the leaderboard (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_force(p)


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace output files that exist")


# ---------------------------------------------------------------------------
# the parser


def _quiet_parent() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand without --quiet must not reset a --quiet given before it.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress output",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``attnmodel`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Infer how attentive each user of a comparison mode is from their votes, "
        "and keep the votes of the attentive ones.",
        epilog="Run 'attnmodel COMMAND --help' for the options of a command.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = [_quiet_parent()]

    p = sub.add_parser(
        "demo",
        parents=quiet,
        help="simulate a vote log, fit EM and NUTS, filter, export, plot",
        description="Simulate a vote log like the paper's synthetic setting (Beta(3, 5) "
        "attentiveness, 50..100 votes per user), fit MAP-EM (mu known, and under a "
        "Beta(8, 2) prior) and NUTS, filter, export DPO pairs, and write the summary, "
        "results, tables and plots to DIR.",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="demo-output",
        help="output folder (default demo-output), the demo's own: an earlier demo run there "
        "is replaced when the new one is complete; a folder with other files is refused",
    )
    p.add_argument("--users", type=int, default=400, help="simulated users (default 400)")
    p.add_argument(
        "--mu", type=float, default=0.8, help="win rate of the stronger model (default 0.8)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-nuts", action="store_true", help="skip the NUTS fit")
    p.add_argument("--draws", type=int, default=500, help="NUTS draws per chain (default 500)")
    p.add_argument("--tune", type=int, default=500, help="NUTS tuning steps (default 500)")
    p.add_argument("--chains", type=int, default=2, help="NUTS chains (default 2)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write the demo's files into a folder that holds other files too (those stay)",
    )

    p = sub.add_parser(
        "fit",
        parents=quiet,
        help="fit P_eta (and mu) to a vote log and save the result",
        description="Fit the attentiveness distribution P_eta and each pair's mu to VOTES "
        "(CSV, Parquet or JSONL) by MAP-EM or NUTS, and save the result (.nc or .zarr).",
    )
    p.add_argument(
        "votes",
        metavar="VOTES",
        help="vote log (.csv, .parquet, .jsonl), a quoted glob of them "
        "('logs/date=*/part-*.parquet') or a folder",
    )
    p.add_argument(
        "--family",
        required=True,
        metavar="F",
        help="two_point, k_point, beta, beta_mixture or logistic_normal_mixture",
    )
    p.add_argument(
        "--components",
        type=int,
        metavar="K",
        help="components of k_point and the mixtures (default 3 and 2)",
    )
    p.add_argument("--method", choices=("em", "nuts"), default="em", help="default em")
    p.add_argument(
        "--eta-star",
        type=float,
        default=0.5,
        metavar="E",
        help="attentiveness cut of p_above = P(eta >= E) (default 0.5)",
    )
    p.add_argument(
        "--hdi-prob",
        type=float,
        default=0.94,
        metavar="P",
        help="mass of the per-user intervals (default 0.94)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g = p.add_argument_group("NUTS")
    g.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    g.add_argument(
        "--tune",
        type=int,
        default=None,
        help="tuning steps (default 500 when the chains start at the MAP-EM mode, else 1000)",
    )
    g.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    _add_mu_options(p)
    _add_mu_structure(p)
    _add_vote_columns(p)
    _add_engine_options(p)
    p.add_argument("--out", required=True, metavar="RESULT", help="result file (.nc or .zarr)")
    _add_force(p)

    p = sub.add_parser(
        "summary",
        parents=quiet,
        help="print a fitted result's parameters and diagnostics",
        description="Print the family, method, global parameters (NUTS: posterior means and "
        "HDI), mu per pair, convergence or diagnostics, and the number of users.",
    )
    p.add_argument("result", metavar="RESULT", help="result of 'attnmodel fit'")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser(
        "users",
        parents=quiet,
        help="write one row per user: attentiveness and P(eta >= E)",
        description="Write the per-user table: user, eta_mean, eta_sd, the HDI, p_above "
        "= P(eta >= eta_star | votes) and its Monte Carlo error, n_votes.",
    )
    p.add_argument("result", metavar="RESULT", help="result of 'attnmodel fit'")
    p.add_argument(
        "--eta-star",
        type=float,
        metavar="E",
        help="cut of p_above (default: the one the result was fitted with)",
    )
    p.add_argument("--out", required=True, metavar="USERS", help=".csv, .parquet or .jsonl")
    _add_force(p)

    p = sub.add_parser(
        "filter",
        parents=quiet,
        help="keep the votes of attentive users",
        description="Apply a filtering rule to a fitted RESULT and write the kept rows of "
        "VOTES with every input column. VOTES is read with the column options the result "
        "was fitted with, unless given again.",
    )
    p.add_argument("result", metavar="RESULT", help="result of 'attnmodel fit'")
    p.add_argument("votes", metavar="VOTES", help="the vote log the result was fitted to")
    p.add_argument(
        "--rule",
        choices=("prob", "top", "map", "quantile"),
        help="prob: P(eta >= E) >= PROB (default); top: top fraction by posterior "
        "mean; map: posterior mode >= threshold; quantile: at or above a quantile "
        "of the fitted P_eta. Default: the rule whose option is given (--top selects "
        "top), else prob; an option of another rule is refused",
    )
    p.add_argument(
        "--eta-star",
        type=float,
        metavar="E",
        help="rule prob: the cut E (default: the one RESULT was fitted at, where P(eta >= E) "
        "is exact for MAP-EM). Another cut is estimated from RESULT's stored eta draws, with "
        "Monte Carlo error: users within two standard errors are undetermined. The Python "
        "API's filter_users(fit, eta_star=E) given the EMResult itself is exact at any cut, "
        "and so is 'fit --eta-star E' here; given the saved result, it decides as this does",
    )
    p.add_argument("--prob", type=float, help="rule prob (default 0.95)")
    p.add_argument(
        "--min-evidence",
        type=float,
        metavar="NATS",
        help="rule prob: keep (drop) a user only when its own votes favour that side of E "
        "by a log Bayes factor of at least NATS; the others have too little evidence "
        "(default 1; 0 turns this off)",
    )
    p.add_argument("--top", type=float, metavar="FRACTION", help="rule top")
    p.add_argument("--threshold", type=float, metavar="ETA", help="rule map")
    p.add_argument("--quantile", type=float, metavar="LEVEL", help="rule quantile")
    p.add_argument(
        "--ignore-diagnostics",
        action="store_true",
        help="filter even if EM did not converge or NUTS diagnostics fail",
    )
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="filter VOTES even if they are not the votes RESULT was fitted to",
    )
    p.add_argument(
        "--decisions-out",
        metavar="FILE",
        help="also write each user's decision (kept, dropped, undetermined, too_little_evidence)",
    )
    _add_vote_columns(p)
    p.add_argument("--out", required=True, metavar="KEPT", help=".csv, .parquet or .jsonl")
    _add_force(p)

    p = sub.add_parser(
        "export",
        parents=quiet,
        help="turn kept votes into DPO preference pairs",
        description="Write TRL's DPO columns prompt, chosen, rejected (the chosen side "
        "follows the vote), as strings or, with --conversational, as lists of "
        "{role, content} messages.",
    )
    p.add_argument("kept", metavar="KEPT", help="kept votes (.csv, .parquet, .jsonl)")
    p.add_argument("--to", choices=("dpo",), default="dpo", help="output layout (dpo)")
    p.add_argument("--conversational", action="store_true", help="message lists, not strings")
    p.add_argument("--prompt-col", default="prompt", metavar="COL", help="default prompt")
    p.add_argument(
        "--response-a-col",
        default="response_a",
        metavar="COL",
        help="answer of model_a (default response_a)",
    )
    p.add_argument(
        "--response-b-col",
        default="response_b",
        metavar="COL",
        help="answer of model_b (default response_b)",
    )
    p.add_argument(
        "--winner-col",
        default="winner",
        metavar="COL",
        help="'model_a' or 'model_b' per row (default winner)",
    )
    p.add_argument(
        "--z-col",
        metavar="COL",
        help="use a 0/1 column instead of the winner (1: response A preferred)",
    )
    p.add_argument(
        "--keep", action="append", metavar="COL", help="carry this column along (repeatable)"
    )
    p.add_argument("--out", required=True, metavar="FILE", help=".jsonl or .parquet")
    _add_force(p)

    p = sub.add_parser(
        "simulate",
        parents=quiet,
        help="simulate a vote log with known attentiveness",
        description="Draw users' attentiveness from a family and their votes from the model.",
    )
    p.add_argument("--family", required=True, metavar="F", help="family of P_eta")
    p.add_argument(
        "--params",
        required=True,
        nargs="+",
        metavar="NAME=VALUE",
        help="parameters, e.g. alpha=3 beta=5, or weights=0.6,0.4 locations=0.4,0.98",
    )
    p.add_argument("--users", type=int, required=True, metavar="M", help="number of users")
    p.add_argument(
        "--votes",
        required=True,
        metavar="N|LO..HI",
        help="votes per user: a number or a range drawn uniformly",
    )
    p.add_argument(
        "--mu",
        nargs="+",
        default=["0.8"],
        metavar="MU",
        help="win rate of the stronger model (default 0.8), or several pairs as "
        "'X vs Y=0.9' 'Z vs W=0.7' (X, Z stronger)",
    )
    p.add_argument(
        "--layout",
        choices=("oriented", "raw"),
        default="raw",
        help="raw: model_a, model_b, winner (default); oriented: pair, z",
    )
    p.add_argument(
        "--reward-scores",
        action="store_true",
        help="add reward scores; attentive votes pick the higher score",
    )
    p.add_argument(
        "--texts", action="store_true", help="add synthetic prompt, response_a, response_b columns"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--truth-out", metavar="FILE", help="also write each user's true eta")
    p.add_argument("--out", required=True, metavar="VOTES", help=".csv, .parquet or .jsonl")
    _add_force(p)

    p = sub.add_parser(
        "compare",
        parents=quiet,
        help="EM against NUTS: figures and tables",
        description="Compare an EM fit with a NUTS fit of the same votes: global parameters "
        "(EM estimate against NUTS mean and HDI), per-user P(eta >= eta_star), filter "
        "decisions. Writes " + ", ".join(COMPARE_FILES) + " to DIR.",
    )
    p.add_argument("em_result", metavar="EM_RESULT")
    p.add_argument("nuts_result", metavar="NUTS_RESULT")
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="compare even if the two results were fitted to different votes",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_force(p)
    _add_leaderboard(sub, quiet)
    return parser


def _version() -> str:
    from attnmodel import __version__

    return __version__
