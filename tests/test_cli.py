"""Start-up: one clear line and exit status 2 for anything misconfigured; nothing starts."""

import os
import socket

from tests.daemon import ROOT, run_cli, run_server


def test_unknown_toml_key_names_the_key(tmp_path):
    (tmp_path / "rapid.toml").write_text('[functions.f]\npath = "."\ntimeoutt = 3\n')
    r = run_cli(["serve", "--config", str(tmp_path / "rapid.toml")])
    assert r.returncode == 2
    assert "timeoutt" in r.stderr and "functions.f" in r.stderr
    assert r.stderr.count("\n") == 1


def test_bad_value_names_the_key(tmp_path):
    r = run_cli(["serve", "--function", f"f={tmp_path}", "--timeout", "0"])
    assert r.returncode == 2 and "timeout" in r.stderr


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    r = run_cli(["serve", "--function", f"f={missing}"])
    assert r.returncode == 2 and str(missing) in r.stderr


def test_malformed_function_flag():
    r = run_cli(["serve", "--function", "noequals"])
    assert r.returncode == 2 and "NAME=PATH" in r.stderr


def test_handler_required_for_bundled_runtime(tmp_path):
    r = run_cli(["serve", "--function", f"f={tmp_path}", "--runtime", "python"])
    assert r.returncode == 2 and "handler" in r.stderr


def test_reserved_variable_rejected(tmp_path):
    r = run_cli(["serve", "--function", f"f={tmp_path}", "--env", "AWS_REGION=eu-west-1"])
    assert r.returncode == 2 and "AWS_REGION" in r.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli(["serve", "--port", str(port), "--function", f"f={tmp_path}"])
    assert r.returncode == 1 and "cannot listen" in r.stderr


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("rapid ")


def test_env_variables_fill_the_same_settings(behave_fn):
    with run_server([], env={"RAPID_FUNCTIONS": f"fn={behave_fn}", "RAPID_MEMORY": "320",
                             "RAPID_ENV": "A=1\nB=x=y"}) as d:
        assert d.invoke("fn", {"env": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}).json() == "320"
        assert d.invoke("fn", {"env": "B"}).json() == "x=y"


def test_toml_declares_functions_with_their_own_settings(tmp_path, behave_fn):
    (tmp_path / "rapid.toml").write_text(
        f'log_format = "text"\n[functions.a]\npath = "{behave_fn}"\nmemory = 256\n'
        f'environment = {{ GREETING = "hi=there" }}\n[functions.b]\npath = "{behave_fn}"\ntimeout = 1\n'
    )
    with run_server(["--config", str(tmp_path / "rapid.toml")]) as d:
        assert d.invoke("a", {"env": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}).json() == "256"
        assert d.invoke("a", {"env": "GREETING"}).json() == "hi=there"
        assert d.invoke("b", {"sleep": 3}).json()["errorType"] == "Sandbox.Timedout"
        assert d.invoke("a", {"sleep": 1.5}).json() == "slept"
        a = d.invoke("a", {"print": "from a"}).headers["x-amzn-requestid"]
        d.wait_for_line(f"\\[a\\] REPORT RequestId: {a}")


def test_zip_function(tmp_path):
    import zipfile

    from tests.daemon import BEHAVE

    archive = tmp_path / "fn.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        zf.writestr(info, BEHAVE)
    with run_server(["--function", f"z={archive}", "--data-dir", str(tmp_path / "data")]) as d:
        assert d.invoke("z", {"echo": "zipped"}).json() == "zipped"


def test_examples_config_is_valid():
    # Loaded as `rapid serve --config examples/rapid.toml` loads it, and every function's
    # code found as the daemon finds it (a bad key, value or path raises ConfigError).
    from rapid.config import load
    from rapid.host.code import code_for

    cfg = load({"config": str(ROOT / "examples" / "rapid.toml")}, environ={}, cwd=str(ROOT))
    assert {"hello", "node-hello", "sh"} <= set(cfg.functions)
    assert cfg.functions["hello"].runtime == "python" and cfg.functions["hello"].handler == "app.handler"
    for name, fc in cfg.functions.items():
        code = code_for(fc, dropin=False, data_dir=ROOT / "unused")
        assert os.path.isdir(code.task_root), name
        if fc.runtime == "provided":
            assert code.argv is not None and code.entrypoint_error is None, name
