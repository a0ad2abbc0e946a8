import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import capabilities
from tests.daemon import ECHO, make_function


@pytest.fixture
def echo_fn(tmp_path):
    return make_function(tmp_path / "echo", ECHO)


@pytest.fixture
def behave_fn(tmp_path):
    from tests.daemon import BEHAVE

    return make_function(tmp_path / "behave", BEHAVE)


@pytest.fixture
def public_dir():
    """A folder every uid can traverse (pytest's tmp_path sits under a 0700 folder, which an
    instance running under its own uid could not reach without a mount namespace)."""
    path = Path(tempfile.mkdtemp(prefix="rapid-test-public-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand what this worker exercised and probed to the controller,
    which prints the one summary below for the whole run."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["exercised"] = sorted(capabilities.EXERCISED)
        out["probed"] = sorted(capabilities.PROBED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the pytest-xdist controller: gather a finished worker's paths (see above)."""
    out = getattr(node, "workeroutput", {})
    capabilities.EXERCISED.update(out.get("exercised", ()))
    capabilities.PROBED.update(out.get("probed", ()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say once which isolation paths this run checked for real (coverage depends on the
    machine: root, cgroups, /usr/bin/python3), and why the others were not."""
    ran = [p for p in capabilities.ISOLATION_PATHS if p in capabilities.EXERCISED]
    not_ran = [p for p in capabilities.ISOLATION_PATHS if p not in capabilities.EXERCISED]
    if not ran and not capabilities.PROBED:
        return  # a run that selected no isolation test
    terminalreporter.section("isolation paths")
    terminalreporter.write_line("exercised: " + (", ".join(ran) or "none"))
    if not_ran:
        terminalreporter.write_line("not exercised: " + ", ".join(not_ran))
    for name in sorted(capabilities.PROBED):
        why = capabilities.missing(name)
        if why is not None:
            terminalreporter.write_line(f"missing capability {name}: {why}")
