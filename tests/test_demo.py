"""The README's main job runs as a console command."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_end_to_end():
    proc = subprocess.run(
        [sys.executable, "-m", "attnmodel", "demo", "--users", "150", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "converged: True" in out
    assert out.count("rule ") == 4
    # Every filter line reports a precision in [0, 100] % against the simulated truth.
    shares = [float(x) for x in re.findall(r"truly attentive among kept: ([\d.]+)%", out)]
    assert len(shares) == 4 and all(0 <= x <= 100 for x in shares)
    assert out.rstrip().endswith("Done.")


def test_usage_errors_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "attnmodel", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
