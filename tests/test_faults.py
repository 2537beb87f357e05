"""Faults from outside: Ctrl-C, a killed process, a disk that fills while writing.

Each test runs the command line in a separate process and does to it what a
terminal, the kernel or another program would: a SIGINT to the process
group, a SIGKILL in the middle of a write, a disk filled during a write.
What must hold afterwards: a prompt exit with one line, no process left
behind, and every output either absent, the previous complete file, or the
new complete one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PAIRS = ("gpt vs llama=0.9", "claude vs alpaca=0.7")


def attnmodel_args(*args) -> list[str]:
    return [sys.executable, "-m", "attnmodel", *map(str, args)]


@pytest.fixture(scope="module")
def votes(tmp_path_factory) -> Path:
    """60 simulated users' votes in a CSV."""
    from attnmodel import cli

    d = tmp_path_factory.mktemp("faults")
    assert cli.main([
        "-q", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5", "--users", "60",
        "--votes", "10..30", "--mu", *PAIRS, "--seed", "4", "--out", str(d / "votes.csv"),
    ]) == 0  # fmt: skip
    return d / "votes.csv"


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still running (zombies count as gone)."""
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


# ---------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.parametrize("to", ["group", "main"])
@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_ctrl_c_during_nuts_stops_the_workers_promptly(votes, tmp_path, to):
    """Ctrl-C in a terminal reaches the whole process group; ``kill -INT`` the main process."""
    # Long enough that sampling is still going when the signal comes: 10^6 draws
    # per chain take minutes on these machines.
    proc = subprocess.Popen(
        attnmodel_args("-q", "fit", votes, "--family", "beta", "--method", "nuts",
                       "--draws", 1_000_000, "--tune", 200, "--out", tmp_path / "n.nc"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )  # fmt: skip
    main = psutil.Process(proc.pid)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        # Sampling has begun once a chain worker has spent a second of CPU.
        while time.monotonic() < deadline and proc.poll() is None:
            workers = main.children(recursive=True)
            try:
                if any(w.cpu_times().user >= 1.0 for w in workers):
                    break
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert workers, "no chain worker was started"
        workers = main.children(recursive=True)
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        # PyMC gives its workers 2 s to stop before terminating them; 20 s
        # leaves room for a loaded machine.
        out, err = proc.communicate(timeout=20)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            for p in [main, *main.children(recursive=True)]:
                p.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert (out, err) == ("", "attnmodel: interrupted\n")
    assert waited < 20
    time.sleep(0.5)
    left = alive(workers)
    for p in left:
        p.kill()
    assert left == [], "chain workers outlived the command"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


#: Runs the console script's code with Ctrl-C arriving while module
#: ``INTERRUPT_IMPORT`` is being imported.
INTERRUPTED_IMPORT = """
import importlib.abc, os, sys

class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["INTERRUPT_IMPORT"]:
            raise KeyboardInterrupt  # as Ctrl-C does in the middle of an import
        return None

sys.meta_path.insert(0, Interrupt())

from attnmodel.__main__ import main

sys.exit(main())
"""


@pytest.mark.parametrize("module", ["attnmodel.cli", "attnmodel.cli.parser", "argparse"])
def test_ctrl_c_while_the_command_line_is_imported_is_one_line(module):
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT, "summary", "r.nc"],
        env={**os.environ, "INTERRUPT_IMPORT": module}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "attnmodel: interrupted\n")


# ---------------------------------------------------------------------------
# SIGKILL while writing

#: Runs the command line with a SIGKILL of its own at one point of writing
#: ``KILL_TARGET`` (``KILL_AT``): right after the temporary file is created,
#: just before or just after it replaces the target.
KILLER = """
import os, signal, sys, tempfile
from pathlib import Path

at, target = os.environ["KILL_AT"], Path(os.environ["KILL_TARGET"])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

mkstemp, replace = tempfile.mkstemp, os.replace

def killing_mkstemp(*args, **kwargs):
    made = mkstemp(*args, **kwargs)
    if Path(made[1]).name.startswith(f".{target.name}."):
        die()
    return made

def killing_replace(src, dst, **kwargs):
    if Path(dst) == target and at == "before-replace":
        die()
    replace(src, dst, **kwargs)
    if Path(dst) == target:
        die()

if at == "created":
    tempfile.mkstemp = killing_mkstemp
else:
    os.replace = killing_replace

from attnmodel.__main__ import main

sys.exit(main())
"""


def killed_at(at: str, target: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``attnmodel ARGS``, killed by SIGKILL at point ``at`` of writing ``target``."""
    env = {**os.environ, "KILL_AT": at, "KILL_TARGET": str(target)}
    return subprocess.run(
        [sys.executable, "-c", KILLER, *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def test_a_killed_fit_leaves_the_old_result_or_the_new_one(votes, tmp_path):
    from attnmodel.results.io import load

    target = tmp_path / "r.nc"
    fit = ("-q", "fit", votes, "--family", "beta", "--out", target, "--force")
    from attnmodel import cli

    # The first, uninterrupted fit runs in this process (as the votes fixture
    # does): only the killed runs and the one after them need a process of their own.
    assert cli.main([str(a) for a in fit]) == 0
    # Each run removes the temporary file a killed run left before it.
    # (A kill right after the temporary file is created is the CSV test's first case.)
    points = [("after-replace", "new", 0), ("before-replace", "old", 1)]
    for at, expected, left in points:
        old = target.read_bytes()
        proc = killed_at(at, target, *fit, cwd=tmp_path)
        assert proc.returncode == -signal.SIGKILL, (at, proc.stderr)
        if expected == "old":
            assert target.read_bytes() == old, at
        else:
            assert target.read_bytes() != old, at  # the settings record this run's timings
            load(target)  # complete: its content checksum is verified on load
        assert len(leftovers(tmp_path)) == left, at
    again = subprocess.run(attnmodel_args(*fit), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert leftovers(tmp_path) == []
    load(target)


def test_a_csv_killed_while_written_is_the_old_file_or_the_new_one(tmp_path):
    def simulate(seed: int, out: Path) -> list[str]:
        return ["-q", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5",
                "--users", 50_000, "--votes", 20, "--mu", 0.8, "--seed", seed,
                "--out", out, "--force"]  # fmt: skip

    from attnmodel import cli

    # The same two logs written without interruption, in this process (no
    # interpreter start each): 1 million rows, about a second of writing on these machines.
    for seed, name in [(1, "old.csv"), (2, "new.csv")]:
        assert cli.main([str(a) for a in simulate(seed, tmp_path / name)]) == 0
    old, new = (tmp_path / "old.csv").read_bytes(), (tmp_path / "new.csv").read_bytes()
    assert old != new
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "votes.csv"
    target.write_bytes(old)
    outcomes = []
    # Killed once the temporary file holds this fraction of the new one, or
    # ("target") as soon as the target is seen to change: a rename replaces it whole,
    # where a copy into it (not one rename) would be caught with a part of the file.
    for fraction in (0.0, 0.25, 0.5, 0.75, "target"):
        before = target.stat()
        proc = subprocess.Popen(attnmodel_args(*simulate(2, target)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            while proc.poll() is None:
                try:
                    if fraction == "target":
                        now = target.stat()
                        if (now.st_ino, now.st_size, now.st_mtime_ns) != (
                            before.st_ino,
                            before.st_size,
                            before.st_mtime_ns,
                        ):
                            break
                    else:
                        temps = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
                        if temps and max(p.stat().st_size for p in temps) >= fraction * len(new):
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.001)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        written = target.read_bytes()
        assert written in (old, new), f"a half-written file after a kill at {fraction}"
        outcomes.append((proc.returncode, written == new, len(leftovers(folder))))
    # At least one kill landed while the temporary file was being written.
    assert any(code == -signal.SIGKILL and not done for code, done, _ in outcomes), outcomes
    done = subprocess.run(attnmodel_args(*simulate(2, target)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == new
    assert leftovers(folder) == []


def dead_pid() -> int:
    """The id of a process that has ended (and been waited for)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_leftovers_of_ended_writers_are_removed_and_others_kept(tmp_path):
    from attnmodel.data.io import remove_leftovers, temporary_beside

    target = tmp_path / "r.nc"
    target.write_text("the previous result")
    dead, running = dead_pid(), os.getppid()
    (tmp_path / f".r.nc.{dead}-abcd1234.tmp").write_text("half")
    os.mkdir(tmp_path / f".r.nc.{dead}-efgh5678.tmp")  # a zarr store being written
    (tmp_path / f".r.nc.{running}-abcd1234.tmp").write_text("still being written")
    (tmp_path / ".r.nc.abcd1234.tmp").write_text("no process id: kept")
    (tmp_path / f".other.nc.{dead}-abcd1234.tmp").write_text("another target's")
    removed = remove_leftovers(target)
    assert sorted(p.name for p in removed) == [
        f".r.nc.{dead}-abcd1234.tmp", f".r.nc.{dead}-efgh5678.tmp",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        "r.nc", f".r.nc.{running}-abcd1234.tmp",
        ".r.nc.abcd1234.tmp", f".other.nc.{dead}-abcd1234.tmp",
    ])  # fmt: skip
    made = temporary_beside(target)
    assert made.name.startswith(f".r.nc.{os.getpid()}-") and made.name.endswith(".tmp")
    assert remove_leftovers(target) == []  # this process still runs


def test_a_store_moved_aside_by_a_killed_writer_is_put_back(tmp_path):
    from attnmodel.data.io import remove_leftovers

    target = tmp_path / "r.zarr"
    aside = tmp_path / f".r.zarr.{dead_pid()}-abcd1234.old"
    aside.mkdir()
    (aside / "zarr.json").write_text("{}")
    assert remove_leftovers(target) == []
    assert (target / "zarr.json").read_text() == "{}" and not aside.exists()
    # With the target in place, a copy moved aside is only a leftover.
    aside.mkdir()
    assert remove_leftovers(target) == [aside] and target.exists()


# ---------------------------------------------------------------------------
# a disk that fills during a write


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (skipped where mounting is not permitted, e.g. without root)."""
    point = tmp_path / "disk"
    point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield point
    subprocess.run(["umount", str(point)], check=False)


#: Runs the command line; right after it has checked the free space of
#: ``FILL_DISK`` (and found room), another writer fills that disk.
FILLER = """
import os, shutil, sys

disk = os.environ["FILL_DISK"]
disk_usage = shutil.disk_usage

def fill(path):
    usage = disk_usage(path)
    if os.path.realpath(path) == os.path.realpath(disk):
        with open(os.path.join(disk, "filler"), "ab") as f:
            try:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
            except OSError:
                pass
    return usage

shutil.disk_usage = fill

from attnmodel.__main__ import main

sys.exit(main())
"""


def test_a_disk_filled_during_a_result_write_is_one_line(votes, small_disk):
    target = small_disk / "r.nc"
    proc = subprocess.run(
        [sys.executable, "-c", FILLER, "-q", "fit", votes, "--family", "beta", "--out", target],
        env={**os.environ, "FILL_DISK": str(small_disk)}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = f"attnmodel: error: {str(target)!r}: could not be written (No space left on device)"
    assert proc.stderr == line + "\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
