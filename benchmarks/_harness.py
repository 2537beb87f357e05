"""What every benchmark script shares: run one case in a fresh process, read its memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that imports this checkout's attnmodel first."""
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, **extra, "PYTHONPATH": path}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def banner(name: str) -> str:
    """First line of a script's output: interpreter, cores, time."""
    return (
        f"{name}: python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )


def run_in_child(
    script: str, case: str, extra: tuple[str, ...] = (), timeout: float | None = None
) -> dict | None:
    """Run ``script --case case [extra]`` in a fresh interpreter; its last stdout line is JSON.

    A fresh process per case makes ``ru_maxrss`` that case's own peak. The
    child imports this checkout's attnmodel (:func:`checkout_env`), whatever
    the interpreter has installed.
    Returns None (after printing the child's stderr, or a note after
    ``timeout`` seconds) when the case failed or was stopped.
    """
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(script), "--case", case, *extra],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=checkout_env(),
        )
    except subprocess.TimeoutExpired:
        print(f"{case}: stopped after {timeout:g} s", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"{case}: FAILED\n{proc.stderr}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_header(head: str) -> None:
    """A results table's header line and its rule."""
    print(head)
    print("-" * len(head))
