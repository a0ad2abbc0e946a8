"""The Runtime API identity check where root lacks CAP_SYS_PTRACE, as in a default Docker or
Podman container: the daemon cannot read the descriptors of a runtime under another uid
the usual way, and looks with the instance's filesystem uid instead
(``rapid.supervisor.peers``). Run here with the capability dropped by ``setpriv``; the
container tests check the same inside a real unprivileged container."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request

import pytest

from tests.daemon import BEHAVE_SYSTEM, SYSTEM_PYTHON, make_function, run_server

CAP_SYS_PTRACE = 19
NO_PTRACE = ["setpriv", "--inh-caps", "-sys_ptrace", "--bounding-set", "-sys_ptrace"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runtimes under their own uids)"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3"),
]


def _effective_caps(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)


def test_runtimes_under_their_own_uid_pass_the_check_without_cap_sys_ptrace(tmp_path):
    fn = make_function(tmp_path / "sysfn", BEHAVE_SYSTEM)
    tmp_path.chmod(0o755)
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.a]\npath = "{fn}"\n[functions.b]\npath = "{fn}"\n')
    with run_server(["--config", str(toml)], wrapper=NO_PTRACE) as d:
        assert not _effective_caps(d.proc.pid) & (1 << CAP_SYS_PTRACE)
        assert any("runtimes run as uids" in line for line in d.stderr)
        # Each runtime, under its own uid, is let in by its own instance.
        assert d.invoke("a", {"echo": "a"}).json() == "a"
        uid = d.invoke("a", {"id": True}).json()[0]
        assert uid >= 990000
        b_api = d.invoke("b", {"env": "AWS_LAMBDA_RUNTIME_API"}).json()
        a_api = d.invoke("a", {"env": "AWS_LAMBDA_RUNTIME_API"}).json()
        # The check still refuses: another instance's runtime...
        assert d.invoke("a", {"fetch": f"http://{b_api}/2018-06-01/runtime/invocation/next"}).json() == 403
        assert d.invoke("b", {"echo": "b"}).json() == "b"
        # ...and any other local process (this test, as root).
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{a_api}/2018-06-01/runtime/invocation/next", timeout=5)
        assert info.value.code == 403
        assert d.invoke("a", {"echo": "still"}).json() == "still"
