"""The ``attnmodel`` command line, run as a user runs it: in a subprocess.

Every subcommand runs on a small simulated log; every class of user error
exits with status 1 and one line naming the culprit (no traceback); usage
errors exit with status 2; outputs are never overwritten without ``--force``
and an interrupted write leaves the old file whole. Independent commands are
started together (two cores) because each process pays about two seconds of
imports.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attnmodel import cli
from attnmodel.cli import commands

MTBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtbench_human_judgments.csv"
ENV = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "default"}


def start(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "attnmodel", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> subprocess.CompletedProcess:
    # The timeout only guards against a hang: a first NUTS run compiles its kernels
    # (a fresh clone has no cache), and a busy machine can take minutes.
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(*args, cwd) -> subprocess.CompletedProcess:
    return finish(start(*args, cwd=cwd))


def run_all(commands: dict, cwd) -> dict[str, subprocess.CompletedProcess]:
    """Run several commands at once; returns their completed processes by key."""
    procs = {key: start(*args, cwd=cwd) for key, args in commands.items()}
    return {key: finish(p) for key, p in procs.items()}


def main_json(capsys, *args) -> dict:
    """``attnmodel ... --json`` in-process (the same code path as the console script)."""
    capsys.readouterr()
    assert cli.main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


# ---------------------------------------------------------------------------
# a small pipeline, run once per module

PAIRS = ("gpt vs llama=0.9", "claude vs alpaca=0.7")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    ok(
        run(
            "simulate", "--family", "beta", "--params", "alpha=3", "beta=5",
            "--users", 60, "--votes", "10..30", "--mu", *PAIRS, "--texts",
            "--seed", 4, "--truth-out", "truth.csv", "--out", "votes.csv",
            cwd=d,
        )
    )  # fmt: skip
    ok(run("fit", "votes.csv", "--family", "beta", "--mu-prior", "8,2", "--out", "em.nc", cwd=d))
    return d


def test_simulate_writes_the_log_and_the_truth(work):
    votes = pd.read_csv(work / "votes.csv")
    truth = pd.read_csv(work / "truth.csv")
    assert list(votes.columns) == [
        "user", "model_a", "model_b", "winner", "prompt", "response_a", "response_b"
    ]  # fmt: skip
    assert votes["user"].nunique() == 60 and len(truth) == 60
    per_user = votes.groupby("user").size()
    assert per_user.min() >= 10 and per_user.max() <= 30
    pairs = {frozenset(p) for p in zip(votes["model_a"], votes["model_b"], strict=True)}
    assert pairs == {frozenset(("gpt", "llama")), frozenset(("claude", "alpaca"))}
    # response_a is model_a's answer to the row's prompt.
    q = votes["prompt"].str.removeprefix("Question ")
    assert (votes["response_a"] == votes["model_a"] + "'s answer to q" + q).all()
    assert truth["eta"].between(0, 1).all()


def test_fit_summary_users_filter_export(work, capsys):
    res = run_all(
        {
            "json": ("summary", "em.nc", "--json"),
            "users": ("users", "em.nc", "--out", "users.csv"),
            "filter": ("filter", "em.nc", "votes.csv", "--rule", "top", "--top", 0.5,
                       "--out", "kept.csv"),
        },
        cwd=work,
    )  # fmt: skip
    for proc in res.values():
        ok(proc)
    s = json.loads(res["json"].stdout)
    assert {"family", "method", "params", "mu", "converged", "n_users"} <= set(s)
    assert s["family"] == "beta" and s["method"] == "em" and s["n_users"] == 60
    assert set(s["params"]) == {"alpha", "beta"}
    assert set(s["mu"]) == {"gpt vs llama", "claude vs alpaca"}
    assert all(0.5 < v <= 1 for v in s["mu"].values())
    assert "reading em.nc... done in" in res["users"].stderr  # progress on stderr
    capsys.readouterr()
    assert cli.main(["--quiet", "users", str(work / "em.nc"), "--out", str(work / "q.csv")]) == 0
    assert capsys.readouterr().err == ""  # --quiet before the subcommand counts too
    assert cli.main(["summary", str(work / "em.nc")]) == 0
    text = capsys.readouterr().out
    assert "family: beta" in text and "gpt vs llama" in text and "converged: True" in text

    users = pd.read_csv(work / "users.csv")
    assert {"user", "eta_mean", "eta_sd", "p_above", "n_votes"} <= set(users.columns)
    votes = pd.read_csv(work / "votes.csv")
    assert len(users) == 60
    assert (
        users.set_index("user")["n_votes"]
        .sort_index()
        .equals(votes.groupby("user").size().sort_index().rename("n_votes"))
    )
    assert users["p_above"].between(0, 1).all()

    kept = pd.read_csv(work / "kept.csv")
    assert list(kept.columns) == list(votes.columns)
    # top 0.5 by posterior mean: at least half of the users (ties at the cut stay together).
    best = users.sort_values("eta_mean", ascending=False)["user"].iloc[:30]
    assert set(best) <= set(kept["user"])
    assert "kept" in res["filter"].stdout and "of 60 users" in res["filter"].stdout

    ok(run("export", "kept.csv", "--to", "dpo", "--keep", "user", "--out", "dpo.jsonl", cwd=work))
    dpo = pd.read_json(work / "dpo.jsonl", lines=True)
    assert list(dpo.columns) == ["prompt", "chosen", "rejected", "user"]
    assert len(dpo) == len(kept)
    a_won = (kept["winner"] == "model_a").to_numpy()
    chosen = np.where(a_won, kept["response_a"], kept["response_b"])
    assert (dpo["chosen"].to_numpy() == chosen).all()


def test_export_conversational_layout(work, tmp_path, capsys):
    out = tmp_path / "conv.jsonl"
    assert cli.main(["export", str(work / "votes.csv"), "--conversational", "--out", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    row = pd.read_csv(work / "votes.csv").iloc[0]
    chosen = row["response_a"] if row["winner"] == "model_a" else row["response_b"]
    assert first["prompt"] == [{"role": "user", "content": row["prompt"]}]
    assert first["chosen"] == [{"role": "assistant", "content": chosen}]
    assert "conversational DPO layout" in capsys.readouterr().out


def test_mu_options_reach_the_fit(work, capsys, monkeypatch):
    pd.DataFrame(
        {"pair": ["gpt vs llama", "claude vs alpaca"], "mu": [0.9, None],
         "prior_alpha": [None, 3.0], "prior_beta": [None, 2.0]}
    ).to_csv(work / "pairs.csv", index=False)  # fmt: skip
    known = run("fit", "votes.csv", "--family", "beta", "--mu", 0.85, "-q", "--out", "known.nc",
                cwd=work)  # fmt: skip
    assert ok(known).stderr == ""  # --quiet silences progress
    monkeypatch.chdir(work)
    args = ["-q", "fit", "votes.csv", "--family", "two_point", "--mu-file", "pairs.csv"]
    assert cli.main([*args, "--out", "file.nc"]) == 0
    s = main_json(capsys, "summary", work / "file.nc")
    assert s["family"] == "two_point"
    assert s["mu"]["gpt vs llama"] == pytest.approx(0.9)
    assert 0.5 < s["mu"]["claude vs alpaca"] < 1 and s["mu"]["claude vs alpaca"] != 0.9
    known = main_json(capsys, "summary", work / "known.nc")
    assert known["mu"] == {"gpt vs llama": 0.85, "claude vs alpaca": 0.85}


def test_stronger_and_ties_options_reach_the_data(work, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    votes = pd.read_csv(work / "votes.csv")
    votes.loc[3, "winner"] = "tie"
    votes.to_csv("ties.csv", index=False)
    common = ["-q", "fit", "ties.csv", "--family", "beta", "--mu", "0.6"]
    # Naming the weaker model as stronger flips the pair's label (and its votes).
    assert cli.main([*common, "--stronger", "llama vs gpt", "--out", "s.nc"]) == 0
    capsys.readouterr()
    s = main_json(capsys, "summary", "s.nc")
    assert set(s["mu"]) == {"llama vs gpt", "claude vs alpaca"}
    code = cli.main([*common, "--ties", "error", "--out", "t.nc"])
    assert_user_error(code, capsys.readouterr().err, "row 3 (index label 3), value 'tie'")


@pytest.mark.skipif(not MTBENCH.is_file(), reason=f"{MTBENCH} not found beside the clone")
def test_fit_mtbench_with_its_own_column_names(tmp_path, capsys):
    # The command of the issue, with the path relative to the clone.
    main = Path(__file__).resolve().parents[1]
    out = tmp_path / "r.nc"
    proc = ok(
        run(
            "fit", "../shared/data/mtbench_human_judgments.csv", "--family", "beta",
            "--method", "em", "--user-col", "user_id", "--out", out,
            cwd=main,
        )
    )  # fmt: skip
    assert "users: 65" in proc.stdout
    assert "gpt-4 vs llama-13b" in proc.stdout
    assert "2575 votes from 65 users on 15 pairs" in proc.stderr
    assert cli.main(["summary", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_users"] == 65 and len(s["mu"]) == 15


# ---------------------------------------------------------------------------
# user errors: exit 1, one line naming the culprit, no traceback


@pytest.fixture(scope="module")
def bad(work) -> Path:
    d = work / "bad"
    d.mkdir()
    votes = pd.read_csv(work / "votes.csv")
    votes.loc[7, "winner"] = "banana"
    votes.to_csv(d / "bad_winner.csv", index=False)
    xr.Dataset({"x": ("i", [1.0, 2.0])}).to_netcdf(d / "plain.nc", engine="h5netcdf")
    pd.DataFrame({"pair": ["gpt vs llama", "nobody vs none"], "mu": [0.9, 0.8]}).to_csv(
        d / "unknown_pair.csv", index=False
    )
    pd.DataFrame({"pair": ["gpt vs llama"], "mu": [0.4]}).to_csv(d / "low_mu.csv", index=False)
    (d / "votes.csv").symlink_to(work / "votes.csv")
    return d


FIT = ("fit", "votes.csv", "--family", "beta", "-q")

#: The issue's classes of user error, each run as a console command: (arguments, culprit).
CONSOLE_ERRORS = {
    "missing file": (("fit", "nope.csv", "--family", "beta", "--out", "r.nc"), "'nope.csv'"),
    "bad column": ((*FIT, "--user-col", "judge", "--out", "r.nc"), "'judge'"),
    "bad value in a row": (
        ("fit", "bad_winner.csv", "--family", "beta", "--out", "r.nc"),
        "'winner', row 7 (index label 7), value 'banana'",
    ),
    "bad option value": ((*FIT, "--mu", 0.4, "--out", "r.nc"), "--mu 0.4"),
    "unknown family": (
        ("fit", "votes.csv", "--family", "gamma", "--out", "r.nc"),
        "unknown family 'gamma'",
    ),
    "not an attnmodel result": (("summary", "plain.nc"), "'plain.nc' is not an attnmodel result"),
}

#: More of the same kinds, checked in-process through cli.main (the same code path).
MORE_ERRORS = {
    "bad mu prior": ((*FIT, "--mu-prior", "0.5,2", "--out", "r.nc"), "--mu-prior '0.5,2'"),
    "mu prior not numbers": ((*FIT, "--mu-prior", "8;2", "--out", "r.nc"), "--mu-prior '8;2'"),
    "unknown pair in mu file": (
        (*FIT, "--mu-file", "unknown_pair.csv", "--out", "r.nc"),
        "row 1: pair 'nobody vs none' does not occur",
    ),
    "bad mu in mu file": (
        (*FIT, "--mu-file", "low_mu.csv", "--out", "r.nc"),
        "row 0, column 'mu': value 0.4",
    ),
    "mu file missing": ((*FIT, "--mu-file", "gone.csv", "--out", "r.nc"), "'gone.csv'"),
    "bad stronger": ((*FIT, "--stronger", "gpt", "--out", "r.nc"), "--stronger 'gpt'"),
    "result missing": (("users", "gone.nc", "--out", "u.csv"), "'gone.nc'"),
    "bad output suffix": ((*FIT, "--out", "r.txt"), "'r.txt'"),
    "eta_star out of range": ((*FIT, "--eta-star", 1.5, "--out", "r.nc"), "--eta-star 1.5"),
    "votes file type": (("fit", "plain.nc", "--family", "beta", "--out", "r.nc"), "'plain.nc'"),
    "filter rule without its value": (
        ("filter", "../em.nc", "votes.csv", "--rule", "top", "--out", "k.csv"),
        "--rule top needs --top",
    ),
    "simulate bad params": (
        ("simulate", "--family", "beta", "--params", "alpha=3", "--users", 5, "--votes", 5,
         "--out", "s.csv"),
        "missing ['beta']",
    ),
    "simulate bad votes": (
        ("simulate", "--family", "beta", "--params", "alpha=3", "beta=5", "--users", 5,
         "--votes", "9..3", "--out", "s.csv"),
        "--votes '9..3'",
    ),
    "export missing column": (
        ("export", "votes.csv", "--prompt-col", "question", "--out", "d.jsonl"),
        "missing column 'question'",
    ),
    "export of ties": (("export", "bad_winner.csv", "--out", "d.jsonl"), "row 7"),
}  # fmt: skip


def assert_user_error(code: int, stderr: str, culprit: str) -> None:
    assert code == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("attnmodel: error: "), stderr
    assert culprit in lines[-1], lines[-1]
    assert not any(line.startswith("attnmodel: error") for line in lines[:-1])


@pytest.fixture(scope="module")
def console_errors(bad) -> dict[str, subprocess.CompletedProcess]:
    return run_all({k: args for k, (args, _) in CONSOLE_ERRORS.items()}, cwd=bad)


@pytest.mark.parametrize("case", list(CONSOLE_ERRORS))
def test_user_errors_exit_1_naming_the_culprit(console_errors, bad, case):
    proc = console_errors[case]
    assert_user_error(proc.returncode, proc.stderr, CONSOLE_ERRORS[case][1])
    assert not (bad / "r.nc").exists()


@pytest.mark.parametrize("case", list(MORE_ERRORS))
def test_more_user_errors_in_process(bad, case, capsys, monkeypatch):
    monkeypatch.chdir(bad)
    args, culprit = MORE_ERRORS[case]
    code = cli.main([str(a) for a in args])
    assert_user_error(code, capsys.readouterr().err, culprit)
    assert not any((bad / name).exists() for name in ("r.nc", "u.csv", "s.csv", "d.jsonl"))


def test_usage_errors_exit_2(work, capsys):
    # The console script: argparse's message and status.
    proc = run("fit", "votes.csv", "--family", "beta", "--mu", 0.8, "--mu-prior", "8,2",
               "--out", "r.nc", cwd=work)  # fmt: skip
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr and "Traceback" not in proc.stderr
    for args in (
        ["fit", "votes.csv", "--out", "r.nc"],  # --family missing
        ["fit", "votes.csv", "--family", "beta", "--method", "mcmc", "--out", "r.nc"],
        ["fit", "votes.csv", "--family", "beta", "--mu", "high", "--out", "r.nc"],
        ["summary"],
        ["frobnicate"],
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(args)
        assert exc.value.code == 2
        assert "usage: attnmodel" in capsys.readouterr().err
    assert not (work / "r.nc").exists()


def test_every_subcommand_has_help(capsys):
    commands = ["demo", "fit", "summary", "users", "filter", "export", "simulate", "compare"]
    for command in commands:
        with pytest.raises(SystemExit) as exc:
            cli.main([command, "--help"])
        assert exc.value.code == 0
        assert f"usage: attnmodel {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and all(c in out for c in commands)


# ---------------------------------------------------------------------------
# outputs: no overwrite without --force; atomic writes


def test_outputs_are_not_overwritten_without_force(work, tmp_path, capsys):
    target = tmp_path / "users.csv"
    target.write_text("precious\n")
    proc = run("users", work / "em.nc", "--out", target, cwd=tmp_path)
    assert_user_error(proc.returncode, proc.stderr, f"'{target}' exists; pass --force")
    assert target.read_text() == "precious\n"
    # A result too, refused before the (slow) fit starts.
    code = cli.main(
        ["fit", str(work / "votes.csv"), "--family", "beta", "--out", str(work / "em.nc")]
    )
    assert_user_error(code, capsys.readouterr().err, "em.nc' exists; pass --force")
    assert cli.main(["-q", "users", str(work / "em.nc"), "--out", str(target), "--force"]) == 0
    assert pd.read_csv(target).shape[0] == 60


def test_interrupted_write_leaves_the_old_file(work, tmp_path, monkeypatch):
    target = tmp_path / "users.csv"
    target.write_text("old contents\n")
    real = pd.DataFrame.to_csv

    def crash(self, path, *args, **kwargs):
        # Write part of the table, then die as a killed process would.
        real(self.iloc[:3], path, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    code = cli.main(["-q", "users", str(work / "em.nc"), "--out", str(target), "--force"])
    assert code == 130
    assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.csv"]


# ---------------------------------------------------------------------------
# NUTS: one small fit, then summary, filter (the diagnostics gate) and compare


@pytest.fixture(scope="module")
def nuts_runs(work) -> dict[str, subprocess.CompletedProcess]:
    """The NUTS fit the tests below read, and beside it the same fit with -q."""
    # 2 x 100 draws: enough to run everything, too few for the ESS >= 400 gate.
    fit = ("fit", "votes.csv", "--family", "beta", "--mu-prior", "8,2", "--method", "nuts",
           "--draws", 100, "--tune", 200, "--chains", 2)  # fmt: skip
    return run_all(
        {"loud": (*fit, "--out", "nuts.nc"), "quiet": (*fit, "--out", "nuts_quiet.nc", "-q")},
        cwd=work,
    )


@pytest.fixture(scope="module")
def nuts(work, nuts_runs) -> Path:
    ok(nuts_runs["loud"])
    return work / "nuts.nc"


def test_quiet_silences_pymc_progress_lines(nuts_runs):
    # PyMC reports its progress as INFO records of the "pymc" logger: shown without -q
    # (so these are the lines it prints), not with it.
    loud, quiet = ok(nuts_runs["loud"]), ok(nuts_runs["quiet"])
    for line in ("chains in", "NUTS: [", "Sampling 2 chains for 200 tune and 100 draw"):
        assert line in loud.stderr
        assert line not in quiet.stderr, quiet.stderr
    assert quiet.stdout.startswith("result: nuts_quiet.nc")


def test_quiet_pymc_restores_the_logger_level():
    logger = logging.getLogger("pymc")
    before = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        with commands._quiet_pymc(True):
            assert logger.getEffectiveLevel() == logging.WARNING
        assert logger.level == logging.DEBUG
        with commands._quiet_pymc(False):
            assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(before)


def test_nuts_summary_filter_gate_and_compare(work, nuts, capsys, monkeypatch):
    res = run_all(
        {
            "forced": ("filter", nuts, "votes.csv", "--ignore-diagnostics",
                       "--decisions-out", "nuts_decisions.csv", "--out", "nuts_kept.csv"),
            "compare": ("compare", "em.nc", nuts, "--out", "cmp"),
        },
        cwd=work,
    )  # fmt: skip
    assert cli.main(["summary", str(nuts)]) == 0
    text = capsys.readouterr().out
    assert "method: NUTS" in text and "max r_hat" in text and "divergences" in text
    assert "parameters (posterior mean [HDI]):" in text
    s = main_json(capsys, "summary", nuts)
    assert s["method"] == "nuts" and set(s["params_hdi"]) == {"alpha", "beta"}

    # Too few draws for the gate: refused, naming the failed check, nothing written.
    monkeypatch.chdir(work)
    code = cli.main([str(a) for a in ("filter", nuts, "votes.csv", "--out", "gated.csv")])
    err = capsys.readouterr().err
    assert_user_error(code, err, "ess_bulk")
    assert "--ignore-diagnostics" in err and not (work / "gated.csv").exists()
    forced = ok(res["forced"])
    assert "ess_bulk" in forced.stdout and "FAILED" in forced.stdout
    assert "warning" in forced.stderr  # filtered anyway, said so
    decisions = pd.read_csv(work / "nuts_decisions.csv")
    kept = pd.read_csv(work / "nuts_kept.csv")
    assert set(decisions["decision"]) <= {"kept", "dropped", "undetermined", "too_little_evidence"}
    assert set(kept["user"]) == set(decisions.loc[decisions["decision"] == "kept", "user"])

    comp = ok(res["compare"])
    assert "EM vs NUTS" in comp.stdout
    names = sorted(p.name for p in (work / "cmp").iterdir())
    assert names == ["comparison.txt", "em_vs_nuts.png", "params.csv", "users.csv"]
    params = pd.read_csv(work / "cmp" / "params.csv")
    assert {"alpha", "beta"} <= set(params["parameter"])
    assert len(pd.read_csv(work / "cmp" / "users.csv")) == 60


def test_help_loads_no_numerical_library():
    # The package's top level imports numpy and pandas; with it left out, what
    # `attnmodel --help` loads is the command line's own: argparse only.
    package = Path(cli.__file__).resolve().parents[1]
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('attnmodel'); pkg.__path__ = [sys.argv[1]]\n"
        "pkg.__version__ = '0'; sys.modules['attnmodel'] = pkg\n"
        "from attnmodel.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0\n"
        "heavy = {'numpy', 'pandas', 'xarray', 'scipy', 'matplotlib', 'pymc', 'pytensor'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(package)], capture_output=True, text=True, check=True
    )
    assert "usage: attnmodel" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_mu_structure_and_leaderboard(tmp_path, capsys):
    # Three models in a triangle; fit under auto (printed), then Bradley-Terry and its board.
    votes = tmp_path / "tri.csv"
    assert (
        cli.main(
            [
                "--quiet",
                "simulate",
                "--family",
                "beta",
                "--params",
                "alpha=4",
                "beta=1.5",
                "--users",
                "60",
                "--votes",
                "10..20",
                "--mu",
                "a vs b=0.8",
                "b vs c=0.7",
                "a vs c=0.85",
                "--seed",
                "3",
                "--out",
                str(votes),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["--quiet", "fit", str(votes), "--family", "beta",
                     "--out", str(tmp_path / "auto.nc")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "mu structure: independent (chosen from the data: 3 pairs with a median of" in out
    assert cli.main(["--quiet", "fit", str(votes), "--family", "beta", "--mu-structure",
                     "bradley_terry", "--out", str(tmp_path / "bt.nc")]) == 0  # fmt: skip
    assert "mu structure: bradley_terry (chosen by the caller)" in capsys.readouterr().out
    plot = tmp_path / "board.png"
    assert cli.main(["--quiet", "leaderboard", str(tmp_path / "bt.nc"), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    lines = [ln.split() for ln in text.splitlines()[2:5]]
    # Ranked a, b, c: the simulated order (a beats b beats c).
    assert [ln[1] for ln in lines] == ["a", "b", "c"], text
    assert "plain BT" in text and plot.stat().st_size > 0
    assert cli.main(["leaderboard", str(tmp_path / "bt.nc"), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in board["models"]}
    assert abs(sum(r["strength"] for r in rows.values())) < 1e-9
    # Careless votes dilute plain Bradley-Terry: its spread is the smaller one.
    assert rows["a"]["strength"] - rows["c"]["strength"] > rows["a"]["plain"] - rows["c"]["plain"]
    for r in rows.values():
        assert r["lower"] < r["strength"] < r["upper"]
    # A result of another structure has no leaderboard: one line naming the option.
    assert cli.main(["--quiet", "leaderboard", str(tmp_path / "auto.nc")]) == 1
    err = capsys.readouterr().err
    assert "mu_structure='bradley_terry'" in err and "Traceback" not in err
    # The plot is not overwritten without --force.
    assert cli.main(["--quiet", "leaderboard", str(tmp_path / "bt.nc"), "--plot", str(plot)]) == 1
    assert "exists" in capsys.readouterr().err
    # Bradley-Terry with known mu is a user error, named.
    assert (
        cli.main(
            [
                "--quiet",
                "fit",
                str(votes),
                "--family",
                "beta",
                "--mu",
                "0.8",
                "--mu-structure",
                "bradley_terry",
                "--out",
                str(tmp_path / "x.nc"),
            ]
        )
        == 1
    )
    assert "--mu-structure bradley_terry" in capsys.readouterr().err
