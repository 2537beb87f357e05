"""Every notebook in notebooks/ runs top to bottom at the small sizes (ATTNMODEL_SMALL=1).

The notebooks execute in subprocesses, two at a time (each runs its own kernel;
NUTS compiles per process, so the two NUTS notebooks overlap with the rest). A
cell that raises fails the notebook's test with the cell and the error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MTBENCH = "mtbench_human_judgments.csv"
#: Notebooks that sample with NUTS (the longest to run).
WITH_NUTS = {"02_em_vs_nuts", "03_convergence"}
#: Seconds a single notebook may take at the small sizes before it counts as failed.
TIMEOUT = 600

# Runs one notebook with nbclient and prints a JSON line: {"ok": bool, "error": str}.
RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
client = NotebookClient(
    nb, timeout=int(sys.argv[2]), kernel_name="python3",
    resources={"metadata": {"path": sys.argv[3]}},
)
try:
    client.execute()
except CellExecutionError as err:
    print(json.dumps({"ok": False, "error": str(err)[-6000:]}))
else:
    print(json.dumps({"ok": True, "error": ""}))
"""


def _run(path: Path, env: dict[str, str] | None = None) -> dict:
    full_env = {**os.environ, "ATTNMODEL_SMALL": "1", "MPLBACKEND": "agg", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path), str(TIMEOUT), str(path.parent)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=TIMEOUT + 120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": f"runner exited {proc.returncode}:\n{proc.stderr[-6000:]}"}
    return json.loads(lines[-1])


def _mtbench_present() -> bool:
    if os.environ.get("ATTNMODEL_MTBENCH"):
        return Path(os.environ["ATTNMODEL_MTBENCH"]).is_file()
    return any((d / "shared" / "data" / MTBENCH).is_file() for d in (ROOT, *ROOT.parents))


def _needs_mtbench(path: Path) -> bool:
    return "mtbench" in path.stem


@pytest.fixture(scope="module")
def executed() -> dict[str, dict]:
    """Run every notebook that can run here, two at a time."""
    runnable = [p for p in NOTEBOOKS if not _needs_mtbench(p) or _mtbench_present()]
    # The two NUTS notebooks first, so that the pool does not end on a long one alone.
    runnable.sort(key=lambda p: (p.stem not in WITH_NUTS, p.name))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip([p.name for p in runnable], pool.map(_run, runnable), strict=True))
    return results


def test_the_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_quickstart.ipynb",
        "02_em_vs_nuts.ipynb",
        "03_convergence.ipynb",
        "04_paper_experiments.ipynb",
        "05_mtbench.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {k} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {k} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_reads_the_small_switch(path):
    """The first code cell holds the sizes and reads ATTNMODEL_SMALL, so CI can run it small."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert 'os.environ.get("ATTNMODEL_SMALL") == "1"' in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, executed):
    if _needs_mtbench(path) and not _mtbench_present():
        pytest.skip(f"{MTBENCH} not found in shared/data beside the clone (CI provides it there)")
    result = executed[path.name]
    assert result["ok"], f"{path.name} failed:\n{result['error']}"


def test_mtbench_notebook_says_when_the_data_is_missing(tmp_path):
    path = next(p for p in NOTEBOOKS if _needs_mtbench(p))
    result = _run(path, env={"ATTNMODEL_MTBENCH": str(tmp_path / "nowhere.csv")})
    assert not result["ok"]
    assert "FileNotFoundError" in result["error"]
    assert "nowhere.csv" in result["error"] and "which is not a file" in result["error"]
