"""``rapid bench`` runs and reports what it says it does. Its figures are measurements and
are never compared with a bound here: only that each documented field is there and is a
plausible, non-zero measurement."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.daemon import ROOT, assert_no_leaks

pytestmark = pytest.mark.slow
PER_RUNTIME = ["cold_next_ms", "cold_response_ms", "small_p50_us", "small_p99_us", "small_cpu_us",
               "small_return_us", "large_p50_us", "large_p99_us", "large_cpu_us", "peak_rss_mib",
               "small_host_us", "small_host_cpu_us"]


def bench(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    home = tempfile.mkdtemp(prefix="rapid-test-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    env["HOME"] = home
    proc = subprocess.run([sys.executable, "-m", "rapid", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert_no_leaks(home, within=10.0)
    shutil.rmtree(home, ignore_errors=True)
    return proc


def test_bench_of_the_bundled_shell_runtime_against_a_command(tmp_path):
    out = tmp_path / "bench.json"
    other = f"{sys.executable} -m awslambdaric rapid_check.handler"
    proc = bench(["--runtime", "shell", "--against", other, "--rounds", "2", "-n", "8", "--large", "2",
                  "--json", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "machine:" in proc.stdout and "[B] / [A]" in proc.stdout
    assert "cold: spawn to first /next (ms)" in proc.stdout
    assert proc.stderr == ""  # the progress bar is for terminals only
    data = json.loads(out.read_text())
    assert data["tool"] == "rapid bench" and data["settings"]["rounds"] == 2
    assert data["settings"]["invokes"] == {"100 B": 8, "1 MB": 2}
    assert [r["label"] for r in data["runtimes"]][1] == other
    assert set(data["figures"]) == set(PER_RUNTIME)
    assert len(data["rounds"]) == 2 and all(len(row) == 2 for row in data["rounds"])
    for row in data["rounds"]:
        for figures in row:
            assert "error" not in figures, figures
            for key in PER_RUNTIME:
                assert figures[key] > 0, (key, figures)
            assert figures["cold_next_ms"] <= figures["cold_response_ms"]
            assert figures["small_p50_us"] <= figures["small_p99_us"]
            assert len(figures["small_samples_us"]) == 8 and len(figures["large_samples_us"]) == 2
    first, second = data["summary"]
    assert set(first["figures"]) == set(PER_RUNTIME) and first["errors"] == []
    ratio = second["ratios_to_first"]["small_p50_us"]
    assert ratio["min"] <= ratio["median"] <= ratio["max"] and ratio["min"] > 0


def test_a_runtime_that_fails_the_echo_is_reported_not_measured(tmp_path):
    bootstrap = tmp_path / "bootstrap"
    bootstrap.write_text("#!/bin/sh\nexit 3\n")
    bootstrap.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    proc = bench(["--rounds", "1", "-n", "2", "--", str(bootstrap)])
    assert proc.returncode == 1
    assert "error:" in proc.stdout and "Runtime.ExitError" in proc.stdout


def test_plot_draws_pngs_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    proc = bench(["--runtime", "shell", "--rounds", "1", "-n", "3", "--large", "1", "--plot", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cold-start.png", "latency-large.png", "latency-small.png"]
