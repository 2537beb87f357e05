"""The README's main job runs as a console command and leaves its files behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "MPLBACKEND": "Agg",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def attnmodel(*args, cwd):
    """``python -m attnmodel ARGS`` of this checkout, run in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "attnmodel", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        env=ENV,
    )


def demo(*args, cwd):
    return attnmodel("demo", *args, cwd=cwd)


def check_demo(tmp_path, *args, nuts: bool):
    out = tmp_path / "demo"
    proc = demo(*args, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    text = proc.stdout
    assert text.count("converged: True") >= 2  # both MAP-EM fits
    assert len(re.findall(r"^  rule (prob|top|quantile) \(", text, re.M)) == 4
    # Every filter line reports a precision in [0, 100] % against the simulated truth.
    shares = [float(x) for x in re.findall(r"truly attentive among kept: ([\d.]+)%", text)]
    assert len(shares) == 4 and all(0 <= x <= 100 for x in shares)
    assert text.rstrip().endswith("Done.")
    # The reward-model proxy: one line each for all, two filters and the oracle; its
    # pair counts are those of the sets it was trained on.
    proxy = re.findall(
        r"^  (.+?): +(\d+) pairs, accuracy ([\d.]+)%, win rate ([\d.]+)%$", text, re.M
    )
    assert [p[0] for p in proxy] == [
        "all votes",
        "filtered, rule prob (the exported pairs)",
        "filtered, rule top",
        "oracle, true eta >= eta_star",
    ]
    assert all(0 <= float(p[2]) <= 100 and 0 <= float(p[3]) <= 100 for p in proxy)

    names = {p.name for p in out.iterdir()}
    expected = {
        "summary.txt", "summary.json", "votes.csv", "em.nc", "em_known_mu.nc", "users.csv",
        "kept_votes.csv", "dpo.jsonl", "em_convergence.png", "attentiveness.png",
    }  # fmt: skip
    if nuts:
        expected |= {"nuts.nc", "em_vs_nuts.png"}
    assert names == expected
    assert (out / "summary.txt").read_text() == text
    report = json.loads((out / "summary.json").read_text())
    assert set(report["fits"]) == {"em", "em_known_mu"} | ({"nuts"} if nuts else set())
    if nuts:
        assert report["fits"]["nuts"]["method"] == "nuts"
        assert "MAP-EM against NUTS" in text
    votes = pd.read_csv(out / "votes.csv")
    kept = pd.read_csv(out / "kept_votes.csv")
    dpo = pd.read_json(out / "dpo.jsonl", lines=True)
    assert list(kept.columns) == list(votes.columns)
    assert len(dpo) == len(kept) == report["filters"][0]["votes_kept"]
    assert len(pd.read_csv(out / "users.csv")) == report["data"]["users"]
    pairs = [int(p[1]) for p in proxy]
    assert pairs[0] == report["data"]["votes"] == len(votes)
    assert pairs[1] == len(dpo)
    assert [r["pairs"] for r in report["proxy"]] == pairs
    for png in expected:
        if png.endswith(".png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return out, proc


def test_demo_runs_end_to_end_and_a_second_run_replaces_its_folder(tmp_path):
    """The quick start run twice: the second run replaces the first run's folder whole."""
    # MAP-EM only: the NUTS half of the demo is the slow test below, and NUTS
    # with compare runs in tests/test_cli.py on a tiny log. The first run is the
    # end-to-end check of the demo's output.
    out, first = check_demo(tmp_path, "--users", 150, "--seed", 3, "--no-nuts", nuts=False)
    assert "earlier demo run" not in first.stderr
    before = (out / "summary.txt").read_text()
    out, again = check_demo(tmp_path, "--users", 150, "--seed", 4, "--no-nuts", nuts=False)
    assert f"{out}/ holds an earlier demo run: it is replaced" in again.stderr
    assert f"replaced the earlier demo run in {out}/" in again.stderr
    assert (out / "summary.txt").read_text() != before  # the new run's, not the old one's
    # Nothing is left beside the folder (no staging or old copies).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_refuses_a_folder_with_files_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "summary.txt").write_text("mine too")
    refused = demo("--users", 60, "--no-nuts", "--out", out, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "holds files the demo does not write ('mine.txt')" in refused.stderr
    assert "--force" in refused.stderr
    assert (out / "summary.txt").read_text() == "mine too"
    # --force writes the demo's files among the others and leaves those alone.
    forced = demo("--users", 60, "--no-nuts", "--out", out, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "summary.txt").read_text() == forced.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.slow
def test_full_demo_with_nuts(tmp_path):
    # Its time (target: under three minutes) is measured by benchmarks/bench_demo.py,
    # not here: a shared machine's load would make a timed test flaky.
    check_demo(tmp_path, nuts=True)


def test_usage_errors_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "attnmodel", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
