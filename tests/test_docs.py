"""The documentation builds without warnings, and its generated parts match their scripts.

``docs/reproduce.py`` runs the paper's experiments and renders ``docs/reproduce.md``
(and the pieces other pages include) from the numbers it saves in
``docs/generated/``; ``docs/cli_examples.py`` saves the command-line transcripts
that ``docs/cli.md`` includes. Both outputs are committed, so the build runs no
experiment; these tests check that what is committed is what the scripts produce.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = DOCS / "generated"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reproduce():
    return _load("reproduce")


def test_sphinx_builds_without_warnings(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
    assert proc.returncode == 0 and not warnings, "\n".join(warnings) or proc.stderr[-3000:]
    for page in ("index", "model", "fitting", "filtering", "cli", "reproduce", "api"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    # autodoc found the functions (a failed import would leave the section empty).
    for name in (
        "inference.em.fit_em",
        "filtering.filter_users",
        "inference.nuts.sample_nuts",
        "model.pymc_model.build_model",
        "paper.experiments.relative_error_table",
    ):
        assert f'id="attnmodel.{name}"' in api, name


def test_reproduction_page_is_what_the_script_renders(reproduce):
    """The committed page and includes equal a fresh rendering of the committed numbers."""
    assert (DOCS / "reproduce.md").read_text(encoding="utf-8") == reproduce.render_page(GENERATED)
    for name, make in reproduce.INCLUDES.items():
        assert (GENERATED / name).read_text(encoding="utf-8") == make(GENERATED), name


def test_every_output_of_the_script_is_committed(reproduce):
    for name in (*reproduce.NUMBERS, *reproduce.FIGURES, *reproduce.INCLUDES):
        assert (GENERATED / name).is_file(), name


def test_reproduction_page_says_how_to_regenerate_it(reproduce):
    page = (DOCS / "reproduce.md").read_text(encoding="utf-8")
    assert f"$ {reproduce.COMMAND}" in page
    assert reproduce.COMMAND.endswith("docs/reproduce.py --force")
    meta = (GENERATED / "meta.json").read_text(encoding="utf-8")
    assert '"sizes": "full"' in meta, "the committed numbers must come from a full-size run"


def test_figures_and_includes_named_by_the_pages_exist():
    refs = []
    for page in DOCS.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        found = re.findall(r"\{(?:figure|include|literalinclude)\} (\S+)", text)
        refs += [(page.name, ref) for ref in found]
    assert refs
    missing = [f"{page}: {ref}" for page, ref in refs if not (DOCS / ref).is_file()]
    assert not missing, missing


def test_cli_transcripts_are_real_runs():
    """Each transcript starts with its command; only the error examples failed."""
    cli = _load("cli_examples")
    errors = cli.ERRORS
    for name, command in cli.SIMULATED + cli.MTBENCH_STEPS:
        path = GENERATED / "cli" / f"{name}.txt"
        if name.startswith("mtbench") and not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"$ {command.split(' && ')[0]}\n"), name
        assert "Traceback" not in text, name
        failed = "(exit status" in text
        assert failed == (name in errors), (name, text[-300:])
    overwrite = (GENERATED / "cli" / "overwrite.txt").read_text(encoding="utf-8")
    assert "--force" in overwrite and "attnmodel: error:" in overwrite


def test_rendering_refuses_to_overwrite_without_force(reproduce, tmp_path):
    (tmp_path / "generated").mkdir()
    for name in (*reproduce.NUMBERS, *reproduce.FIGURES):
        shutil.copy(GENERATED / name, tmp_path / "generated" / name)
    assert reproduce.main(["--render", "--out", str(tmp_path)]) == 0
    first = (tmp_path / "reproduce.md").read_text(encoding="utf-8")
    assert first == (DOCS / "reproduce.md").read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="--force"):
        reproduce.main(["--render", "--out", str(tmp_path)])
    assert reproduce.main(["--render", "--out", str(tmp_path), "--force"]) == 0


@pytest.mark.slow
def test_reproduce_runs_end_to_end_at_small_sizes(reproduce, tmp_path):
    """The whole script, experiments included, at small sizes (about two minutes)."""
    assert reproduce.main(["--small", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "reproduce.md").read_text(encoding="utf-8")
    assert page == reproduce.render_page(tmp_path / "generated")
    for name in reproduce.FIGURES:
        assert (tmp_path / "generated" / name).stat().st_size > 10_000, name


def test_prior_predictive_table_is_what_the_script_computes():
    """The committed prior predictive table equals a fresh (seeded) computation."""
    script = _load("prior_predictive")
    committed = (GENERATED / script.TABLE).read_text(encoding="utf-8")
    assert committed == script.table(script.prior_draws())
    assert (GENERATED / script.FIGURE).stat().st_size > 10_000
    model_page = (DOCS / "model.md").read_text(encoding="utf-8")
    assert f"generated/{script.TABLE}" in model_page and f"generated/{script.FIGURE}" in model_page
    assert script.COMMAND.split("python ")[1].split(" --")[0] in model_page


def test_prior_predictive_script_refuses_to_overwrite(tmp_path):
    script = _load("prior_predictive")
    assert script.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / script.TABLE).read_text(encoding="utf-8") == (
        GENERATED / script.TABLE
    ).read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="force"):
        script.main(["--out", str(tmp_path)])
