"""Run the command-line examples of the docs and save their real output.

Each example runs the installed ``attnmodel`` command in a scratch folder and
writes ``generated/cli/NAME.txt``: the command line (as ``$ ...``) followed by
what it printed, stderr and stdout together. ``cli.md`` includes these files,
so the page shows output the current code produced.

Usage (from the repository root)::

    .venv/bin/python docs/cli_examples.py --force

The MT-Bench examples need ``shared/data/mtbench_human_judgments.csv`` beside
the clone (the human split of lmsys/mt_bench_human_judgments, Zheng et al. 2023,
CC-BY-4.0); without it they are left out and the script says so. Existing
outputs are only replaced with ``--force``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
MTBENCH = "mtbench_human_judgments.csv"

#: Examples that show an error on purpose (exit status 1).
ERRORS = {"overwrite", "missing_column", "mtbench_export"}
#: (name, command); ``head`` lines print the first lines of a file the step wrote.
SIMULATED = [
    ("help", "attnmodel --help"),
    (
        "simulate",
        "attnmodel simulate --family beta_mixture --params weights=0.4,0.6 alpha=2,8 beta=8,2"
        " --users 1000 --votes 20..60 --mu 'gpt-4 vs llama-13b=0.85' 'claude-v1 vs"
        " alpaca-13b=0.7' --texts --truth-out truth.csv --out votes.csv",
    ),
    ("fit", "attnmodel fit votes.csv --family beta --out fit.nc"),
    ("summary", "attnmodel -q summary fit.nc"),
    ("users", "attnmodel users fit.nc --out users.csv && head -4 users.csv"),
    ("filter", "attnmodel filter fit.nc votes.csv --eta-star 0.5 --out kept.csv"),
    (
        "export",
        "attnmodel export kept.csv --to dpo --keep user --out dpo.jsonl && head -2 dpo.jsonl",
    ),
    # NUTS on the paper's setting: one pair and 50 votes each, so few distinct count rows
    # (NUTS's cost grows with them; the two-pair log above takes many minutes).
    (
        "paper_simulate",
        "attnmodel simulate --family beta --params alpha=3 beta=5 --users 400 --votes 50"
        " --mu 0.8 --layout oriented --out paper.csv",
    ),
    ("paper_em", "attnmodel fit paper.csv --family beta --mu-prior 8,2 --out em.nc"),
    # -q: without PyMC's progress table, which does not fit a page.
    (
        "nuts",
        "attnmodel -q fit paper.csv --family beta --mu-prior 8,2 --method nuts --out nuts.nc",
    ),
    ("compare", "attnmodel compare em.nc nuts.nc --out em-vs-nuts"),
    ("overwrite", "attnmodel fit votes.csv --family beta --out fit.nc"),
    ("missing_column", "attnmodel fit votes.csv --family beta --user-col judge --out f2.nc"),
]
MTBENCH_STEPS = [
    (
        "mtbench_fit",
        f"attnmodel fit ../shared/data/{MTBENCH} --family beta --user-col user_id --out mtbench.nc",
    ),
    (
        "mtbench_filter",
        f"attnmodel filter mtbench.nc ../shared/data/{MTBENCH} --eta-star 0.8 --out judges.csv",
    ),
    ("mtbench_export", "attnmodel export judges.csv --to dpo --out judges_dpo.jsonl"),
]


def find_mtbench() -> Path | None:
    """``shared/data`` with the MT-Bench file, in a folder above the repository."""
    for folder in (ROOT, *ROOT.parents):
        if (folder / "shared" / "data" / MTBENCH).is_file():
            return folder / "shared" / "data"
    return None


def run(command: str, cwd: Path, bin_dir: Path) -> str:
    """The transcript of one command: ``$ command`` and everything it printed."""
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "88"}
    proc = subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    shown = command.replace(" && ", "\n$ ")
    out = proc.stdout.rstrip("\n")
    status = f"\n(exit status {proc.returncode})" if proc.returncode else ""
    return f"$ {shown}\n{out}{status}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the examples and write their transcripts; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS / "generated" / "cli")
    parser.add_argument("--force", action="store_true", help="replace existing transcripts")
    args = parser.parse_args(argv)
    from attnmodel.data.io import atomic_write

    data_dir = find_mtbench()
    steps = SIMULATED + (MTBENCH_STEPS if data_dir else [])
    if data_dir is None:
        print(f"{MTBENCH} not found in shared/data above {ROOT}: MT-Bench examples left out")
    targets = [args.out / f"{name}.txt" for name, _ in steps]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        parser.error(f"{existing[0]} exists; pass --force to replace the transcripts")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        # A scratch clone layout: work/ with ../shared/data beside it, as in the README.
        work = Path(tmp) / "main"
        work.mkdir()
        if data_dir is not None:
            (Path(tmp) / "shared").mkdir()
            os.symlink(data_dir, Path(tmp) / "shared" / "data")
        for (name, command), target in zip(steps, targets, strict=True):
            print(f"{name}: {shlex.split(command)[:2]}...", file=sys.stderr)
            text = run(command, work, bin_dir)
            atomic_write(target, lambda p, t=text: p.write_text(t, encoding="utf-8"), force=True)
        if "nuts" in dict(steps):
            # The figure of `compare`, for the page.
            figure = work / "em-vs-nuts" / "em_vs_nuts.png"
            if figure.is_file():
                dest = args.out / "em_vs_nuts.png"
                atomic_write(dest, lambda p: shutil.copyfile(figure, p), force=True)
    print(f"wrote {len(steps)} transcripts to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
