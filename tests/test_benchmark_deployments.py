"""benchmarks.deployments runs (one tiny round): its figures are for people, not asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.daemon import ROOT


def test_deployments_benchmark_runs_one_tiny_round() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.deployments", "--rounds", "1", "--seconds", "0.5",
                           "--rate", "100"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "deploying / steady:" in proc.stdout and "autoscaled / steady:" in proc.stdout
