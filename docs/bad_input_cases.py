"""Run the catalogue of bad inputs and faults through the command line and print what happens.

Each case is a shell command run in a scratch folder that holds a simulated
log of 60 users (``votes.csv``), its MAP-EM fit (``em.nc``) and files made
from them (a doubled log, a log with the winners flipped, a damaged result, a
CSV with two ``winner`` columns, ...). The table printed has, per case, the
exit status and the first line the command printed (stderr first, then
stdout), so that what a user sees can be read case by case. Every case is also
a test (``tests/test_hardening.py``, ``tests/test_faults.py``,
``tests/test_first_hour.py``); this script shows the messages themselves.

Usage (from the repository root; a few minutes)::

    .venv/bin/python docs/bad_input_cases.py

Cases that need a signal, a pipe or a full disk run as real processes; the
full-disk and read-only cases mount a small tmpfs and are reported as not run
where mounting is not permitted.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = "'gpt vs llama=0.9' 'claude vs alpaca=0.7'"

#: Files every case may read, made once (shell commands run in the scratch folder).
SETUP = [
    "attnmodel -q simulate --family beta --params alpha=3 beta=5 --users 60 --votes 10..30 "
    f"--mu {PAIRS} --seed 4 --out votes.csv",
    "attnmodel -q fit votes.csv --family beta --mu-prior 8,2 --out em.nc",
    "attnmodel -q simulate --family beta --params alpha=3 beta=5 --users 60 --votes 10..30 "
    f"--mu {PAIRS} --seed 4 --texts --out texts.csv",
    # the same log twice; the winners flipped; two winner columns; a user called NA
    """python - <<'EOF'
import pandas as pd
v = pd.read_csv("votes.csv", dtype=str)
pd.concat([v, v]).to_csv("doubled.csv", index=False)
f = v.copy()
f["winner"] = f["winner"].map({"model_a": "model_b", "model_b": "model_a"})
f.to_csv("flipped.csv", index=False)
d = v.copy()
d.insert(len(d.columns), "winner2", d["winner"])
d.to_csv("dupcol.csv", index=False, header=[*v.columns, "winner"])
n = v.copy()
n.loc[n["user"] == n["user"].iloc[0], "user"] = "NA"
n.to_csv("na_user.csv", index=False)
one = v[v["user"] == v["user"].iloc[0]]
one.to_csv("one_user.csv", index=False)
one.iloc[:1].to_csv("one_vote.csv", index=False)
pd.concat([v.iloc[[0]]] * 200).to_csv("identical.csv", index=False)
t = pd.read_csv("texts.csv", dtype=str)
t.loc[t.index[:5], "winner"] = "tie"
t.to_csv("texts_ties.csv", index=False)
w = t.copy()
w.loc[w.index[:5], "winner"] = "B"
w.to_csv("winner_b.csv", index=False)
z = pd.DataFrame({"user": ["u1", "u1"], "z": [1, 2], "prompt": ["p", "q"],
                  "response_a": ["a", "b"], "response_b": ["c", "d"]})
z.to_csv("z2.csv", index=False)
EOF""",
    # 256 bytes zeroed in the middle of the file, inside the stored data
    "cp em.nc damaged.nc && python -c \"import os; f=open('damaged.nc','r+b'); "
    "f.seek(os.path.getsize('damaged.nc') // 2); f.write(bytes(256)); f.close()\"",
    # 256 bytes zeroed at offset 4096, inside HDF5's own metadata
    "cp em.nc metadata.nc && python -c \"f=open('metadata.nc','r+b'); "
    'f.seek(4096); f.write(bytes(256)); f.close()"',
    """printf '{"user": "a", "model_a": "x", "model_b": "y", "winner": "model_a"}\\n'"""
    """'{"user": "b", "model_a": "x", "model_b": "y", "winner": "model_a"}\\n'"""
    """'{"user": "c", "model_a": "x", "model_b": "y" "winner": "model_b"}\\n' > broken.jsonl""",
    "cp votes.csv v2.csv",
    "attnmodel -q simulate --family beta --params alpha=3 beta=5 --users 60 --votes 10..30 "
    f"--mu {PAIRS} --seed 5 --out other.csv && attnmodel -q fit other.csv --family beta "
    "--mu-prior 8,2 --out other.nc",
    # small NUTS fits (too few draws to pass the gate; enough to compare)
    "attnmodel -q fit votes.csv --family beta --mu-prior 8,2 --method nuts --draws 100 "
    "--tune 100 --chains 2 --out nuts.nc",
    "attnmodel -q fit other.csv --family beta --mu-prior 8,2 --method nuts --draws 100 "
    "--tune 100 --chains 2 --out other_nuts.nc",
]

#: (case, command): run in the scratch folder with ``attnmodel`` on the PATH.
CASES = [
    ("`filter --top 0.3`, no `--rule`", "attnmodel filter em.nc votes.csv --top 0.3 --out k1.csv"),
    ("`filter --rule top`, no `--top`", "attnmodel filter em.nc votes.csv --rule top --out k2.csv"),
    ("`filter` with the votes doubled", "attnmodel filter em.nc doubled.csv --out k3.csv"),
    ("`filter` with the winners flipped", "attnmodel filter em.nc flipped.csv --out k4.csv"),
    ("`.nc` with 256 bytes zeroed: `summary`", "attnmodel summary damaged.nc"),
    ("`.nc` with HDF5 metadata zeroed: `summary`", "attnmodel summary metadata.nc"),
    ("CSV with two `winner` columns: `fit`", "attnmodel fit dupcol.csv --family beta --out d.nc"),
    (
        "`filter --out SAME_AS_INPUT --force`",
        "attnmodel filter em.nc v2.csv --out v2.csv --force",
    ),
    ("fit of a single user", "attnmodel fit one_user.csv --family beta --out one.nc"),
    ("fit of a single vote", "attnmodel fit one_vote.csv --family beta --out vote.nc"),
    ("fit of 200 identical votes", "attnmodel fit identical.csv --family beta --out same.nc"),
    (
        "output file mode, umask 022",
        "umask 022 && attnmodel -q users em.nc --out mode.csv > /dev/null && "
        "stat -c 'mode %a' mode.csv",
    ),
    ("`summary | head -1`", "attnmodel summary em.nc | head -1"),
    (
        "`compare` into a closed pipe (then: files written)",
        "attnmodel compare em.nc nuts.nc --out cmp | head -0; ls cmp | wc -l",
    ),
    ("user id `NA` in a CSV", "attnmodel fit na_user.csv --family beta --out na.nc"),
    ("broken JSONL line", "attnmodel fit broken.jsonl --family beta --out b.nc"),
    ("`--mu-prior -1,2`", "attnmodel fit votes.csv --family beta --mu-prior -1,2 --out m.nc"),
    (
        "`export` with winner `B`",
        "attnmodel export winner_b.csv --to dpo --out wb.jsonl",
    ),
    ("`export --z-col` with a value 2", "attnmodel export z2.csv --to dpo --z-col z --out z.jsonl"),
    (
        "`compare` of two results fitted to different data",
        "attnmodel compare em.nc other_nuts.nc --out cmp2",
    ),
    (
        "`--components 1000` with 60 users",
        "attnmodel fit votes.csv --family beta_mixture --components 1000 --out c.nc",
    ),
    ("`export` of a file without texts", "attnmodel export votes.csv --to dpo --out nt.jsonl"),
    ("`fit` of a log with ties", "attnmodel fit texts_ties.csv --family beta --out t.nc"),
]


def shell_env() -> dict[str, str]:
    """The environment of each command: this checkout's ``attnmodel`` and Python first."""
    bin_dir = Path(tempfile.mkdtemp()) / "bin"
    bin_dir.mkdir()
    script = bin_dir / "attnmodel"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m attnmodel "$@"\n')
    script.chmod(0o755)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
    }


def first_line(text: str) -> str:
    """The first non-empty line, shortened for a table cell."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 160 else line[:157] + "..."


#: Lines that carry the message, before progress lines.
MESSAGE_PREFIXES = ("attnmodel: error", "attnmodel: warning", "attnmodel:", "warning:", "note:")


def message(stdout: str, stderr: str) -> str:
    """The line a user reads first: an error or warning, else the first output line."""
    for prefix in MESSAGE_PREFIXES:
        for text in (stderr, stdout):
            hit = next((ln for ln in text.splitlines() if ln.startswith(prefix)), None)
            if hit is not None:
                return first_line(hit)
    return first_line(stdout) or first_line(stderr)


def run_case(command: str, work: Path, env: dict) -> tuple[int, str]:
    """Exit status and message of one shell command (stopped after 300 s)."""
    try:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
            check=False, timeout=300, start_new_session=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return -1, "still running after 300 s (stopped)"
    return proc.returncode, message(proc.stdout, proc.stderr)


def interrupt_case(args: list[str], work: Path, env: dict, after: float) -> tuple[int, str]:
    """Start ``attnmodel ARGS``, send SIGINT to its process group after ``after`` seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnmodel", *args], cwd=work, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    time.sleep(after)
    t0 = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    took = time.perf_counter() - t0
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("reading", " "))]
    last = first_line(lines[-1] if lines else out)
    return proc.returncode, f"{last} ({took:.1f} s after the signal)"


def main() -> int:
    """Make the files, run every case and print the table; returns 0 (1 if set-up failed)."""
    env = shell_env()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for command in SETUP:
            proc = subprocess.run(
                ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True
            )
            if proc.returncode != 0:
                print(f"set-up failed: {command}\n{proc.stderr}", file=sys.stderr)
                return 1
        print("| case | exit | first line printed |")
        print("|---|---|---|")
        rows = [(name, *run_case(cmd, work, env)) for name, cmd in CASES]
        nuts = ["fit", "votes.csv", "--family", "beta", "--mu-prior", "8,2", "--method",
                "nuts", "--out", "int.nc"]  # fmt: skip
        rows.append(("Ctrl-C 10 s into `fit --method nuts`", *interrupt_case(nuts, work, env, 10)))
        quick = ["fit", "votes.csv", "--family", "beta", "--out", "q.nc"]
        rows.append(("Ctrl-C 0.3 s after start", *interrupt_case(quick, work, env, 0.3)))
        for name, code, line in rows:
            print(f"| {name} | {code} | `{line.replace('|', '/')}` |")
        left = sorted(p.name for p in work.iterdir() if p.name.endswith(".tmp"))
        print(f"\ntemporary files left in the folder: {left or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
