"""The ``attnmodel`` command line.

Subcommands follow the pipeline: ``simulate`` (or your own log) -> ``fit`` ->
``summary`` / ``users`` -> ``filter`` -> ``export``, with ``compare`` for an
EM fit against a NUTS fit and ``demo`` running all of it on simulated votes.

Errors a user can fix (a missing file, a bad column or value, an unknown
family, a file that is not an attnmodel result, an output that exists) print
one line ``attnmodel: error: ...`` naming the culprit and exit with status 1;
malformed command lines exit with status 2 (argparse). Anything else is a bug
and keeps its traceback. Progress goes to stderr and ``--quiet`` silences it;
results go to stdout. Outputs are written atomically (a temporary file beside
the target, renamed into place when complete) and never replace an existing
file without ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from attnmodel.data.votes import _FILE_KINDS
from attnmodel.errors import AttnmodelError, CommandError, VoteDataError

__all__ = ["main", "build_parser", "CommandError", "Progress"]

PROG = "attnmodel"

#: Table files by suffix: the formats votes are read from, and tables are written to.
_TABLE_SUFFIXES = _FILE_KINDS
_RESULT_SUFFIXES = (".nc", ".zarr")


# ---------------------------------------------------------------------------
# progress on stderr


class Progress:
    """Progress lines on stderr (``"reading votes.csv... done in 2.1 s"``).

    Parameters
    ----------
    quiet : bool
        Print nothing.
    stream : text stream, optional
        Where to write (default ``sys.stderr``).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream

    @property
    def enabled(self) -> bool:
        """Whether anything is printed."""
        return not self.quiet

    def note(self, message: str) -> None:
        """Print one line."""
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, what: str, *, live: bool = False) -> Iterator[dict[str, str]]:
        """Announce ``what``, then report how long it took.

        Parameters
        ----------
        what : str
            What is being done ("reading votes.csv").
        live : bool
            On a terminal, count the seconds while the step runs.

        Yields
        ------
        dict
            Set ``"detail"`` to add a few words after the time.
        """
        info: dict[str, str] = {}
        if self.quiet:
            yield info
            return
        t0 = time.perf_counter()
        self.stream.write(f"{what}...")
        self.stream.flush()
        stop = threading.Event()
        ticker = None
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if live and tty:

            def tick() -> None:
                while not stop.wait(0.5):
                    self.stream.write(f"\r{what}... {time.perf_counter() - t0:.0f} s")
                    self.stream.flush()

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            yield info
        except BaseException:
            stop.set()
            if ticker is not None:
                ticker.join()
            self.stream.write(" failed\n")
            self.stream.flush()
            raise
        stop.set()
        if ticker is not None:
            ticker.join()
            self.stream.write(f"\r{what}...")
        seconds = time.perf_counter() - t0
        detail = f" ({info['detail']})" if info.get("detail") else ""
        self.stream.write(f" done in {seconds:.1f} s{detail}\n")
        self.stream.flush()


# ---------------------------------------------------------------------------
# files


def _kind(path: Path, kinds: dict[str, str], what: str) -> str:
    name = path.name.lower()
    for suffix, kind in kinds.items():
        if name.endswith(suffix):
            return kind
    raise CommandError(
        f"{str(path)!r}: unknown {what} file type; expected a name ending in "
        + ", ".join(sorted(kinds))
    )


def _check_output(path: str | Path, force: bool) -> Path:
    """Refuse an existing output before any work is done, unless forced."""
    p = Path(path)
    if p.exists() and not force:
        raise CommandError(f"{str(p)!r} exists; pass --force to replace it")
    if p.exists() and p.is_dir() and p.suffix.lower() != ".zarr":
        raise CommandError(f"{str(p)!r} is a directory, not a file")
    return p


def read_table(path: str | Path, progress: Progress, *, what: str = "table") -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL table, reporting missing or unreadable files.

    Parameters
    ----------
    path : path-like
        ``.csv``/``.csv.gz``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson``
        (optionally ``.gz``).
    progress : Progress
    what : str
        What the table is, for messages.

    Returns
    -------
    pandas.DataFrame
    """
    p = Path(path)
    kind = _kind(p, _TABLE_SUFFIXES, what)
    if not p.is_file():
        raise CommandError(f"{str(p)!r}: no such file")
    with progress.step(f"reading {p}") as info:
        try:
            if kind == "csv":
                df = pd.read_csv(p)
            elif kind == "parquet":
                df = pd.read_parquet(p)
            else:
                df = pd.read_json(p, lines=True, dtype=False)
        except (OSError, ValueError) as e:
            raise CommandError(f"{str(p)!r}: could not be read as {kind}: {e}") from e
        info["detail"] = f"{len(df)} rows"
    return df


def write_table(
    frame: pd.DataFrame, path: str | Path, progress: Progress, *, force: bool = False
) -> Path:
    """Write a table to CSV, Parquet or JSONL (by suffix), atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        Written without its index.
    path : path-like
    progress : Progress
    force : bool
        Replace an existing file.

    Returns
    -------
    Path
    """
    p = Path(path)
    kind = _kind(p, _TABLE_SUFFIXES, "table")
    compression = "gzip" if p.name.lower().endswith(".gz") else None

    def write(tmp: Path) -> None:
        if kind == "csv":
            frame.to_csv(tmp, index=False, compression=compression)
        elif kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(
                tmp, orient="records", lines=True, force_ascii=False, compression=compression
            )

    with progress.step(f"writing {p}") as info:
        _atomic(p, write, force)
        info["detail"] = f"{len(frame)} rows"
    return p


def _atomic(path: Path, write: Callable[[Path], None], force: bool) -> Path:
    """:func:`attnmodel.export.atomic_write`, with an existing target as a user error."""
    from attnmodel.export import atomic_write

    try:
        return atomic_write(path, write, force=force)
    except FileExistsError as e:
        raise CommandError(f"{str(path)!r} exists; pass --force to replace it") from e


def write_text(text: str, path: str | Path, *, force: bool = False) -> Path:
    """Write a text file atomically."""
    p = Path(path)
    _atomic(p, lambda tmp: tmp.write_text(text, encoding="utf-8"), force)
    return p


def write_figure(fig, path: str | Path, *, force: bool = False) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    p = Path(path)
    fmt = p.suffix.lstrip(".").lower() or "png"
    try:
        _atomic(p, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120), force)
    finally:
        plt.close(fig)
    return p


def _peek_columns(path: Path) -> list[str] | None:
    """Column names of a table without reading it (None when that is not cheap or fails)."""
    try:
        kind = _kind(path, _TABLE_SUFFIXES, "votes")
        if kind == "csv":
            return list(pd.read_csv(path, nrows=0).columns)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(pd.read_json(path, lines=True, nrows=1, dtype=False).columns)
    except (CommandError, OSError, ValueError, ImportError):
        return None


# ---------------------------------------------------------------------------
# votes in: column options

#: Command-line destination -> VoteData.from_frame keyword.
_COLUMN_KEYWORDS = {
    "layout": "layout",
    "user_col": "user",
    "pair_col": "pair",
    "z_col": "z",
    "model_a_col": "model_a",
    "model_b_col": "model_b",
    "winner_col": "winner",
    "ties": "ties",
    "stronger": "stronger",
}


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
        choices=("drop", "error"),
        default=None,
        help="drop tie votes (default) or treat them as an error",
    )


def _stronger_mapping(items: Sequence[str]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for item in items:
        parts = item.split(" vs ")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise CommandError(f"--stronger {item!r}: expected 'X vs Y' with X the stronger model")
        x, y = parts[0].strip(), parts[1].strip()
        out[(x, y)] = x
    return out


def _vote_options(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> dict:
    """Keyword arguments of VoteData.from_frame: given options, else stored ones."""
    opts: dict[str, Any] = dict(stored or {})
    for dest, kw in _COLUMN_KEYWORDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            opts[kw] = value
    return opts


def read_votes(path: str | Path, options: dict[str, Any], progress: Progress):
    """Read and validate votes with column options; returns a VoteData."""
    from attnmodel.data.votes import VoteData

    p = Path(path)
    _kind(p, _TABLE_SUFFIXES, "votes")
    if not p.is_file():
        raise CommandError(f"{str(p)!r}: no such file")
    kwargs = dict(options)
    if "stronger" in kwargs:
        kwargs["stronger"] = _stronger_mapping(kwargs["stronger"])
    if "pair" not in kwargs and kwargs.get("layout") != "raw":
        # A 'pair' column in an oriented log is almost always meant as the pair.
        cols = _peek_columns(p)
        if cols is not None and "pair" in cols and kwargs.get("winner", "winner") not in cols:
            kwargs["pair"] = "pair"
    with progress.step(f"reading {p}", live=True) as info:
        try:
            data = VoteData.from_file(p, **kwargs)
        except ValueError as e:
            if isinstance(e, VoteDataError):
                raise
            raise CommandError(f"{str(p)!r}: {e}") from e
        info["detail"] = f"{data.n_votes} votes from {data.n_users} users on {data.n_pairs} pairs"
    return data


# ---------------------------------------------------------------------------
# mu options


def _float_list(text: str, option: str, count: tuple[int, ...]) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise CommandError(f"{option} {text!r}: expected comma-separated numbers") from None
    if len(values) not in count:
        want = " or ".join(str(c) for c in count)
        raise CommandError(f"{option} {text!r}: expected {want} comma-separated numbers")
    return values


def _beta_prior(values: Sequence[float], where: str):
    from attnmodel.model.priors import BetaPrior

    try:
        return BetaPrior(*values)
    except ValueError as e:
        raise CommandError(f"{where}: {e}") from None


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


def _mu_from_file(path: str, pairs: Sequence[str]) -> tuple[dict, dict]:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"--mu-file {str(p)!r}: no such file")
    try:
        df = pd.read_csv(p)
    except (OSError, ValueError) as e:
        raise CommandError(f"--mu-file {str(p)!r}: could not be read as CSV: {e}") from e
    for col in ("pair", "mu"):
        if col not in df.columns:
            raise CommandError(
                f"--mu-file {str(p)!r}: missing column {col!r}; available columns: "
                f"{list(df.columns)}"
            )
    has_prior = [c for c in ("prior_alpha", "prior_beta") if c in df.columns]
    if len(has_prior) == 1:
        raise CommandError(
            f"--mu-file {str(p)!r}: column {has_prior[0]!r} needs its partner "
            "(prior_alpha and prior_beta go together)"
        )
    known: dict[str, float] = {}
    priors: dict[str, Any] = {}
    pair_set = {str(x) for x in pairs}
    for row, rec in enumerate(df.to_dict("records")):
        where = f"--mu-file {str(p)!r}, row {row}"
        pair = rec["pair"]
        if pd.isna(pair) or str(pair).strip() == "":
            raise CommandError(f"{where}: pair is missing")
        pair = str(pair).strip()
        if pair not in pair_set:
            raise CommandError(
                f"{where}: pair {pair!r} does not occur in the votes; pairs are {sorted(pair_set)}"
            )
        if pair in known or pair in priors:
            raise CommandError(f"{where}: pair {pair!r} is listed twice")
        mu = _number(rec["mu"], f"{where}, column 'mu'")
        prior = [
            _number(rec[c], f"{where}, column {c!r}")
            for c in ("prior_alpha", "prior_beta")
            if c in rec
        ]
        given = [x for x in prior if not math.isnan(x)]
        if not math.isnan(mu):
            if given:
                raise CommandError(f"{where}: pair {pair!r} has both a known mu and a prior")
            if not 0.5 < mu <= 1.0:
                raise CommandError(
                    f"{where}, column 'mu': value {mu!r} for pair {pair!r} must lie in (1/2, 1]; "
                    "mu <= 1/2 means the models' labels are swapped or the models are "
                    "equally strong"
                )
            known[pair] = mu
        elif len(given) == 2:
            priors[pair] = _beta_prior(given, f"{where}, pair {pair!r}")
        elif given:
            raise CommandError(f"{where}: pair {pair!r} needs both prior_alpha and prior_beta")
    return known, priors


def _number(value: Any, where: str) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{where}: value {value!r} is not a number") from None


def mu_arguments(args: argparse.Namespace, pairs: Sequence[str]) -> dict[str, Any]:
    """``mu`` and ``mu_prior`` keyword arguments from ``--mu``/``--mu-prior``/``--mu-file``."""
    from attnmodel.model.priors import resolve_mu

    out: dict[str, Any] = {}
    if args.mu is not None:
        if not 0.5 < args.mu <= 1.0:
            raise CommandError(
                f"--mu {args.mu!r}: mu must lie in (1/2, 1]; mu <= 1/2 means the models' labels "
                "are swapped or the models are equally strong"
            )
        out["mu"] = float(args.mu)
    elif args.mu_prior is not None:
        values = _float_list(args.mu_prior, "--mu-prior", (2, 4))
        out["mu_prior"] = _beta_prior(values, f"--mu-prior {args.mu_prior!r}")
    elif args.mu_file is not None:
        known, priors = _mu_from_file(args.mu_file, pairs)
        if known:
            out["mu"] = known
        if priors:
            out["mu_prior"] = priors
    try:
        resolve_mu(list(pairs), out.get("mu"), out.get("mu_prior"))
    except ValueError as e:
        raise CommandError(str(e)) from None
    return out


# ---------------------------------------------------------------------------
# results


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace output files that exist")


def load_result(path: str | Path, progress: Progress):
    """Load an attnmodel result, turning a missing or foreign file into a one-line error."""
    from attnmodel.results.tree import load

    p = Path(path)
    if not p.exists():
        raise CommandError(f"{str(p)!r}: no such file")
    with progress.step(f"reading {p}"):
        try:
            return load(p)
        except (OSError, ValueError, KeyError) as e:
            msg = str(e)
            if str(p) not in msg:
                msg = f"{str(p)!r}: {msg}"
            raise CommandError(msg) from e


def _save_result(dt, path: Path, progress: Progress, force: bool) -> None:
    from attnmodel.results.tree import save

    with progress.step(f"writing {path}"):
        try:
            save(dt, path, force=force)
        except FileExistsError as e:
            raise CommandError(f"{str(path)!r} exists; pass --force to replace it") from e


def _get_family(name: str, n_components: int | None):
    from attnmodel.model.families import get_family

    try:
        return get_family(name, n_components)
    except ValueError as e:
        raise CommandError(str(e)) from None


def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return str(x)


def _family_order(family: str, params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Parameters in the family's own order (file formats may not keep it)."""
    from attnmodel.model.families import FAMILY_NAMES, get_family

    if family not in FAMILY_NAMES:
        return list(params.items())
    names = get_family(family).param_names
    rank = {name: k for k, name in enumerate(names)}
    return sorted(params.items(), key=lambda kv: rank.get(kv[0].split("[", 1)[0], len(rank)))


def format_summary(s: dict[str, Any], source: str | None = None) -> str:
    """Text form of :func:`attnmodel.results.tree.summarize`'s dictionary."""
    lines = []
    if source:
        lines.append(f"result: {source}")
    method = s.get("method")
    name = {"em": "MAP-EM", "nuts": "NUTS"}.get(method, str(method))
    lines.append(f"family: {s['family']}    method: {name}    users: {s['n_users']}")
    diag = s.get("diagnostics") or {}
    if method == "em":
        lines.append(
            f"converged: {s['converged']} after {diag.get('n_iter', '?')} iterations; "
            f"log posterior {_fmt(diag.get('objective', float('nan')))}"
        )
    else:
        lines.append(
            f"converged: {s['converged']} (r_hat <= 1.01, bulk and tail ESS >= 400, no divergences)"
        )
        labels = {
            "max_rhat": "max r_hat",
            "min_ess_bulk": "min bulk ESS",
            "min_ess_tail": "min tail ESS",
            "divergences": "divergences",
        }
        lines.append(
            "diagnostics: "
            + ", ".join(
                # r_hat to three decimals: 1.0004 must not read as "1".
                f"{labels.get(k, k)} {f'{float(v):.3f}' if k == 'max_rhat' else _fmt(v)}"
                for k, v in diag.items()
            )
        )
    hdi = s.get("params_hdi") or {}
    lines.append("parameters (posterior mean [HDI]):" if hdi else "parameters:")
    width = max((len(k) for k in s["params"]), default=0)
    for key, value in _family_order(s["family"], s["params"]):
        line = f"  {key:<{width}}  {_fmt(value)}"
        if key in hdi:
            lo, hi = hdi[key]
            line += f"  [{_fmt(lo)}, {_fmt(hi)}]"
        lines.append(line)
    lines.append("mu (pairs read 'stronger vs weaker'):")
    width = max((len(str(k)) for k in s["mu"]), default=0)
    for pair, value in s["mu"].items():
        lines.append(f"  {str(pair):<{width}}  {_fmt(value)}")
    return "\n".join(lines)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


# ---------------------------------------------------------------------------
# subcommands


def _cmd_fit(args: argparse.Namespace, progress: Progress) -> int:

    out = _check_output(args.out, args.force)
    if out.suffix.lower() not in _RESULT_SUFFIXES:
        raise CommandError(f"--out {str(out)!r}: a result is saved as .nc or .zarr")
    family = _get_family(args.family, args.components)
    _check_unit("--eta-star", args.eta_star, closed=True)
    _check_unit("--hdi-prob", args.hdi_prob)
    options = _vote_options(args)
    data = read_votes(args.votes, options, progress)
    mu_kw = mu_arguments(args, list(data.pairs))
    kwargs: dict[str, Any] = {"hdi_prob": args.hdi_prob}
    if args.method == "nuts":
        kwargs.update(draws=args.draws, tune=args.tune, chains=args.chains)
    what = f"fitting {family.name} by " + ("MAP-EM" if args.method == "em" else "NUTS")
    dt = _run_fit(
        data, family, args.method, mu_kw, args.eta_star, args.seed, kwargs, progress, what
    )
    dt.attrs["data_source"] = str(args.votes)
    dt.attrs["data_options"] = json.dumps(options)
    _save_result(dt, out, progress, args.force)
    from attnmodel.results.tree import summarize

    print(format_summary(summarize(dt), source=str(out)))
    return 0


@contextlib.contextmanager
def _quiet_pymc(quiet: bool) -> Iterator[None]:
    """While ``quiet``, let only warnings and errors of the ``pymc`` logger through.

    PyMC reports its progress ("Initializing NUTS...", "Sampling 4 chains ...
    took 3 seconds.") as INFO records of that logger. The previous level is
    restored afterwards.
    """
    if not quiet:
        yield
        return
    # Importing pymc sets its logger's level (to INFO when the root logger has no
    # handlers), which would undo a level set before the import.
    import pymc  # noqa: F401

    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_fit(data, family, method, mu_kw, eta_star, seed, kwargs, progress, what):
    """Fit with progress on stderr: a timed line for MAP-EM, PyMC's bar for NUTS."""
    from attnmodel.inference.fitting import fit

    def call():
        return fit(
            data,
            family,
            method=method,
            eta_star=eta_star,
            seed=seed,
            progressbar=progress.enabled,
            **mu_kw,
            **kwargs,
        )

    if method == "nuts":
        progress.note(f"{what}...")
        t0 = time.perf_counter()
        # PyMC draws its bar on stdout, which belongs to results.
        with contextlib.redirect_stdout(sys.stderr), _quiet_pymc(progress.quiet):
            dt = call()
        progress.note(f"{what}: done in {time.perf_counter() - t0:.1f} s")
        return dt
    with progress.step(what, live=True) as info:
        dt = call()
        info["detail"] = f"{int(dt.attrs.get('n_iter', 0))} iterations, " + (
            "converged" if int(dt.attrs.get("converged", 0)) else "NOT converged"
        )
    return dt


def _check_unit(option: str, value: float, *, closed: bool = False) -> None:
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise CommandError(f"{option} {value!r}: must lie in {interval}")


def _cmd_summary(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.results.tree import summarize

    dt = load_result(args.result, progress)
    s = summarize(dt)
    if args.json:
        print(json.dumps(_json_safe(s), indent=None))
    else:
        print(format_summary(s, source=str(args.result)))
    return 0


def _cmd_users(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.results.tree import user_table

    out = _check_output(args.out, args.force)
    _kind(out, _TABLE_SUFFIXES, "users")
    dt = load_result(args.result, progress)
    table = user_table(dt)
    fitted = float(dt.attrs["eta_star"])
    eta_star = fitted if args.eta_star is None else args.eta_star
    _check_unit("--eta-star", eta_star, closed=True)
    if eta_star != fitted:
        # The stored p_above is for the fitted cut; another cut is estimated from
        # the eta draws, with its Monte Carlo error.
        from attnmodel.filtering import _p_above_from_draws

        try:
            p, mcse, _ = _p_above_from_draws(dt, eta_star)
        except ValueError as e:
            raise CommandError(f"{str(args.result)!r}: {e}") from None
        order = pd.Index(p["user"].to_numpy()).get_indexer(table["user"])
        table["p_above"] = p.to_numpy()[order]
        table["p_above_mcse"] = mcse.to_numpy()[order]
    table.insert(table.columns.get_loc("p_above"), "eta_star", eta_star)
    write_table(table, out, progress, force=args.force)
    print(f"{len(table)} users written to {out} (p_above = P(eta >= {eta_star:g} | votes))")
    return 0


def _cmd_filter(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.filtering import NotConvergedError, filter_users

    out = _check_output(args.out, args.force)
    _kind(out, _TABLE_SUFFIXES, "kept votes")
    decisions_out = None
    if args.decisions_out is not None:
        decisions_out = _check_output(args.decisions_out, args.force)
        _kind(decisions_out, _TABLE_SUFFIXES, "decisions")
    dt = load_result(args.result, progress)
    stored = {}
    if "data_options" in dt.attrs:
        stored = json.loads(dt.attrs["data_options"])
    data = read_votes(args.votes, _vote_options(args, stored), progress)
    kw = _rule_arguments(args, float(dt.attrs["eta_star"]))
    try:
        res = filter_users(dt, data, rule=args.rule, force=args.ignore_diagnostics, **kw)
    except NotConvergedError as e:
        msg = str(e).replace("pass force=True", "pass --ignore-diagnostics")
        if "--ignore-diagnostics" not in msg:
            msg += " (--ignore-diagnostics filters anyway)"
        raise CommandError(f"{str(args.result)!r}: {msg}") from None
    except ValueError as e:
        raise CommandError(f"{str(args.result)!r} with {str(args.votes)!r}: {e}") from None
    print(res.summary())
    if res.diagnostics is not None and len(res.diagnostics):
        print("checks of the fit: " + _describe_checks(res.diagnostics))
    write_table(res.votes, out, progress, force=args.force)
    if decisions_out is not None:
        decision = np.where(res.keep.to_numpy(), "kept", "dropped").astype(object)
        if res.undetermined is not None:
            decision[res.undetermined.to_numpy()] = "undetermined"
        table = pd.DataFrame({"user": res.keep.index.to_numpy(), "decision": decision})
        write_table(table, decisions_out, progress, force=args.force)
    return 0


def _describe_checks(report: pd.DataFrame) -> str:
    """One line from the gate's report (index check; variable, value, threshold, passed)."""
    parts = []
    for check, row in report.iterrows():
        verdict = "passed" if bool(row["passed"]) else "FAILED"
        if check == "converged":
            parts.append(f"EM converged: {verdict}")
            continue
        op = "<=" if check in ("r_hat", "divergences") else ">="
        var = f" ({row['variable']})" if row.get("variable") else ""
        parts.append(f"{check}{var} {_fmt(row['value'])} {op} {_fmt(row['threshold'])}: {verdict}")
    return "; ".join(parts)


def _rule_arguments(args: argparse.Namespace, fitted_eta_star: float) -> dict[str, Any]:
    rule = args.rule
    kw: dict[str, Any] = {}
    if rule == "prob":
        kw["prob"] = args.prob
        # The result's own p_above is exact (EM) or has its MCSE; another cut is
        # recomputed from the eta draws.
        kw["eta_star"] = fitted_eta_star if args.eta_star is None else args.eta_star
        _check_unit("--eta-star", kw["eta_star"], closed=True)
        if not 0.0 < args.prob <= 1.0:
            raise CommandError(f"--prob {args.prob!r}: must lie in (0, 1]")
    elif rule == "top":
        if args.top is None:
            raise CommandError("--rule top needs --top FRACTION (for example 0.5)")
        if not 0.0 < args.top <= 1.0:
            raise CommandError(f"--top {args.top!r}: must lie in (0, 1]")
        kw["top"] = args.top
    elif rule == "map":
        if args.threshold is None:
            raise CommandError("--rule map needs --threshold ETA (for example 0.5)")
        _check_unit("--threshold", args.threshold, closed=True)
        kw["threshold"] = args.threshold
    else:
        if args.quantile is None:
            raise CommandError("--rule quantile needs --quantile LEVEL (for example 0.5)")
        _check_unit("--quantile", args.quantile)
        kw["quantile"] = args.quantile
    return kw


def _cmd_export(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.export import to_dpo, write_dpo

    out = _check_output(args.out, args.force)
    if out.suffix.lower() not in (".jsonl", ".parquet"):
        raise CommandError(f"--out {str(out)!r}: DPO rows are written as .jsonl or .parquet")
    votes = read_table(args.kept, progress, what="kept votes")
    try:
        pairs = to_dpo(
            votes,
            prompt=args.prompt_col,
            response_a=args.response_a_col,
            response_b=args.response_b_col,
            winner=args.winner_col,
            z=args.z_col,
            conversational=args.conversational,
            keep=args.keep or (),
        )
    except VoteDataError as e:
        raise CommandError(f"{str(args.kept)!r}: {e}") from None
    except ValueError as e:
        raise CommandError(str(e)) from None
    with progress.step(f"writing {out}") as info:
        try:
            write_dpo(pairs, out, force=args.force)
        except FileExistsError as e:
            raise CommandError(f"{str(out)!r} exists; pass --force to replace it") from e
        info["detail"] = f"{len(pairs)} pairs"
    layout = "conversational" if args.conversational else "standard"
    print(f"{len(pairs)} preference pairs ({layout} DPO layout) written to {out}")
    return 0


def _parse_params(items: Sequence[str], family: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(
                f"--params {item!r}: expected NAME=VALUE (vector values comma-separated, "
                "e.g. weights=0.6,0.4)"
            )
        try:
            values = [float(v) for v in value.split(",")]
        except ValueError:
            raise CommandError(f"--params {item!r}: {value!r} is not a number list") from None
        params[name.strip()] = values[0] if len(values) == 1 else np.array(values)
    return params


def _parse_votes_per_user(text: str) -> int | tuple[int, int]:
    lo, sep, hi = text.partition("..")
    try:
        if not sep:
            n = int(text)
            if n < 1:
                raise ValueError
            return n
        a, b = int(lo), int(hi)
        if not 1 <= a <= b:
            raise ValueError
        return a, b
    except ValueError:
        raise CommandError(
            f"--votes {text!r}: expected a count N >= 1 or a range LO..HI with 1 <= LO <= HI"
        ) from None


def _parse_sim_mu(items: Sequence[str]) -> float | dict[str, float]:
    if len(items) == 1 and "=" not in items[0]:
        try:
            return float(items[0])
        except ValueError:
            raise CommandError(f"--mu {items[0]!r} is not a number") from None
    out: dict[str, float] = {}
    for item in items:
        pair, sep, value = item.rpartition("=")
        if not sep or not pair.strip():
            raise CommandError(f"--mu {item!r}: expected 'X vs Y=VALUE' for several pairs")
        try:
            out[pair.strip()] = float(value)
        except ValueError:
            raise CommandError(f"--mu {item!r}: {value!r} is not a number") from None
    return out


def add_texts(votes: pd.DataFrame, seed: int | None, n_prompts: int = 200) -> pd.DataFrame:
    """Add synthetic ``prompt``, ``response_a``, ``response_b`` columns to simulated votes.

    ``response_a`` is the answer of the model shown first (``model_a`` in the
    raw layout, the pair's stronger model in the oriented one), so that the
    texts follow each vote into the DPO export.
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


def _cmd_simulate(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.model.simulate import simulate_votes

    out = _check_output(args.out, args.force)
    _kind(out, _TABLE_SUFFIXES, "votes")
    truth_out = None
    if args.truth_out is not None:
        truth_out = _check_output(args.truth_out, args.force)
        _kind(truth_out, _TABLE_SUFFIXES, "truth")
    family = _get_family(args.family, None)
    params = _parse_params(args.params, family.name)
    n_votes = _parse_votes_per_user(args.votes)
    mu = _parse_sim_mu(args.mu)
    if args.users < 1:
        raise CommandError(f"--users {args.users}: need at least one user")
    with progress.step(f"simulating {args.users} users", live=True) as info:
        try:
            sim = simulate_votes(
                family.name,
                params,
                args.users,
                n_votes,
                mu,
                layout=args.layout,
                reward_scores=args.reward_scores,
                seed=args.seed,
            )
        except ValueError as e:
            raise CommandError(str(e)) from None
        info["detail"] = f"{len(sim.votes)} votes"
    votes = add_texts(sim.votes, args.seed) if args.texts else sim.votes
    write_table(votes, out, progress, force=args.force)
    if truth_out is not None:
        truth = sim.eta.rename("eta").reset_index()
        write_table(truth, truth_out, progress, force=args.force)
    pairs = ", ".join(f"{p} (mu {v:g})" for p, v in sim.mu.items())
    print(f"{len(sim.votes)} votes of {args.users} users on {pairs} written to {out}")
    return 0


def _cmd_compare(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.compare import compare_fits, plot_comparison

    outdir = Path(args.out)
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--out {str(outdir)!r} exists and is not a directory")
    files = {name: outdir / name for name in _COMPARE_FILES}
    for path in files.values():
        _check_output(path, args.force)
    em = load_result(args.em_result, progress)
    nuts = load_result(args.nuts_result, progress)
    try:
        comp = compare_fits(em, nuts)
    except ValueError as e:
        raise CommandError(str(e)) from None
    text = _comparison_text(comp)
    print(text)
    with progress.step("plotting EM against NUTS"):
        fig = plot_comparison(em, nuts)
    write_figure(fig, files["em_vs_nuts.png"], force=args.force)
    _write_comparison_tables(comp, files, args.force, progress)
    write_text(text + "\n", files["comparison.txt"], force=args.force)
    print(f"figures and tables written to {outdir}/")
    return 0


_COMPARE_FILES = ("comparison.txt", "em_vs_nuts.png", "params.csv", "users.csv")


def _comparison_text(comp) -> str:
    """The agreement summary and the table of global parameters."""
    return f"{comp.summary()}\nglobal parameters:\n{comp.params.to_string()}"


def _write_comparison_tables(comp, files, force, progress) -> None:
    for name in ("params", "users"):
        value = getattr(comp, name, None)
        if isinstance(value, pd.DataFrame):
            write_table(value.reset_index(), files[f"{name}.csv"], progress, force=force)


# ---------------------------------------------------------------------------
# parser


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
        "--out", metavar="DIR", default="demo-output", help="output folder (default demo-output)"
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
    _add_force(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "fit",
        parents=quiet,
        help="fit P_eta (and mu) to a vote log and save the result",
        description="Fit the attentiveness distribution P_eta and each pair's mu to VOTES "
        "(CSV, Parquet or JSONL) by MAP-EM or NUTS, and save the result (.nc or .zarr).",
    )
    p.add_argument("votes", metavar="VOTES", help="vote log (.csv, .parquet, .jsonl)")
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
    g.add_argument("--tune", type=int, default=1000, help="tuning steps (default 1000)")
    g.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    _add_mu_options(p)
    _add_vote_columns(p)
    p.add_argument("--out", required=True, metavar="RESULT", help="result file (.nc or .zarr)")
    _add_force(p)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "summary",
        parents=quiet,
        help="print a fitted result's parameters and diagnostics",
        description="Print the family, method, global parameters (NUTS: posterior means and "
        "HDI), mu per pair, convergence or diagnostics, and the number of users.",
    )
    p.add_argument("result", metavar="RESULT", help="result of 'attnmodel fit'")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_summary)

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
    p.set_defaults(func=_cmd_users)

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
        default="prob",
        help="prob: P(eta >= E) >= PROB (default); top: top fraction by posterior "
        "mean; map: posterior mode >= threshold; quantile: at or above a quantile "
        "of the fitted P_eta",
    )
    p.add_argument("--eta-star", type=float, metavar="E", help="rule prob: the cut E")
    p.add_argument("--prob", type=float, default=0.95, help="rule prob (default 0.95)")
    p.add_argument("--top", type=float, metavar="FRACTION", help="rule top")
    p.add_argument("--threshold", type=float, metavar="ETA", help="rule map")
    p.add_argument("--quantile", type=float, metavar="LEVEL", help="rule quantile")
    p.add_argument(
        "--ignore-diagnostics",
        action="store_true",
        help="filter even if EM did not converge or NUTS diagnostics fail",
    )
    p.add_argument(
        "--decisions-out",
        metavar="FILE",
        help="also write each user's decision (kept, dropped, undetermined)",
    )
    _add_vote_columns(p)
    p.add_argument("--out", required=True, metavar="KEPT", help=".csv, .parquet or .jsonl")
    _add_force(p)
    p.set_defaults(func=_cmd_filter)

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
    p.set_defaults(func=_cmd_export)

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
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "compare",
        parents=quiet,
        help="EM against NUTS: figures and tables",
        description="Compare an EM fit with a NUTS fit of the same votes: global parameters "
        "(EM estimate against NUTS mean and HDI), per-user P(eta >= eta_star), filter "
        "decisions. Writes " + ", ".join(_COMPARE_FILES) + " to DIR.",
    )
    p.add_argument("em_result", metavar="EM_RESULT")
    p.add_argument("nuts_result", metavar="NUTS_RESULT")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_force(p)
    p.set_defaults(func=_cmd_compare)
    return parser


def _version() -> str:
    from attnmodel import __version__

    return __version__


# ---------------------------------------------------------------------------
# demo

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


def _cmd_demo(args: argparse.Namespace, progress: Progress) -> int:
    from attnmodel.data.votes import VoteData
    from attnmodel.export import to_dpo, write_dpo
    from attnmodel.filtering import filter_users
    from attnmodel.model.priors import BetaPrior
    from attnmodel.results.tree import summarize, user_table
    from attnmodel.model.simulate import simulate_votes

    if args.users < 10:
        raise CommandError(f"--users {args.users}: the demo needs at least 10 users")
    if not 0.5 < args.mu <= 1.0:
        raise CommandError(f"--mu {args.mu!r}: must lie in (1/2, 1]")
    outdir = Path(args.out)
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--out {str(outdir)!r} exists and is not a directory")
    files = _demo_files(outdir, not args.no_nuts)
    for path in files.values():
        _check_output(path, args.force)

    lines: list[str] = []

    def say(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    truth = {"alpha": 3.0, "beta": 5.0}
    pair = "strong-model vs weak-model"
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
    )
    votes = add_texts(sim.votes, args.seed)
    data = VoteData.from_frame(votes)
    say(f"  {data!r}")
    eta_star = float(sim.family.ppf(np.array(0.5), sim.params))
    say(f"  eta_star = {eta_star:.3f}, the median of the true P_eta\n")

    fits: dict[str, Any] = {}
    for key, label, mu_kw in (
        ("em", "MAP-EM, mu ~ Beta(8, 2)", {"mu_prior": BetaPrior(8.0, 2.0)}),
        ("em_known_mu", "MAP-EM, mu known", {"mu": args.mu}),
    ):
        fits[key] = _run_fit(
            data, "beta", "em", mu_kw, eta_star, args.seed, {}, progress, f"fitting {label}"
        )
    if not args.no_nuts:
        fits["nuts"] = _run_fit(
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
    for rule, kw in (
        ("prob", {"eta_star": eta_star, "prob": 0.95}),
        ("prob", {"eta_star": eta_star, "prob": 0.8}),
        ("top", {"top": 0.5}),
        ("quantile", {"quantile": 0.5}),
    ):
        res = filter_users(fits["em"], data, rule=rule, **kw)
        kept = res.keep.reindex(pd.Index(data.users)).fillna(False).to_numpy(dtype=bool)
        precision = float(attentive[kept].mean()) if kept.any() else float("nan")
        recall = float(kept[attentive].mean()) if attentive.any() else float("nan")
        say(f"  {res.summary()}")
        say(f"    truly attentive among kept: {precision:.1%}; attentive users kept: {recall:.1%}")
        filters.append({"rule": rule, **kw, **res.counts, "precision": precision, "recall": recall})
        if kept_main is None:
            kept_main = res
    comparison = None
    if "nuts" in fits:
        from attnmodel.compare import compare_fits

        comparison = compare_fits(fits["em"], fits["nuts"])
        say("\nMAP-EM against NUTS (both mu ~ Beta(8, 2)):")
        say("  " + _comparison_text(comparison).replace("\n", "\n  "))

    assert kept_main is not None
    pairs = to_dpo(kept_main.votes, keep=["user"])
    say(f"\n{len(pairs)} DPO pairs (prompt, chosen, rejected) from the kept votes.")

    # Outputs: results, tables, plots, then the summary that lists them.
    outdir.mkdir(parents=True, exist_ok=True)
    write_table(votes, files["votes.csv"], progress, force=args.force)
    for key in fits:
        _save_result(fits[key], files[f"{key}.nc"], progress, args.force)
    write_table(user_table(fits["em"]), files["users.csv"], progress, force=args.force)
    write_table(kept_main.votes, files["kept_votes.csv"], progress, force=args.force)
    with progress.step(f"writing {files['dpo.jsonl']}"):
        write_dpo(pairs, files["dpo.jsonl"], force=args.force)
    with progress.step("plotting"):
        from attnmodel.plots import plot_attentiveness

        figs = {
            "em_convergence.png": _plot_em_convergence(fits["em"]),
            "attentiveness.png": plot_attentiveness(fits["em"], true_eta=true_eta),
        }
        if "nuts" in fits:
            from attnmodel.compare import plot_comparison

            figs["em_vs_nuts.png"] = plot_comparison(fits["em"], fits["nuts"])
    for name, fig in figs.items():
        write_figure(fig, files[name], force=args.force)

    say(f"\nWritten to {outdir}/: " + ", ".join(files))
    report = {
        "truth": {"family": "beta", "params": truth, "mu": args.mu, "eta_star": eta_star},
        "data": {"users": data.n_users, "votes": data.n_votes, "pairs": list(data.pairs)},
        "fits": summaries,
        "filters": filters,
        "dpo_pairs": len(pairs),
        "files": list(files),
    }
    write_text(
        json.dumps(_json_safe(report), indent=2) + "\n", files["summary.json"], force=args.force
    )
    say("Done.")
    write_text("\n".join(lines) + "\n", files["summary.txt"], force=args.force)
    return 0


def _plot_em_convergence(dt):
    """The objective by iteration of every EM start of a result (``em_runs``, else ``em_trace``)."""
    from attnmodel.plots import plot_em_objective

    if "em_runs" in dt.children:
        runs = dt["em_runs"].to_dataset()[["objective"]].to_dataframe().reset_index()
        paths = runs.dropna(subset=["objective"])[["start", "iteration", "objective"]]
    else:
        trace = dt["em_trace"]
        paths = pd.DataFrame(
            {
                "start": 0,
                "iteration": np.asarray(trace["iteration"]),
                "objective": np.asarray(trace["objective"]),
            }
        )
    return plot_em_objective(paths)


# ---------------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``attnmodel`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 for an error in the input, 130 when
        interrupted. Usage errors exit with status 2 through ``SystemExit``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = Progress(quiet=bool(getattr(args, "quiet", False)))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args, progress))
        except AttnmodelError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
