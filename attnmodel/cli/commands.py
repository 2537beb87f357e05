"""The subcommands of the ``attnmodel`` command line and what they share.

Subcommands follow the pipeline: ``simulate`` (or your own log) -> ``fit`` ->
``summary`` / ``users`` -> ``filter`` -> ``export``, with ``compare`` for an
EM fit against a NUTS fit (``demo``, running all of it on simulated votes, is
:mod:`attnmodel.cli.demo`). Each ``cmd_NAME(args, progress)`` runs one
subcommand on the arguments of :func:`attnmodel.cli.parser.build_parser` and
returns the exit status. The work is the library's: tables are read and
written by :mod:`attnmodel.data.io`, votes by :class:`attnmodel.VoteData`,
``mu`` is checked by :func:`attnmodel.model.priors.resolve_mu`; this module
turns options into arguments, reports progress on stderr, prints results on
stdout, and turns a problem the user can fix into a :class:`CommandError`.

Outputs are written atomically (a temporary file beside the target, renamed
into place when complete) and never replace an existing file without
``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from attnmodel.cli.parser import COMPARE_FILES
from attnmodel.data import io
from attnmodel.errors import CommandError, DataMismatchError, TableFileError, VoteDataError

__all__ = [
    "Progress",
    "check_output",
    "cmd_compare",
    "cmd_export",
    "cmd_filter",
    "cmd_fit",
    "cmd_simulate",
    "cmd_summary",
    "cmd_users",
    "comparison_text",
    "engine_options",
    "format_summary",
    "json_safe",
    "load_result",
    "mu_arguments",
    "read_table",
    "read_votes",
    "run_fit",
    "save_result",
    "write_figure",
    "write_table",
    "write_text",
]

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
        self._open: str | None = None  # the step whose line awaits its "done"
        self._broken = False

    def break_line(self) -> None:
        """End an open step line, so that a message (a warning) starts on its own line.

        The step then reports its time on a line of its own, repeating what it does.
        """
        if self._open is not None and not self._broken:
            self.stream.write("\n")
            self.stream.flush()
            self._broken = True

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
            Set ``"detail"`` to add a few words after the time, and
            ``"status"`` to show how far a live step has got.
        """
        info: dict[str, str] = {}
        if self.quiet:
            yield info
            return
        t0 = time.perf_counter()
        self.stream.write(f"{what}...")
        self.stream.flush()
        self._open, self._broken = what, False
        stop = threading.Event()
        ticker = None
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if live and tty:

            def tick() -> None:
                while not stop.wait(0.5):
                    status = f", {info['status']}" if info.get("status") else ""
                    self.stream.write(f"\r{what}... {time.perf_counter() - t0:.0f} s{status}")
                    self.stream.flush()

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            yield info
        except BaseException:
            stop.set()
            if ticker is not None:
                ticker.join()
            self.stream.write(f"{what}... failed\n" if self._broken else " failed\n")
            self.stream.flush()
            self._open = None
            raise
        stop.set()
        if ticker is not None:
            ticker.join()
            if not self._broken:
                self.stream.write(f"\r{what}...")
        if self._broken:
            self.stream.write(f"{what}...")
        self._open = None
        seconds = time.perf_counter() - t0
        detail = f" ({info['detail']})" if info.get("detail") else ""
        self.stream.write(f" done in {seconds:.1f} s{detail}\n")
        self.stream.flush()


# ---------------------------------------------------------------------------
# files


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links and relative paths resolved)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path: str | Path, force: bool, inputs: Sequence[str | Path | None] = ()) -> Path:
    """Refuse an unusable output before any work is done.

    Refused: an output that exists (unless forced), that is an input, or that
    lies in a folder that cannot be written. An output naming one of
    ``inputs`` (the same file by any path or link) is refused even with
    ``--force``: the input would be lost.
    """
    p = Path(path)
    for given in inputs:
        if given is not None and _same_file(p, Path(given)):
            raise CommandError(
                f"{str(p)!r} is the input {str(given)!r}; write the output to another file "
                "(--force never replaces an input)"
            )
    if p.exists() and not force:
        raise CommandError(f"{str(p)!r} exists; pass --force to replace it")
    if p.exists() and p.is_dir() and p.suffix.lower() != ".zarr":
        raise CommandError(f"{str(p)!r} is a directory, not a file")
    _check_writable(p)
    return p


def _check_writable(path: Path) -> None:
    """Refuse an output whose folder cannot be written, before any work is done."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # created on writing: its first existing ancestor must be writable
    if not folder.is_dir():
        raise CommandError(f"{str(path)!r}: {str(folder)!r} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise CommandError(
            f"{str(path)!r}: cannot write in the folder {str(folder)!r} ({e.strerror})"
        ) from None


@contextlib.contextmanager
def _output_errors(path: Path) -> Iterator[None]:
    """Write errors as one line naming the output and the reason.

    An output that appeared since :func:`check_output` is refused; a full
    disk, a missing permission and the like are reported with their reason
    (the temporary file is already gone: :func:`attnmodel.data.io.atomic_write`
    removes it).
    """
    try:
        yield
    except FileExistsError as e:
        raise CommandError(f"{str(path)!r} exists; pass --force to replace it") from e
    except OSError as e:
        reason = (e.strerror or str(e) or type(e).__name__).strip().splitlines()[0]
        raise CommandError(f"{str(path)!r}: could not be written ({reason})") from e


def read_table(path: str | Path, progress: Progress, *, what: str = "table") -> pd.DataFrame:
    """Read a table with :func:`attnmodel.data.io.read_table`, with a progress line.

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
    io.table_format(p, what)
    if not p.is_file():
        raise CommandError(f"{str(p)!r}: no such file")
    with progress.step(f"reading {p}") as info:
        df = io.read_table(p, what=what)
        info["detail"] = f"{len(df)} rows"
    return df


def write_table(
    frame: pd.DataFrame, path: str | Path, progress: Progress, *, force: bool = False
) -> Path:
    """Write a table with :func:`attnmodel.data.io.write_table`, with a progress line.

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
    with progress.step(f"writing {p}") as info, _output_errors(p):
        io.write_table(frame, p, force=force)
        info["detail"] = f"{len(frame)} rows"
    return p


def _atomic(path: Path, write: Callable[[Path], None], force: bool) -> Path:
    with _output_errors(path):
        return io.atomic_write(path, write, force=force)


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


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of VoteData.from_file that choose and tune the reading engine."""
    engine = getattr(args, "engine", "auto")
    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None:
        if engine not in ("auto", "dask"):
            raise CommandError(f"--scheduler is for --engine dask, not --engine {engine}")
        engine = "dask"
    opts: dict[str, Any] = {"engine": engine}
    if scheduler is not None:
        opts["scheduler"] = scheduler
    if getattr(args, "memory_limit", None) is not None:
        opts["memory_limit"] = args.memory_limit
    if getattr(args, "temp_dir", None) is not None:
        opts["temp_directory"] = args.temp_dir
    return opts


def read_votes(
    path: str | Path,
    options: dict[str, Any],
    progress: Progress,
    engine: dict[str, Any] | None = None,
):
    """Read and validate votes with column options; returns a VoteData.

    ``path`` may be a file, a glob or a folder; ``engine`` holds the reading
    options of :func:`engine_options`.
    """
    from attnmodel.data.votes import VoteData

    try:
        _, files = io.expand_table_path(path, "votes")
    except TableFileError as e:
        raise CommandError(str(e)) from None
    kwargs = dict(options)
    if "stronger" in kwargs:
        kwargs["stronger"] = _stronger_mapping(kwargs["stronger"])
    if "pair" not in kwargs and kwargs.get("layout") != "raw":
        # A 'pair' column in an oriented log is almost always meant as the pair.
        cols = io.peek_columns(files[0])
        if cols is not None and "pair" in cols and kwargs.get("winner", "winner") not in cols:
            kwargs["pair"] = "pair"
    read_opts = dict(engine or {})
    with progress.step(f"reading {path}", live=True) as info:
        if read_opts.get("engine", "auto") in ("auto", "duckdb"):
            read_opts["progress"] = lambda pct: info.__setitem__("status", f"{pct:.0f}% scanned")
        try:
            data = VoteData.from_file(path, **kwargs, **read_opts)
        except ValueError as e:
            if isinstance(e, VoteDataError):
                raise
            raise CommandError(f"{str(path)!r}: {e}") from e
        modelled = int(data.report["n_ties"].sum()) if data.counts.has_ties else 0
        rows = data.n_votes + data.n_ties_dropped + modelled
        info["detail"] = (
            f"{rows} rows scanned: {data.n_votes} votes from {data.n_users} users "
            f"on {data.n_pairs} pairs"
        )
        if data.n_ties_dropped:
            info["detail"] += f"; {data.n_ties_dropped} ties dropped"
        if modelled:
            info["detail"] += f"; {modelled} ties modelled"
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


def _mu_from_file(path: str, pairs: Sequence[str]) -> tuple[dict, dict]:
    from attnmodel.model.priors import resolve_mu

    p = Path(path)
    try:
        df = io.read_table(p, id_columns=("pair",), what="the mu file")
    except TableFileError as e:
        raise CommandError(f"--mu-file {e}") from e
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
            try:
                resolve_mu([pair], mu)
            except ValueError as e:
                raise CommandError(f"{where}, column 'mu': value {mu!r}: {e}") from None
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
        option = f"--mu {args.mu!r}: " if args.mu is not None else ""
        raise CommandError(f"{option}{e}") from None
    return out


# ---------------------------------------------------------------------------
# results


def load_result(path: str | Path, progress: Progress):
    """Load an attnmodel result, turning a missing or foreign file into a one-line error."""
    from attnmodel.results import load

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


def save_result(dt, path: Path, progress: Progress, force: bool) -> None:
    """Save a result tree with a progress line; an output that exists is a user error."""
    from attnmodel.results import save

    with progress.step(f"writing {path}"), _output_errors(path):
        save(dt, path, force=force)


def _get_family(name: str, n_components: int | None):
    from attnmodel.model.families import get_family

    try:
        return get_family(name, n_components)
    except ValueError as e:
        # The option the user typed, not the keyword it becomes.
        raise CommandError(str(e).replace("n_components", "--components")) from None


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
    """Text form of :func:`attnmodel.results.summary.summarize`'s dictionary."""
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
    titles = (
        ("structure", f"mu structure: {s.get('mu_structure', 'independent')}"),
        ("ties", "ties (modelled):"),
    )
    for key, title in titles:
        values = s.get(key) or {}
        if not values:
            continue
        lines.append(title)
        width = max(len(k) for k in values)
        for name, value in values.items():
            line = f"  {name:<{width}}  {_fmt(value)}"
            if name in hdi:
                lo, hi = hdi[name]
                line += f"  [{_fmt(lo)}, {_fmt(hi)}]"
            lines.append(line)
    lines.extend(f"warning: {note}" for note in s.get("warnings") or ())
    return "\n".join(lines)


def json_safe(obj: Any) -> Any:
    """``obj`` for ``--json`` output: plain JSON types, non-finite floats as null."""
    from attnmodel.results.tree import json_safe as to_json

    return to_json(obj, nonfinite=None)


# ---------------------------------------------------------------------------
# subcommands


def cmd_fit(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel fit``: fit a vote log and save the result."""
    out = check_output(args.out, args.force, (args.votes, args.mu_file))
    if out.suffix.lower() not in _RESULT_SUFFIXES:
        raise CommandError(f"--out {str(out)!r}: a result is saved as .nc or .zarr")
    family = _get_family(args.family, args.components)
    _check_unit("--eta-star", args.eta_star, closed=True)
    _check_unit("--hdi-prob", args.hdi_prob)
    options = _vote_options(args)
    data = read_votes(args.votes, options, progress, engine_options(args))
    if args.components is not None and args.components > data.counts.n_rows:
        raise CommandError(
            f"--components {args.components}: the votes have {data.n_users} users with "
            f"{data.counts.n_rows} distinct count rows, so at most {data.counts.n_rows} "
            "components can be told apart"
        )
    mu_kw = mu_arguments(args, list(data.pairs))
    structure_line = mu_structure_choice(args, data, mu_kw)
    kwargs: dict[str, Any] = {
        "mu_structure": args.mu_structure,
        "hdi_prob": args.hdi_prob,
        # Recorded in the result so that `filter` can read the same votes the same way.
        "provenance": {"source": str(args.votes), "options": options},
    }
    if args.method == "nuts":
        kwargs.update(draws=args.draws, tune=args.tune, chains=args.chains)
    what = f"fitting {family.name} by " + ("MAP-EM" if args.method == "em" else "NUTS")
    dt = run_fit(data, family, args.method, mu_kw, args.eta_star, args.seed, kwargs, progress, what)
    save_result(dt, out, progress, args.force)
    from attnmodel.results import summarize

    print(format_summary(summarize(dt), source=str(out)))
    print(structure_line)
    return 0


def mu_structure_choice(args: argparse.Namespace, data, mu_kw: dict[str, Any]) -> str:
    """The line ``fit`` prints about ``--mu-structure``; a choice the data cannot take errs."""
    from attnmodel.model.mu_structure import resolve_mu_structure

    try:
        structure, reason = resolve_mu_structure(
            args.mu_structure, data, mu_kw.get("mu"), mu_kw.get("mu_prior")
        )
    except ValueError as e:
        raise CommandError(f"--mu-structure {args.mu_structure}: {e}") from e
    return f"mu structure: {structure.name} ({reason})"


def cmd_leaderboard(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel leaderboard``: model strengths beside plain Bradley-Terry."""
    from attnmodel.leaderboard import leaderboard, plot_leaderboard

    if args.plot:
        check_output(args.plot, args.force, (args.result,))
    dt = load_result(args.result, progress)
    try:
        table = leaderboard(dt)
    except ValueError as e:
        raise CommandError(f"{args.result!r}: {e}") from e
    if args.json:
        rows = table.reset_index().to_dict(orient="records")
        print(json.dumps(json_safe({"hdi_prob": float(dt.attrs["hdi_prob"]), "models": rows})))
    else:
        prob = float(dt.attrs["hdi_prob"])
        print(f"leaderboard of {args.result} (strength theta, sum zero; {prob:g} intervals)")
        print(
            f"{'rank':>4}  {'model':<20} {'attnmodel':>9} {'interval':>17}   "
            f"{'plain BT':>8} {'interval':>17} {'votes':>8}"
        )
        for model, r in table.iterrows():
            print(
                f"{int(r['rank']):>4}  {str(model):<20} {r['strength']:>9.3f} "
                f"[{r['lower']:>7.3f}, {r['upper']:>7.3f}]   {r['plain']:>8.3f} "
                f"[{r['plain_lower']:>7.3f}, {r['plain_upper']:>7.3f}] {int(r['votes']):>8}"
            )
        print(
            "attnmodel: strengths among attentive users; plain BT: every vote weighted "
            "equally (careless votes shrink it towards 0)"
        )
    if args.plot:
        with progress.step(f"writing {args.plot}"):
            write_figure(plot_leaderboard(table), args.plot, force=args.force)
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


def run_fit(data, family, method, mu_kw, eta_star, seed, kwargs, progress, what):
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


def cmd_summary(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel summary``: print a result's parameters and diagnostics."""
    from attnmodel.results import summarize

    dt = load_result(args.result, progress)
    s = summarize(dt)
    if args.json:
        print(json.dumps(json_safe(s), indent=None))
    else:
        print(format_summary(s, source=str(args.result)))
    return 0


def cmd_users(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel users``: write the per-user table of a result."""
    from attnmodel.results import user_table

    out = check_output(args.out, args.force, (args.result,))
    io.table_format(out, "users")
    dt = load_result(args.result, progress)
    table = user_table(dt)
    fitted = float(dt.attrs["eta_star"])
    eta_star = fitted if args.eta_star is None else args.eta_star
    _check_unit("--eta-star", eta_star, closed=True)
    if eta_star != fitted:
        # The stored p_above is for the fitted cut; another cut is estimated from
        # the eta draws, with its Monte Carlo error.
        from attnmodel.posterior.draws import log_bf_from_draws, p_above_from_draws

        try:
            p, mcse, _ = p_above_from_draws(dt, eta_star)
        except ValueError as e:
            raise CommandError(f"{str(args.result)!r}: {e}") from None
        order = pd.Index(p["user"].to_numpy()).get_indexer(table["user"])
        table["p_above"] = p.to_numpy()[order]
        table["p_above_mcse"] = mcse.to_numpy()[order]
        # The stored evidence is for the fitted cut: estimated from the draws too.
        bf = log_bf_from_draws(dt, eta_star).to_numpy()[order]
        if "log_bf" in table:
            table["log_bf"] = bf
        else:
            table.insert(table.columns.get_loc("n_votes"), "log_bf", bf)
    table.insert(table.columns.get_loc("p_above"), "eta_star", eta_star)
    write_table(table, out, progress, force=args.force)
    print(f"{len(table)} users written to {out} (p_above = P(eta >= {eta_star:g} | votes))")
    return 0


def cmd_filter(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel filter``: keep the votes of attentive users."""
    from attnmodel.filtering import NotConvergedError, filter_users

    rule, kw = _rule_arguments(args)
    out = check_output(args.out, args.force, (args.result, args.votes))
    io.table_format(out, "kept votes")
    decisions_out = None
    if args.decisions_out is not None:
        decisions_out = check_output(
            args.decisions_out, args.force, (args.result, args.votes, args.out)
        )
        io.table_format(decisions_out, "decisions")
    dt = load_result(args.result, progress)
    stored = {}
    if "data_options" in dt.attrs:
        stored = json.loads(dt.attrs["data_options"])
    data = read_votes(args.votes, _vote_options(args, stored), progress)
    if rule == "prob" and "eta_star" not in kw:
        # The result's own p_above is exact (EM) or has its MCSE; another cut is
        # recomputed from the eta draws.
        kw["eta_star"] = float(dt.attrs["eta_star"])
    _note_other_cut(dt, rule, kw, progress)
    try:
        res = filter_users(
            dt,
            data,
            rule=rule,
            force=args.ignore_diagnostics,
            allow_other_data=args.allow_other_data,
            **kw,
        )
    except NotConvergedError as e:
        msg = str(e).replace("pass force=True", "pass --ignore-diagnostics")
        if "--ignore-diagnostics" not in msg:
            msg += " (--ignore-diagnostics filters anyway)"
        raise CommandError(f"{str(args.result)!r}: {msg}") from None
    except DataMismatchError as e:
        msg = str(e).replace("allow_other_data=True", "--allow-other-data")
        msg = msg.replace("the votes are not", f"the votes in {str(args.votes)!r} are not", 1)
        raise CommandError(f"{msg.replace('the result', repr(str(args.result)), 1)}") from None
    except ValueError as e:
        msg = str(e).replace("min_evidence=0", "--min-evidence 0")
        msg = msg.replace("refit with eta_star=", "refit with --eta-star ")
        raise CommandError(f"{str(args.result)!r} with {str(args.votes)!r}: {msg}") from None
    print(res.summary())
    if res.diagnostics is not None and len(res.diagnostics):
        print("checks of the fit: " + _describe_checks(res.diagnostics))
    write_table(res.votes, out, progress, force=args.force)
    if decisions_out is not None:
        decision = np.where(res.keep.to_numpy(), "kept", "dropped").astype(object)
        if res.undetermined is not None:
            decision[res.undetermined.to_numpy()] = "undetermined"
        if res.little_evidence is not None:
            decision[res.little_evidence.to_numpy()] = "too_little_evidence"
        table = pd.DataFrame({"user": res.keep.index.to_numpy(), "decision": decision})
        write_table(table, decisions_out, progress, force=args.force)
    return 0


def _note_other_cut(dt, rule: str, kw: dict[str, Any], progress: Progress) -> None:
    """Say when ``--eta-star`` is not the cut the result was fitted at, and what that costs."""
    fitted = float(dt.attrs["eta_star"])
    if rule != "prob" or float(kw["eta_star"]) == fitted:
        return
    cut = f"{kw['eta_star']:g}"
    exact = " (exact for MAP-EM)" if dt.attrs.get("method") == "em" else ""
    progress.note(
        f"note: --eta-star {cut} is not the cut the result was fitted at ({fitted:g}): "
        f"P(eta >= {cut}) is estimated from its eta draws, with Monte Carlo error; "
        f"'attnmodel fit ... --eta-star {cut}' gives the values at that cut{exact}, as the "
        "Python API's filter_users does given the fit itself"
    )


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


#: How the command line spells the arguments of :func:`attnmodel.filtering.check_rule_args`.
_RULE_OPTION_NAMES = {
    "rule": "--rule",
    "eta_star": "--eta-star",
    "prob": "--prob",
    "top": "--top",
    "threshold": "--threshold",
    "quantile": "--quantile",
    "min_evidence": "--min-evidence",
}


def _rule_arguments(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The rule and its keyword arguments, checked before any file is read."""
    from attnmodel.filtering import check_rule_args

    try:
        return check_rule_args(
            args.rule,
            names=_RULE_OPTION_NAMES,
            eta_star=args.eta_star,
            prob=args.prob,
            top=args.top,
            threshold=args.threshold,
            quantile=args.quantile,
            min_evidence=args.min_evidence,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None


def cmd_export(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel export``: write kept votes as DPO preference pairs."""
    from attnmodel.export import to_dpo, write_dpo

    out = check_output(args.out, args.force, (args.kept,))
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
    with progress.step(f"writing {out}") as info, _output_errors(out):
        write_dpo(pairs, out, force=args.force)
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


def cmd_simulate(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel simulate``: write a simulated vote log."""
    from attnmodel.model.simulate import simulate_votes

    out = check_output(args.out, args.force)
    io.table_format(out, "votes")
    truth_out = None
    if args.truth_out is not None:
        truth_out = check_output(args.truth_out, args.force, (args.out,))
        io.table_format(truth_out, "truth")
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
                texts=args.texts,
            )
        except ValueError as e:
            raise CommandError(str(e)) from None
        info["detail"] = f"{len(sim.votes)} votes"
    votes = sim.votes
    write_table(votes, out, progress, force=args.force)
    if truth_out is not None:
        truth = sim.eta.rename("eta").reset_index()
        write_table(truth, truth_out, progress, force=args.force)
    pairs = ", ".join(f"{p} (mu {v:g})" for p, v in sim.mu.items())
    print(f"{len(sim.votes)} votes of {args.users} users on {pairs} written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace, progress: Progress) -> int:
    """``attnmodel compare``: EM against NUTS, as text, tables and a figure."""
    from attnmodel.compare import compare_fits, plot_comparison

    outdir = Path(args.out)
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--out {str(outdir)!r} exists and is not a directory")
    files = {name: outdir / name for name in COMPARE_FILES}
    for path in files.values():
        check_output(path, args.force, (args.em_result, args.nuts_result))
    em = load_result(args.em_result, progress)
    nuts = load_result(args.nuts_result, progress)
    try:
        comp = compare_fits(em, nuts, allow_other_data=args.allow_other_data)
    except DataMismatchError as e:
        msg = str(e).replace("allow_other_data=True", "--allow-other-data")
        named = (("the EM result", args.em_result), ("the NUTS result", args.nuts_result))
        for name, path in named:
            msg = msg.replace(name, f"{name} {str(path)!r}")
        raise CommandError(msg) from None
    except ValueError as e:
        raise CommandError(str(e)) from None
    text = comparison_text(comp)
    print(text)
    with progress.step("plotting EM against NUTS"):
        fig = plot_comparison(em, nuts)
    write_figure(fig, files["em_vs_nuts.png"], force=args.force)
    _write_comparison_tables(comp, files, args.force, progress)
    write_text(text + "\n", files["comparison.txt"], force=args.force)
    print(f"figures and tables written to {outdir}/")
    return 0


def comparison_text(comp) -> str:
    """The agreement summary and the table of global parameters."""
    return f"{comp.summary()}\nglobal parameters:\n{comp.params.to_string()}"


def _write_comparison_tables(comp, files, force, progress) -> None:
    for name in ("params", "users"):
        value = getattr(comp, name, None)
        if isinstance(value, pd.DataFrame):
            write_table(value.reset_index(), files[f"{name}.csv"], progress, force=force)
