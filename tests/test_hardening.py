"""Bad input, faults and pipes: every case ends in a clear error or a correct result.

Each test here is one case of the catalogue of bad inputs and faults: a silent
wrong answer or a lost file before, a one-line error (or a correct result)
now. Command-line cases run in-process through :func:`attnmodel.cli.main`
unless they need a real pipe or signal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attnmodel.cli.parser import COMPARE_FILES
from attnmodel.errors import ArgumentError
from attnmodel.filtering import check_rule_args

CLI_NAMES = {"rule": "--rule", "top": "--top", "threshold": "--threshold", "prob": "--prob"}


# ---------------------------------------------------------------------------
# rule arguments: one check, before any work


def test_an_option_of_another_rule_selects_that_rule():
    assert check_rule_args(None, top=0.3) == ("top", {"top": 0.3})
    assert check_rule_args(None, threshold=0.4) == ("map", {"threshold": 0.4})
    assert check_rule_args(None, quantile=0.2) == ("quantile", {"quantile": 0.2, "by": "map"})
    assert check_rule_args(None) == ("prob", {"prob": 0.95, "mcse_k": 2.0, "min_evidence": 1.0})


@pytest.mark.parametrize(
    ("rule", "options", "names", "message"),
    [
        ("prob", {"top": 0.3}, None, "top belongs to rule='top', not rule='prob'"),
        ("prob", {"top": 0.3}, CLI_NAMES, "--top belongs to --rule top, not --rule prob"),
        ("map", {"threshold": 0.5, "prob": 0.9}, CLI_NAMES, "--prob belongs to --rule prob"),
        (None, {"top": 0.3, "threshold": 0.5}, CLI_NAMES, "--top, --threshold belong to"),
        ("top", {}, CLI_NAMES, "--rule top needs --top FRACTION"),
        ("top", {"top": 1.5}, CLI_NAMES, "--top 1.5: must lie in (0, 1]"),
        ("top", {"top": 1.5}, None, "top=1.5: must lie in (0, 1]"),
    ],
)
def test_rule_arguments_are_refused_naming_the_argument(rule, options, names, message):
    with pytest.raises(ArgumentError) as info:
        check_rule_args(rule, names=names, **options)
    assert str(info.value).startswith(message)


# ---------------------------------------------------------------------------
# the command line on a small simulated log

PAIRS = ("gpt vs llama=0.9", "claude vs alpaca=0.7")


def cli_run(capsys, *args) -> tuple[int, str, str]:
    """``attnmodel ARGS`` in-process: exit status, stdout, stderr."""
    from attnmodel import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(code: int, err: str, culprit: str) -> str:
    """The one error line of a failed command, checked to name ``culprit``."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("attnmodel: error: ")]
    assert len(lines) == 1, err
    assert culprit in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from attnmodel import cli

    d = tmp_path_factory.mktemp("hardening")
    assert cli.main([
        "-q", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5", "--users", "60",
        "--votes", "10..30", "--mu", *PAIRS, "--seed", "4", "--out", str(d / "votes.csv"),
    ]) == 0  # fmt: skip
    assert cli.main([
        "-q", "fit", str(d / "votes.csv"), "--family", "beta", "--mu-prior", "8,2",
        "--out", str(d / "em.nc"),
    ]) == 0  # fmt: skip
    return d


def test_filter_top_without_rule_applies_rule_top(work, tmp_path, capsys):
    code, out, err = cli_run(
        capsys, "filter", work / "em.nc", work / "votes.csv", "--top", 0.3,
        "--out", tmp_path / "kept.csv",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("rule top (top=0.3")
    kept = pd.read_csv(tmp_path / "kept.csv")
    assert kept["user"].nunique() == 18  # 30% of 60 users (no ties in eta_mean)


def test_filter_option_of_another_rule_is_refused_before_reading(work, tmp_path, capsys):
    code, _, err = cli_run(
        capsys, "filter", work / "em.nc", work / "votes.csv", "--rule", "prob", "--top", 0.3,
        "--out", tmp_path / "kept.csv",
    )  # fmt: skip
    user_error(code, err, "--top belongs to --rule top, not --rule prob")
    assert "reading" not in err  # refused before any file was read
    assert not (tmp_path / "kept.csv").exists()


# ---------------------------------------------------------------------------
# the data a result was fitted to


@pytest.fixture(scope="module")
def log(work) -> pd.DataFrame:
    return pd.read_csv(work / "votes.csv", dtype={"user": str})


def _flip(votes: pd.DataFrame) -> pd.DataFrame:
    out = votes.copy()
    out["winner"] = out["winner"].map({"model_a": "model_b", "model_b": "model_a"})
    return out


def test_fingerprint_ignores_row_order_and_sees_every_count(log):
    from attnmodel.data.counts import counts_fingerprint
    from attnmodel.data.votes import VoteData

    def fp(frame):
        d = VoteData.from_frame(frame)
        return counts_fingerprint(d.counts, d.users, d.pairs)

    base = fp(log)
    assert fp(log.sample(frac=1.0, random_state=1)) == base
    assert fp(pd.concat([log, log])) != base
    one_vote_moved = log.copy()
    one_vote_moved.loc[0, "user"] = "u59" if log.loc[0, "user"] != "u59" else "u58"
    assert fp(one_vote_moved) != base
    one_vote_flipped = log.copy()
    one_vote_flipped.loc[[0], :] = _flip(log.loc[[0]])
    assert fp(one_vote_flipped) != base


@pytest.mark.parametrize("change", ["doubled", "flipped one user"])
def test_filter_refuses_other_data_naming_what_differs(log, change):
    from attnmodel import filter_users, fit
    from attnmodel.data.votes import VoteData
    from attnmodel.errors import DataMismatchError

    data = VoteData.from_frame(log)
    tree = fit(data, "beta")
    if change == "doubled":
        other, culprit = pd.concat([log, log]), "votes per user differ for 60 user(s)"
    else:
        flipped = log["user"] == "u03"
        other = log.copy()
        other.loc[flipped] = _flip(log.loc[flipped])
        culprit = "pair 'gpt vs llama': the fit has 605 votes (400 for the stronger model)"
    other = VoteData.from_frame(other)
    with pytest.raises(DataMismatchError, match="allow_other_data=True") as info:
        filter_users(tree, other, rule="top", top=0.5)
    assert culprit in str(info.value)
    # The same data passes, and the override filters the other data.
    assert filter_users(tree, data, rule="top", top=0.5).counts["users_kept"] == 30
    forced = filter_users(tree, other, rule="top", top=0.5, allow_other_data=True)
    assert forced.counts["users_kept"] >= 30


def test_cli_filter_refuses_doubled_votes(work, log, tmp_path, capsys):
    pd.concat([log, log]).to_csv(tmp_path / "doubled.csv", index=False)
    args = ("filter", work / "em.nc", tmp_path / "doubled.csv", "--top", 0.5)
    code, _, err = cli_run(capsys, *args, "--out", tmp_path / "k.csv")
    line = user_error(code, err, "doubled.csv' are not those")
    assert "--allow-other-data" in line and "votes per user differ" in line
    assert not (tmp_path / "k.csv").exists()
    code, _, err = cli_run(capsys, *args, "--allow-other-data", "--out", tmp_path / "k.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "k.csv")["user"].nunique() == 30


# ---------------------------------------------------------------------------
# result files carry a checksum of their content


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_checksum_survives_the_round_trip(work, tmp_path, suffix):
    from attnmodel.results import load, save
    from attnmodel.results.io import CHECKSUM_ATTR, content_checksum

    tree = load(work / "em.nc")
    assert CHECKSUM_ATTR not in tree.attrs  # checked on load, then left out
    with xr.open_datatree(work / "em.nc", engine="h5netcdf") as raw:
        written = raw.attrs[CHECKSUM_ATTR]
    assert written == content_checksum(tree)
    save(tree, tmp_path / f"again{suffix}")
    again = load(tmp_path / f"again{suffix}")
    assert content_checksum(again) == written
    changed = again.copy(deep=True)
    changed["attentiveness"]["eta_mean"].values[0] += 1e-12
    assert content_checksum(changed) != content_checksum(again)


def test_a_damaged_result_is_refused_naming_the_file(work, tmp_path, capsys):
    from attnmodel.errors import ResultFileError
    from attnmodel.results import load

    raw = bytearray((work / "em.nc").read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 256] = bytes(256)  # zeroed bytes inside the data
    bad = tmp_path / "damaged.nc"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ResultFileError, match="damaged.nc.* do not match the checksum"):
        load(bad)
    code, _, err = cli_run(capsys, "summary", bad)
    user_error(code, err, "damaged.nc': its bytes do not match the checksum")


def test_damaged_hdf5_metadata_is_refused_before_hdf5_reads_it(work, tmp_path):
    """256 zero bytes at offset 4096 (HDF5 metadata) made h5py spin for ever.

    Run in a child process with a time limit: a regression is a hang, which
    the limit turns into a failure instead of a stuck suite.
    """
    raw = bytearray((work / "em.nc").read_bytes())
    raw[4096 : 4096 + 256] = bytes(256)
    bad = tmp_path / "metadata.nc"
    bad.write_bytes(bytes(raw))
    code = (
        "import sys\n"
        "from attnmodel.errors import ResultFileError\n"
        "from attnmodel.results import load\n"
        "try:\n"
        "    load(sys.argv[1])\n"
        "except ResultFileError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "metadata.nc': its bytes do not match the checksum" in done.stdout


def test_result_files_end_with_their_byte_checksum(work, tmp_path):
    """The last line is the SHA-256 of every byte before it (recomputed here with hashlib)."""
    import hashlib

    from attnmodel.errors import ResultFileError
    from attnmodel.results import load
    from attnmodel.results.io import FILE_CHECKSUM_TAG

    raw = (work / "em.nc").read_bytes()
    body, _, last = raw[:-1].rpartition(FILE_CHECKSUM_TAG.strip())
    assert body.endswith(b"\n") and raw.endswith(b"\n")
    assert last.decode() == hashlib.sha256(body[:-1]).hexdigest()
    # a damaged checksum line is a mismatch, not a file without one
    bad = tmp_path / "line.nc"
    bad.write_bytes(raw[:-10] + b"0" * 9 + b"\n")
    with pytest.raises(ResultFileError, match="line.nc.* do not match the checksum"):
        load(bad)
    # without the line (a file from before it existed) the content checksum still
    # catches damage inside the data
    plain = bytearray(body[:-1])
    middle = len(plain) // 2
    plain[middle : middle + 256] = bytes(256)
    old = tmp_path / "old.nc"
    old.write_bytes(bytes(plain))
    with pytest.raises(ResultFileError, match="old.nc.*its content does not match the checksum"):
        load(old)
    old.write_bytes(body[:-1])
    assert load(old).attrs == load(work / "em.nc").attrs


# ---------------------------------------------------------------------------
# tables


def test_csv_with_a_duplicate_column_is_refused(log, tmp_path, capsys):
    from attnmodel.data.votes import VoteData
    from attnmodel.errors import VoteDataError

    path = tmp_path / "two_winners.csv"
    twice = pd.concat(
        [log[["user", "model_a", "model_b", "winner"]], _flip(log)[["winner"]]], axis=1
    )
    twice.to_csv(path, index=False)
    with pytest.raises(VoteDataError, match="column 'winner' appears 2 times"):
        VoteData.from_file(path)
    code, _, err = cli_run(capsys, "fit", path, "--family", "beta", "--out", tmp_path / "r.nc")
    user_error(code, err, "two_winners.csv': column 'winner' appears 2 times in the header")
    assert not (tmp_path / "r.nc").exists()


def test_an_output_that_is_an_input_is_refused_even_with_force(work, log, tmp_path, capsys):
    votes = tmp_path / "votes.csv"
    log.to_csv(votes, index=False)
    before = votes.read_bytes()
    (tmp_path / "link.csv").symlink_to(votes)
    for out in (votes, tmp_path / "link.csv", tmp_path / "sub" / ".." / "votes.csv"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = cli_run(
            capsys, "filter", work / "em.nc", votes, "--top", 0.5, "--out", out, "--force"
        )
        user_error(code, err, "is the input")
        assert "reading" not in err
    assert votes.read_bytes() == before
    # The same for the file of decisions, and for `users` writing over its result.
    code, _, err = cli_run(
        capsys, "filter", work / "em.nc", votes, "--top", 0.5, "--out", tmp_path / "k.csv",
        "--decisions-out", votes, "--force",
    )  # fmt: skip
    user_error(code, err, "is the input")
    assert votes.read_bytes() == before and not (tmp_path / "k.csv").exists()


# ---------------------------------------------------------------------------
# degenerate fits


def test_fit_warnings_reads_the_box_on_the_right_scale():
    from attnmodel.data.votes import VoteData
    from attnmodel.model.checks import fit_warnings
    from attnmodel.model.families import get_family

    beta = get_family("beta")  # box without a grid: [0.1, 50] for both shapes
    rng = np.random.default_rng(0)
    n = rng.integers(5, 30, size=200)
    counts = VoteData.from_counts(n, rng.binomial(n, 0.7)).counts
    assert fit_warnings(beta, {"alpha": 3.0, "beta": 5.0}, counts) == []
    # Shapes are measured on the log scale: 0.125 is 3.6% of log(500) from 0.1, not "at" it,
    # while 0.1025 (0.4%) and 49.9 (0.03%) are.
    assert fit_warnings(beta, {"alpha": 0.125, "beta": 45.0}, counts) == []
    notes = fit_warnings(beta, {"alpha": 0.1025, "beta": 49.9}, counts)
    assert [note.split(" is at the ")[1][:5] for note in notes] == ["lower", "upper"]
    assert notes[0].startswith("alpha = 0.1025") and notes[1].startswith("beta = 49.9")
    two_point = get_family("two_point")  # eta_low, eta_high in [0, 1] measured linearly
    ok = {"q_low": 0.3, "eta_low": 0.02, "eta_high": 0.9}
    assert fit_warnings(two_point, ok, counts) == []
    assert "eta_high = 0.995" in fit_warnings(two_point, {**ok, "eta_high": 0.995}, counts)[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("one user", ["only 1 user(s)"]),
        ("one vote", ["only 1 user(s)", "no user gave more than one vote", "every vote went"]),
        # Every vote for the stronger model pushes P_eta towards eta = 1; the default
        # prior keeps beta above the box's floor 0.1, and the data warning stays.
        ("200 identical votes", ["every vote went to the stronger model"]),
    ],
)
def test_degenerate_fits_warn_store_and_show_it(case, expected, log, tmp_path, capsys):
    from attnmodel import fit
    from attnmodel.data.votes import VoteData
    from attnmodel.errors import BoundaryWarning
    from attnmodel.results import save, summarize

    frame = {
        "one user": log[log["user"] == "u00"],
        "one vote": log.iloc[:1],
        "200 identical votes": log.iloc[[0] * 200].assign(user=[f"v{i % 20}" for i in range(200)]),
    }[case]
    with pytest.warns(BoundaryWarning) as caught:
        tree = fit(VoteData.from_frame(frame), "beta")
    stored = json.loads(tree.attrs["fit_warnings"])
    assert [str(w.message) for w in caught] == [f"degenerate fit of beta: {s}" for s in stored]
    for text in expected:
        assert any(note.startswith(text) for note in stored), stored
    # The default prior keeps the shapes off the box where the votes do not push them
    # there (with the flat prior of the paper they ended on it).
    at_box = [note for note in stored if " is at the " in note]
    assert not at_box, stored
    assert summarize(tree)["warnings"] == stored
    save(tree, tmp_path / "r.nc")
    code, out, err = cli_run(capsys, "summary", tmp_path / "r.nc")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("warning: ")] == [
        f"warning: {note}" for note in stored
    ]


def test_cli_fit_of_a_degenerate_log_prints_warning_lines(log, tmp_path, capsys):
    log.iloc[[0] * 200].assign(user=[f"v{i % 20}" for i in range(200)]).to_csv(
        tmp_path / "same.csv", index=False
    )
    code, _, err = cli_run(capsys, "fit", tmp_path / "same.csv", "--family", "beta",
                           "--out", tmp_path / "r.nc")  # fmt: skip
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("attnmodel: warning: ")]
    assert any("every vote went to the stronger model" in line for line in lines), err
    # Each warning on a line of its own, not in the middle of the progress line.
    assert len(lines) == err.count("attnmodel: warning: ") >= 1, err
    assert "fitting beta by MAP-EM...\n" in err
    assert "fitting beta by MAP-EM... done in " in err


def test_a_healthy_fit_has_no_warnings(work):
    from attnmodel.results import load, summarize

    assert summarize(load(work / "em.nc"))["warnings"] == []


# ---------------------------------------------------------------------------
# files: permissions, full disks, read-only folders


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_written_files_follow_the_umask_and_keep_an_existing_mode(work, tmp_path, umask_027):
    from attnmodel.data.io import write_table
    from attnmodel.results import load, save

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    frame = pd.DataFrame({"a": [1, 2]})
    write_table(frame, tmp_path / "new.csv")
    assert mode(tmp_path / "new.csv") == 0o640  # 0o666 less the umask, as open() gives
    (tmp_path / "old.csv").write_text("x\n")
    os.chmod(tmp_path / "old.csv", 0o604)
    write_table(frame, tmp_path / "old.csv", force=True)
    assert mode(tmp_path / "old.csv") == 0o604  # a replaced file keeps its mode
    tree = load(work / "em.nc")
    save(tree, tmp_path / "r.nc")
    save(tree, tmp_path / "r.zarr")
    assert mode(tmp_path / "r.nc") == 0o640
    assert mode(tmp_path / "r.zarr") == 0o750


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a small tmpfs (skipped where mounting is not permitted, e.g. without root)."""
    mounted = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def console(*args, cwd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attnmodel", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(work, mount_tmpfs):
    disk = mount_tmpfs("full", "size=64k")
    runs = {
        "csv": console("users", work / "em.nc", "--out", disk / "users.jsonl", cwd=work),
        "nc": console("fit", "votes.csv", "--family", "beta", "--out", disk / "r.nc", cwd=work),
        "log": console(
            "simulate", "--family", "beta", "--params", "alpha=3", "beta=5", "--users", 3000,
            "--votes", 20, "--mu", 0.8, "--out", disk / "big.csv", cwd=work,
        ),
    }  # fmt: skip
    for name, proc in runs.items():
        if name == "csv" and proc.returncode == 0:
            continue  # 60 users fit in 64k
        line = user_error(proc.returncode, proc.stderr, "could not be written (No space left")
        assert str(disk) in line, name
    assert sorted(p.name for p in disk.iterdir()) in ([], ["users.jsonl"])


def test_a_read_only_folder_is_refused_before_any_work(work, mount_tmpfs):
    folder = mount_tmpfs("ro", "ro,size=64k")
    proc = console("fit", "votes.csv", "--family", "beta", "--out", folder / "r.nc", cwd=work)
    user_error(proc.returncode, proc.stderr, f"cannot write in the folder {str(folder)!r}")
    assert "reading" not in proc.stderr


# ---------------------------------------------------------------------------
# pipes and Ctrl-C


def test_summary_into_a_closed_pipe_stops_quietly(work):
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnmodel", "summary", "em.nc"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc.stdout.close()  # the reader has gone before the first line (`| head -0`)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_compare_into_a_closed_pipe_still_writes_its_files(work, log, tmp_path, capsys):
    from attnmodel import cli
    from attnmodel.data.votes import VoteData
    from attnmodel.inference.em import fit_em
    from attnmodel.results import save
    from attnmodel.results.em import em_to_datatree
    from tests.nuts_trees import nuts_like

    em = fit_em(VoteData.from_frame(log), "beta")
    em_tree = em_to_datatree(em, n_draws=500, seed=4)
    save(em_tree, tmp_path / "em.nc")
    save(nuts_like(em, em_tree, seed=0), tmp_path / "nuts.nc")

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    capsys.readouterr()
    with contextlib.redirect_stdout(ClosedPipe()):
        code = cli.main(["-q", "compare", str(tmp_path / "em.nc"), str(tmp_path / "nuts.nc"),
                         "--out", str(tmp_path / "cmp")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert written == sorted(COMPARE_FILES)


def test_compare_refuses_results_of_different_votes(work, log, tmp_path, capsys):
    from attnmodel.data.votes import VoteData
    from attnmodel.inference.em import fit_em
    from attnmodel.results import save
    from attnmodel.results.em import em_to_datatree
    from tests.nuts_trees import nuts_like

    em = fit_em(VoteData.from_frame(log), "beta")
    other = fit_em(VoteData.from_frame(pd.concat([log, log])), "beta")
    save(em_to_datatree(em, n_draws=500), tmp_path / "em.nc")
    other_tree = em_to_datatree(other, n_draws=500)
    save(nuts_like(other, other_tree, seed=0), tmp_path / "nuts.nc")
    code, _, err = cli_run(capsys, "compare", tmp_path / "em.nc", tmp_path / "nuts.nc",
                           "--out", tmp_path / "cmp")  # fmt: skip
    line = user_error(code, err, "nuts.nc' were fitted to different votes")
    assert "--allow-other-data" in line
    assert not (tmp_path / "cmp").exists()


def test_ctrl_c_while_the_libraries_load_exits_130_quietly(work, capsys, monkeypatch):
    import importlib.abc

    from attnmodel import cli

    class Interrupt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "attnmodel.cli.commands":
                raise KeyboardInterrupt  # as Ctrl-C does in the middle of an import
            return None

    monkeypatch.delitem(sys.modules, "attnmodel.cli.commands")
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    capsys.readouterr()
    assert cli.main(["summary", str(work / "em.nc")]) == 130
    assert capsys.readouterr().err == "attnmodel: interrupted\n"


# ---------------------------------------------------------------------------
# messages that name what the user typed


def test_a_negative_looking_option_value_is_read_as_the_value(work, tmp_path, capsys):
    code, _, err = cli_run(capsys, "fit", work / "votes.csv", "--family", "beta",
                           "--mu-prior", "-1,2", "--out", tmp_path / "r.nc")  # fmt: skip
    user_error(code, err, "--mu-prior '-1,2': mu prior shapes must be >= 1")


@pytest.mark.parametrize(
    ("components", "culprit"),
    [
        (1000, "--components 1000: the votes have 60 users with 60 distinct count rows"),
        (0, "--components must be >= 1, got 0"),
    ],
)
def test_components_are_refused_naming_the_option(work, tmp_path, capsys, components, culprit):
    code, _, err = cli_run(capsys, "fit", work / "votes.csv", "--family", "beta_mixture",
                           "--components", components, "--out", tmp_path / "r.nc")  # fmt: skip
    user_error(code, err, culprit)
    assert not (tmp_path / "r.nc").exists()


def test_fit_says_how_many_ties_it_dropped(log, tmp_path, capsys):
    with_ties = log.copy()
    with_ties.loc[:9, "winner"] = "tie"
    with_ties.to_csv(tmp_path / "ties.csv", index=False)
    code, _, err = cli_run(capsys, "fit", tmp_path / "ties.csv", "--family", "beta",
                           "--out", tmp_path / "r.nc")  # fmt: skip
    assert code == 0, err
    assert f"{len(log) - 10} votes from 60 users on 2 pairs; 10 ties dropped" in err


def test_export_messages_name_the_value_and_the_missing_column_first(log):
    from attnmodel.errors import VoteDataError
    from attnmodel.export import to_dpo

    texts = log.assign(prompt="q", response_a="a", response_b="b")
    with pytest.raises(VoteDataError) as info:
        to_dpo(texts.assign(winner=["B"] + ["model_a"] * (len(log) - 1)))
    assert str(info.value).endswith("value 'B' is not a preference ('model_a' or 'model_b')")
    with pytest.raises(VoteDataError, match="drop ties first"):
        to_dpo(texts.assign(winner=["tie"] + ["model_a"] * (len(log) - 1)))
    with pytest.raises(VoteDataError, match=r"row 0: value 2 is not a 0/1 label$"):
        to_dpo(texts.assign(z=[2] + [1] * (len(log) - 1)), z="z")
    # A log without texts: the missing column is named, not the first tie.
    with pytest.raises(VoteDataError, match="missing column 'prompt'"):
        to_dpo(log.assign(winner=["tie"] + ["model_a"] * (len(log) - 1)))


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_ctrl_c_during_nuts_exits_130_without_a_result(work, tmp_path, capsys, monkeypatch):
    import signal
    import time

    import pymc

    def interrupted_sample(**kwargs):
        # What PyMC does at Ctrl-C: catch it, stop, and fail for lack of draws.
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass
        raise ValueError("Not enough samples to build a trace.")

    monkeypatch.setattr(pymc, "sample", interrupted_sample)
    code, out, err = cli_run(capsys, "-q", "fit", work / "votes.csv", "--family", "beta",
                             "--method", "nuts", "--out", tmp_path / "n.nc")  # fmt: skip
    assert code == 130, err
    assert err == "attnmodel: interrupted\n" and out == ""
    assert list(tmp_path.iterdir()) == []
