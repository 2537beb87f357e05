"""Every code block of README.md and docs/*.md runs as written.

Each page's blocks run in order, in a scratch folder of their own that holds the
files the examples read (``votes.parquet`` and ``votes.csv`` with a ``user_id``
column, a folder ``logs/`` of Hive partitions, ``counts.parquet``, and the MT-Bench
file at ``../shared/data/`` when the machine has it):

- ``python`` blocks run with ``exec`` in one namespace per page, so a later block
  may use the names an earlier one defined;
- ``console`` blocks are transcripts: each line ``$ COMMAND`` runs in ``bash`` with
  the ``attnmodel`` command of this checkout, and the lines below it, up to the next
  ``$``, are what it printed. A transcript showing ``attnmodel: error: ...`` must
  fail with exit status 1 and print that line; any other command must succeed, and
  each line it shows must be among the lines the command printed (times after
  ``done in`` and iteration counts may differ, floats printed with more than six
  digits are compared to six significant digits; a line ``...`` stands for lines left
  out, and a line ending in ``...`` for the end of a line left out);
- ``bash``/``sh``/``shell`` blocks run as one ``bash`` script that must succeed.

Blocks of other languages (``text``, ``sql``, none) are output or listings, and are
not run. A block that cannot run in a test carries an HTML comment on the line
before its opening fence (invisible on GitHub and in the Sphinx pages)::

    <!-- example: skip REASON -->       never run here; REASON says why
    <!-- example: slow -->              run only in the slow job (``pytest -m slow``)
    <!-- example: unchecked REASON -->  run, but the output shown is not compared
                                        (a transcript of data the test does not have)
    <!-- example: slow unchecked REASON -->  both: in the slow job, output not compared
                                        (NUTS draws: rounding that differs between
                                        machines and thread counts changes them)

A block that reads what a slow block wrote is slow too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
MTBENCH = ROOT.parent / "shared" / "data" / "mtbench_human_judgments.csv"
RUN_LANGS = {"python", "console", "bash", "sh", "shell"}
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([^\s`{]*)\s*$")
MARKER = re.compile(r"^<!--\s*example:\s*(\w+)\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    mark: str | None  # None, "skip", "slow" or "unchecked"
    reason: str
    unchecked: bool = False  # "slow unchecked": the output is not compared

    def __post_init__(self) -> None:
        if self.mark == "unchecked":
            self.unchecked = True

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the marker before each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        prev = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        mark, reason = None, ""
        unchecked = False
        if mk := MARKER.match(prev.strip()):
            mark, reason = mk.group(1), mk.group(2)
            if mark == "slow" and reason.startswith("unchecked "):
                unchecked, reason = True, reason.removeprefix("unchecked ").strip()
        body = "\n".join(lines[i + 1 : j]) + "\n"
        blocks.append(Block(page, i + 1, lang, body, mark, reason, unchecked))
        i = j + 1
    return blocks


def page_blocks(page: str) -> list[Block]:
    return parse_blocks((ROOT / page).read_text(encoding="utf-8"), page)


# ---------------------------------------------------------------------------
# the files the examples read


def make_workspace(base: Path) -> Path:
    """A scratch folder ``base/work`` with every file the pages' examples read."""
    work = base / "work"
    work.mkdir()
    import attnmodel as am

    pairs = {"gpt-4 vs llama-13b": 0.9, "claude-v1 vs alpaca-13b": 0.7}
    sim = am.simulate_votes(
        "beta", {"alpha": 3, "beta": 5}, 300, (20, 60), mu=pairs, layout="raw", texts=True, seed=5
    )
    votes = sim.votes.rename(columns={"user": "user_id"})
    votes.to_parquet(work / "votes.parquet", index=False)
    votes.to_csv(work / "votes.csv", index=False)
    # A folder of Hive partitions, one per day, with the default column names.
    logs = am.simulate_votes(
        "beta", {"alpha": 3, "beta": 5}, 600, (10, 30),
        mu={"gpt vs llama": 0.8, "claude vs alpaca": 0.65}, layout="raw", seed=6,
    ).votes  # fmt: skip
    days = np.array(["2026-11-28", "2026-11-29", "2026-11-30"])
    day = days[np.random.default_rng(0).integers(0, 3, len(logs))]
    for d in days:
        folder = work / "logs" / f"date={d}"
        folder.mkdir(parents=True)
        logs[day == d].to_parquet(folder / "part-0.parquet", index=False)
    # Per-(user, pair) counts as a warehouse query returns them.
    data = am.VoteData.from_frame(votes, user="user_id")
    n, s = data.user_counts()
    counts = pd.DataFrame(
        {"n": n.rename_axis(index="user_id", columns="pair").stack(), "s": s.stack().to_numpy()}
    ).reset_index()
    counts[counts["n"] > 0].to_parquet(work / "counts.parquet", index=False)
    if MTBENCH.is_file():
        (base / "shared" / "data").mkdir(parents=True)
        (base / "shared" / "data" / MTBENCH.name).symlink_to(MTBENCH)
    # The attnmodel command of this checkout.
    bin_dir = base / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "attnmodel"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m attnmodel "$@"\n')
    shim.chmod(0o755)
    return work


def shell_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{work.parent / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
    }


# ---------------------------------------------------------------------------
# running blocks


class ExampleFailed(AssertionError):
    pass


# An optimiser's iteration count: the path to the same maximum takes more or
# fewer steps when the numerical libraries round differently.
ITERATIONS = re.compile(
    r"(?<=\()\d+(?= iterations)|(?<=after )\d+(?= iterations)|(?<=\"n_iter\": )\d+"
)


def normalise(line: str) -> str:
    """A printed line with its timings and iteration counts blanked."""
    line = re.sub(r"done in \d+(\.\d+)? s", "done in _ s", line.rstrip())
    return ITERATIONS.sub("_", line)


# Floats printed in full (JSON, CSV) differ in their last digits between machines
# and thread counts: the optimiser stops once a step moves the estimate by little,
# and where the posterior is flat the point it stops at moves with the rounding,
# by 2.2e-7 relative (alpha 6.7410036 against 6.7410051) on the README's MT-Bench
# fit between two machines. A relative difference of FLOAT_RTOL, nine times that, is
# forgiven; a change of a result a reader would see is not. A transcript may also
# show a long float rounded: it matches what rounds to it.
FLOAT_RTOL = 2e-6
NUMBER = re.compile(r"-?\d+\.(\d+)(?:e[-+]?\d+)?")


def split_numbers(line: str) -> tuple[list[str], list[tuple[float, int]]]:
    """The text of a normalised line around its decimal numbers, and each number's
    value and count of decimals."""
    line = normalise(line)
    return NUMBER.sub("\0", line).split("\0"), [
        (float(m.group()), len(m.group(1))) for m in NUMBER.finditer(line)
    ]


def same_number(want: tuple[float, int], got: tuple[float, int]) -> bool:
    (a, da), (b, db) = want, got
    tol = FLOAT_RTOL * max(abs(a), abs(b))
    if db >= 7 and da < db:
        tol = max(tol, 0.5 * 10.0**-da)
    return abs(a - b) <= tol


def same_line(want: str, got: str | tuple) -> bool:
    """Whether a printed line (or its :func:`split_numbers`) matches the transcript's
    (a trailing ``...``: its start)."""
    prefix = want.rstrip().endswith("...")
    w_text, w_num = split_numbers(want.rstrip()[:-3] if prefix else want)
    g_text, g_num = split_numbers(got) if isinstance(got, str) else got
    if prefix:
        k = len(w_num)
        if len(g_num) < k or not g_text[k].startswith(w_text[k]):
            return False
        g_text, g_num, w_text = g_text[:k], g_num[:k], w_text[:k]
    if w_text != g_text or len(w_num) != len(g_num):
        return False
    return all(same_number(a, b) for a, b in zip(w_num, g_num, strict=True))


def transcript(body: str) -> list[tuple[str, list[str]]]:
    """``[(command, shown output lines)]`` of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def bash(args: list[str], work: Path) -> subprocess.CompletedProcess:
    """``bash ARGS`` in ``work``, with the ``attnmodel`` command of this checkout."""
    return subprocess.run(
        ["bash", *args],
        cwd=work,
        env=shell_env(work),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def check_command(block: Block, command: str, shown: list[str], work: Path) -> None:
    proc = bash(["-c", command], work)
    printed = proc.stdout.splitlines() + proc.stderr.splitlines()
    head = f"{block.where}: $ {command}\n"
    if "Traceback" in proc.stderr:
        raise ExampleFailed(head + proc.stderr[-3000:])
    errors = [ln for ln in shown if ln.startswith("attnmodel: error:")]
    if errors:
        if proc.returncode != 1:
            raise ExampleFailed(head + f"exit status {proc.returncode}, the transcript fails")
    elif proc.returncode != 0:
        raise ExampleFailed(head + f"exit status {proc.returncode}:\n{proc.stderr[-3000:]}")
    if block.unchecked:
        return
    parsed = [split_numbers(ln) for ln in printed]
    for line in shown:
        want = normalise(line).strip()
        if not want or want == "...":
            continue
        if any(same_line(line, got) for got in parsed):
            continue
        raise ExampleFailed(
            head
            + f"the transcript shows\n  {line}\nbut the command printed\n"
            + textwrap.indent("\n".join(printed[-60:]), "  ")
        )


def run_block(block: Block, namespace: dict, work: Path) -> None:
    if block.lang == "python":
        code = compile(block.body, block.where, "exec")
        cwd = os.getcwd()
        os.chdir(work)
        try:
            exec(code, namespace)  # noqa: S102
        finally:
            os.chdir(cwd)
    elif block.lang == "console":
        steps = transcript(block.body)
        if not steps:
            raise ExampleFailed(f"{block.where}: a console block without a '$ ' command")
        for command, shown in steps:
            check_command(block, command, shown, work)
    else:
        proc = bash(["-euo", "pipefail", "-c", block.body], work)
        if proc.returncode != 0:
            raise ExampleFailed(f"{block.where}: exit status {proc.returncode}:\n{proc.stderr}")


def needs_mtbench(block: Block) -> bool:
    return "mtbench" in block.body


def run_page(page: str, tmp_path: Path, *, slow: bool) -> int:
    """Run a page's blocks in order; returns how many ran."""
    import matplotlib

    matplotlib.use("Agg")
    work = make_workspace(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    ran = 0
    for block in page_blocks(page):
        if block.lang not in RUN_LANGS or block.mark == "skip":
            continue
        if block.mark == "slow" and not slow:
            continue
        if needs_mtbench(block) and not MTBENCH.is_file():
            continue  # the file is not part of the repository
        run_block(block, namespace, work)
        ran += 1
    return ran


def runnable(page: str, *, slow: bool) -> list[Block]:
    return [
        b
        for b in page_blocks(page)
        if b.lang in RUN_LANGS and b.mark != "skip" and (slow or b.mark != "slow")
    ]


# ---------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p, slow=False)])
def test_page_examples_run(page, tmp_path):
    assert run_page(page, tmp_path, slow=False) > 0


SLOW_PAGES = [p for p in PAGES if any(b.mark == "slow" for b in page_blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_page_examples_run_with_the_slow_ones(page, tmp_path):
    assert run_page(page, tmp_path, slow=True) > 0


def test_markers_are_known_and_skips_say_why():
    seen = 0
    for page in PAGES:
        for block in page_blocks(page):
            if block.mark is None:
                continue
            seen += 1
            known = ("skip", "slow", "unchecked")
            assert block.mark in known, f"{block.where}: unknown marker {block.mark!r}"
            if block.mark in ("skip", "unchecked") or block.unchecked:
                assert len(block.reason) > 10, f"{block.where}: a skip must say why"
            assert block.lang in RUN_LANGS, f"{block.where}: a marker on a block that never runs"
    assert seen > 0


def test_every_page_with_code_runs_most_of_it():
    """Skips are exceptions: on each page at most a third of the code blocks are skipped."""
    for page in PAGES:
        code = [b for b in page_blocks(page) if b.lang in RUN_LANGS]
        skipped = [b.where for b in code if b.mark == "skip"]
        assert len(skipped) <= max(1, len(code) // 3), skipped


PAGE = """\
# A page

```python
x = 1 + 1
```

<!-- example: skip needs a cluster that a test does not have -->
```python
raise RuntimeError("never run")
```

```console
$ echo hello
hello
$ printf 'attnmodel: error: no such file\\n' >&2; exit 1
attnmodel: error: no such file
```

```text
$ this is output, not run
```
"""


def test_the_runner_runs_what_it_should_and_catches_failures(tmp_path):
    blocks = parse_blocks(PAGE, "page.md")
    assert [(b.lang, b.mark) for b in blocks] == [
        ("python", None), ("python", "skip"), ("console", None), ("text", None),
    ]  # fmt: skip
    assert blocks[1].reason == "needs a cluster that a test does not have"
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "bin").mkdir()
    namespace: dict = {}
    run_block(blocks[0], namespace, work)
    assert namespace["x"] == 2
    run_block(blocks[2], namespace, work)
    failing = [
        ("python", "assert 1 == 2\n"),
        ("console", "$ echo hello\ngoodbye\n"),  # output other than shown
        ("console", "$ exit 3\n"),  # fails without showing an error
        ("console", "$ true\nattnmodel: error: expected\n"),  # succeeds where an error is shown
        ("bash", "false\n"),
    ]
    for lang, body in failing:
        with pytest.raises(AssertionError):
            run_block(Block("page.md", 1, lang, body, None, ""), namespace, work)
    # An unchecked transcript must still succeed, but may print something else.
    unchecked = Block("page.md", 1, "console", "$ echo hello\ngoodbye\n", "unchecked", "why")
    run_block(unchecked, namespace, work)
    with pytest.raises(AssertionError):
        run_block(Block("page.md", 1, "console", "$ exit 3\n", "unchecked", "why"), namespace, work)
    # "slow unchecked": a slow block whose output is not compared, and that must still succeed.
    page = "<!-- example: slow unchecked draws differ -->\n```console\n$ echo hello\ngoodbye\n```\n"
    (block,) = parse_blocks(page, "page.md")
    assert (block.mark, block.unchecked, block.reason) == ("slow", True, "draws differ")
    run_block(block, namespace, work)
    (plain,) = parse_blocks(page.replace("slow unchecked draws differ", "slow"), "page.md")
    assert not plain.unchecked
    with pytest.raises(AssertionError):
        run_block(plain, namespace, work)


def test_a_transcript_forgives_times_and_iteration_counts_but_not_results(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "bin").mkdir()
    printed = (
        'echo "fit... done in 3.1 s (71 iterations, converged)"; '
        'echo \'{"n_iter": 71, "x": 0.12345678}\''
    )
    for shown, same in [
        ('fit... done in 9.9 s (67 iterations, converged)\n{"n_iter": 67, "x": 0.123457}\n', True),
        ("fit... done in 3.1 s (71 iterations, not converged)\n", False),
        ('{"n_iter": 71, "x": 0.123458}\n', False),
        # Full floats 1e-6 apart (relative): the rounding of another machine.
        ('{"n_iter": 71, "x": 0.12345691}\n', True),
        ('{"n_iter": 71, "x": 0.12346912}\n', False),
    ]:
        block = Block("page.md", 1, "console", f"$ {printed}\n{shown}", None, "")
        if same:
            run_block(block, {}, work)
        else:
            with pytest.raises(AssertionError):
                run_block(block, {}, work)
