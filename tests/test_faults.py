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
