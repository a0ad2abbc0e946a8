"""rapid.config.load: one Config from defaults < TOML < environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapid.config import ConfigError, load


@pytest.fixture
def fn_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fn"
    d.mkdir()
    return d


def toml(tmp_path: Path, text: str, name: str = "rapid.toml") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def error_of(cli: dict, environ: dict | None = None, cwd: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(cli, {} if environ is None else environ, str(cwd) if cwd else None)
    return str(info.value)


# -- precedence of server settings ------------------------------------------------------------

SERVER = {"host": ("10.0.0.1", "10.0.0.2", "10.0.0.3"),
          "port": (1111, 2222, 3333),
          "log_format": ("json", "text", "json")}
ENV_NAMES = {"host": "RAPID_HOST", "port": "RAPID_PORT", "log_format": "RAPID_LOG_FORMAT"}
DEFAULTS = {"host": "127.0.0.1", "port": 8080, "log_format": "text"}


@pytest.mark.parametrize("key", sorted(SERVER))
def test_server_key_precedence(tmp_path: Path, fn_dir: Path, key: str) -> None:
    in_toml, in_env, in_cli = SERVER[key]
    toml_value = f'"{in_toml}"' if isinstance(in_toml, str) else str(in_toml)
    cfg_file = toml(tmp_path, f'{key} = {toml_value}\n[functions.f]\npath = "fn"\n')
    env = {ENV_NAMES[key]: str(in_env)}
    cwd = str(tmp_path)

    assert getattr(load({}, {}, cwd), key) == DEFAULTS[key]
    assert getattr(load({"config": cfg_file}, {}, cwd), key) == in_toml
    assert getattr(load({"config": cfg_file}, env, cwd), key) == in_env
    assert getattr(load({"config": cfg_file, key: str(in_cli)}, env, cwd), key) == in_cli
    # A flag that was not given (None) does not hide the layers below it.
    assert getattr(load({"config": cfg_file, key: None}, env, cwd), key) == in_env


def test_config_file_named_by_environment(tmp_path: Path, fn_dir: Path) -> None:
    cfg_file = toml(tmp_path, 'port = 1234\n[functions.f]\npath = "fn"\n')
    cfg = load({}, {"RAPID_CONFIG": cfg_file}, str(tmp_path))
    assert cfg.port == 1234
    assert list(cfg.functions) == ["f"]
    assert cfg.dropin is False


def test_relative_config_path_is_resolved_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "conf" / "code").mkdir(parents=True)
    toml(tmp_path, '[functions.f]\npath = "code"\n', "conf/rapid.toml")
    cfg = load({"config": "conf/rapid.toml"}, {}, str(tmp_path))
    assert Path(cfg.functions["f"].path) == tmp_path / "conf" / "code"


def test_bad_port_values(tmp_path: Path) -> None:
    assert "port" in error_of({"port": "abc"}, cwd=tmp_path)
    assert "port" in error_of({"port": "70000"}, cwd=tmp_path)
    assert "port" in error_of({}, {"RAPID_PORT": "x"}, tmp_path)
    assert "log_format" in error_of({"log_format": "xml"}, cwd=tmp_path)


# -- functions from the command line ----------------------------------------------------------

def test_cli_function_with_shared_settings(tmp_path: Path, fn_dir: Path) -> None:
    cfg = load({"function": ["hello=fn"], "timeout": "10", "memory": "512",
                "env": ["A=1", "KEY=a=b", "EMPTY="]}, {}, str(tmp_path))
    assert cfg.dropin is False
    assert list(cfg.functions) == ["hello"]
    f = cfg.functions["hello"]
    assert Path(f.path) == fn_dir
    assert (f.timeout, f.memory) == (10, 512)
    assert f.environment == {"A": "1", "KEY": "a=b", "EMPTY": ""}
    assert f.inherit_environment is False
    assert (f.runtime, f.handler, f.version, f.command) == ("provided", "", "$LATEST", None)


def test_cli_function_defaults(tmp_path: Path, fn_dir: Path) -> None:
    f = load({"function": ["hello=fn"]}, {}, str(tmp_path)).functions["hello"]
    assert (f.timeout, f.memory, f.reserved_concurrency, f.environment) == (3, 128, None, {})


def test_settings_apply_to_every_cli_function(tmp_path: Path, fn_dir: Path) -> None:
    (tmp_path / "other").mkdir()
    cfg = load({"function": ["a=fn", f"b={tmp_path / 'other'}"], "timeout": "7", "env": ["X=1"]},
               {}, str(tmp_path))
    assert {n: (f.timeout, f.environment) for n, f in cfg.functions.items()} == {
        "a": (7, {"X": "1"}), "b": (7, {"X": "1"})}
    assert Path(cfg.functions["b"].path) == tmp_path / "other"


def test_functions_and_settings_from_environment(tmp_path: Path, fn_dir: Path) -> None:
    (tmp_path / "g").mkdir()
    env = {"RAPID_FUNCTIONS": "f=fn  g=g\n", "RAPID_TIMEOUT": "20",
           "RAPID_ENV": "A=1\n\nB=x=y\n"}
    cfg = load({"function": [], "env": []}, env, str(tmp_path))
    assert sorted(cfg.functions) == ["f", "g"]
    assert cfg.functions["g"].timeout == 20
    assert cfg.functions["g"].environment == {"A": "1", "B": "x=y"}
    # The command line's values replace the environment's.
    cfg = load({"function": ["f=fn"], "timeout": "30"}, env, str(tmp_path))
    assert list(cfg.functions) == ["f"]
    assert cfg.functions["f"].timeout == 30


@pytest.mark.parametrize("bad", ["noequals", "=fn", "name=", "="])
def test_malformed_function_flag(tmp_path: Path, bad: str) -> None:
    msg = error_of({"function": [bad]}, cwd=tmp_path)
    assert repr(bad) in msg
    assert "NAME=PATH" in msg


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_malformed_env_flag(tmp_path: Path, fn_dir: Path, bad: str) -> None:
    msg = error_of({"function": ["f=fn"], "env": [bad]}, cwd=tmp_path)
    assert repr(bad) in msg and "KEY=VALUE" in msg


def test_function_declared_twice(tmp_path: Path, fn_dir: Path) -> None:
    assert "'f'" in error_of({"function": ["f=fn", "f=fn"]}, cwd=tmp_path)
    cfg_file = toml(tmp_path, '[functions.f]\npath = "fn"\n')
    assert "'f'" in error_of({"config": cfg_file, "function": ["f=fn"]}, cwd=tmp_path)


def test_bad_function_name(tmp_path: Path, fn_dir: Path) -> None:
    assert "functions" in error_of({"function": ["bad name=fn"]}, cwd=tmp_path)
    assert "functions" in error_of({"function": [f"{'a' * 65}=fn"]}, cwd=tmp_path)


# -- validation, naming the key -----------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "901", "-1"])
def test_timeout_out_of_range(tmp_path: Path, fn_dir: Path, value: str) -> None:
    msg = error_of({"function": ["hello=fn"], "timeout": value}, cwd=tmp_path)
    assert "timeout" in msg and "hello" in msg


@pytest.mark.parametrize("value", ["1", "900"])
def test_timeout_bounds_accepted(tmp_path: Path, fn_dir: Path, value: str) -> None:
    assert load({"function": ["f=fn"], "timeout": value}, {}, str(tmp_path)).functions["f"].timeout == int(value)


@pytest.mark.parametrize("value", ["100", "127", "10241"])
def test_memory_out_of_range(tmp_path: Path, fn_dir: Path, value: str) -> None:
    msg = error_of({"function": ["hello=fn"], "memory": value}, cwd=tmp_path)
    assert "memory" in msg and "hello" in msg


def test_timeout_not_a_number(tmp_path: Path, fn_dir: Path) -> None:
    assert "timeout" in error_of({"function": ["f=fn"], "timeout": "3s"}, cwd=tmp_path)


def test_missing_path_is_named(tmp_path: Path) -> None:
    msg = error_of({"function": ["hello=nowhere"]}, cwd=tmp_path)
    assert str(tmp_path / "nowhere") in msg
    assert "functions.hello.path" in msg


def test_path_must_be_folder_or_zip(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "code.zip").write_bytes(b"PK")
    assert "functions.f.path" in error_of({"function": ["f=file.txt"]}, cwd=tmp_path)
    assert load({"function": ["f=code.zip"]}, {}, str(tmp_path)).functions["f"].path.endswith("code.zip")


@pytest.mark.parametrize("runtime", ["python", "node", "shell"])
def test_bundled_runtime_needs_handler(tmp_path: Path, fn_dir: Path, runtime: str) -> None:
    msg = error_of({"function": ["hello=fn"], "runtime": runtime}, cwd=tmp_path)
    assert "functions.hello.handler" in msg and runtime in msg
    f = load({"function": ["hello=fn"], "runtime": runtime, "handler": "app.handler"},
             {}, str(tmp_path)).functions["hello"]
    assert (f.runtime, f.handler) == (runtime, "app.handler")


def test_unknown_runtime(tmp_path: Path, fn_dir: Path) -> None:
    assert "runtime" in error_of({"function": ["f=fn"], "runtime": "cobol"}, cwd=tmp_path)


@pytest.mark.parametrize("key", ["AWS_REGION", "AWS_LAMBDA_RUNTIME_API", "_HANDLER", "AWS_ACCESS_KEY_ID"])
def test_reserved_env_rejected_on_cli(tmp_path: Path, fn_dir: Path, key: str) -> None:
    msg = error_of({"function": ["hello=fn"], "env": [f"{key}=x"]}, cwd=tmp_path)
    assert key in msg and "functions.hello.environment" in msg


def test_reserved_env_rejected_in_toml(tmp_path: Path, fn_dir: Path) -> None:
    cfg_file = toml(tmp_path, '[functions.hello]\npath = "fn"\nenvironment = { AWS_REGION = "eu-west-1", OK = "1" }\n')
    msg = error_of({"config": cfg_file}, cwd=tmp_path)
    assert "AWS_REGION" in msg and "hello" in msg and "OK" not in msg


# -- TOML -----------------------------------------------------------------------------------

def test_toml_functions_resolve_paths_against_the_toml_folder(tmp_path: Path) -> None:
    conf = tmp_path / "project"
    (conf / "src" / "hello").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg_file = toml(conf, f"""
port = 9000
[functions.hello]
path = "src/hello"
runtime = "python"
handler = "app.handler"
timeout = 30
memory = 256
reserved_concurrency = 4
environment = {{ GREETING = "hi=there" }}
[functions.abs]
path = "{elsewhere}"
""")
    # cwd is somewhere else entirely: the TOML's own folder is what counts.
    cfg = load({"config": cfg_file}, {}, str(elsewhere))
    assert cfg.port == 9000 and cfg.dropin is False
    hello = cfg.functions["hello"]
    assert Path(hello.path) == conf / "src" / "hello"
    assert (hello.runtime, hello.handler, hello.timeout, hello.memory, hello.reserved_concurrency) == (
        "python", "app.handler", 30, 256, 4)
    assert hello.environment == {"GREETING": "hi=there"}
    assert Path(cfg.functions["abs"].path) == elsewhere


def test_cli_function_settings_do_not_touch_toml_functions(tmp_path: Path, fn_dir: Path) -> None:
    cfg_file = toml(tmp_path, '[functions.t]\npath = "fn"\ntimeout = 5\n')
    cfg = load({"config": cfg_file, "function": ["c=fn"], "timeout": "60", "env": ["A=1"]},
               {}, str(tmp_path))
    assert (cfg.functions["t"].timeout, cfg.functions["t"].environment) == (5, {})
    assert (cfg.functions["c"].timeout, cfg.functions["c"].environment) == (60, {"A": "1"})


def test_unknown_function_key_in_toml_is_named(tmp_path: Path, fn_dir: Path) -> None:
    cfg_file = toml(tmp_path, '[functions.hello]\npath = "fn"\ntimeot = 5\n')
    msg = error_of({"config": cfg_file}, cwd=tmp_path)
    assert "timeot" in msg and "hello" in msg


def test_unknown_top_level_key_in_toml_is_named(tmp_path: Path, fn_dir: Path) -> None:
    cfg_file = toml(tmp_path, 'prot = 8080\n[functions.f]\npath = "fn"\n')
    assert "prot" in error_of({"config": cfg_file}, cwd=tmp_path)


def test_toml_timeout_out_of_range_is_named(tmp_path: Path, fn_dir: Path) -> None:
    for value in (0, 901):
        cfg_file = toml(tmp_path, f'[functions.hello]\npath = "fn"\ntimeout = {value}\n')
        msg = error_of({"config": cfg_file}, cwd=tmp_path)
        assert "timeout" in msg and "hello" in msg


def test_toml_function_without_path(tmp_path: Path) -> None:
    cfg_file = toml(tmp_path, '[functions.hello]\ntimeout = 5\n')
    assert "functions.hello.path" in error_of({"config": cfg_file}, cwd=tmp_path)


def test_toml_missing_or_broken(tmp_path: Path) -> None:
    assert "nope.toml" in error_of({"config": "nope.toml"}, cwd=tmp_path)
    cfg_file = toml(tmp_path, "port = = 1\n")
    assert cfg_file in error_of({"config": cfg_file}, cwd=tmp_path)
    cfg_file = toml(tmp_path, "functions = 3\n", "b.toml")
    assert "functions" in error_of({"config": cfg_file}, cwd=tmp_path)


# -- drop-in mode ---------------------------------------------------------------------------

def test_dropin_when_no_functions(tmp_path: Path) -> None:
    cfg = load({}, {}, str(tmp_path))
    assert cfg.dropin is True
    assert list(cfg.functions) == ["function"]
    f = cfg.functions["function"]
    assert (f.timeout, f.memory) == (300, 3008)
    assert Path(f.path) == tmp_path
    assert f.command is None
    assert f.inherit_environment is True


def test_dropin_honours_rie_variables(tmp_path: Path) -> None:
    env = {"AWS_LAMBDA_FUNCTION_TIMEOUT": "60", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
           "AWS_LAMBDA_FUNCTION_NAME": "my-fn", "_HANDLER": "app.handler",
           "AWS_LAMBDA_FUNCTION_VERSION": "7"}
    cfg = load({}, env, str(tmp_path))
    assert list(cfg.functions) == ["my-fn"]
    f = cfg.functions["my-fn"]
    assert (f.timeout, f.memory, f.handler, f.version) == (60, 512, "app.handler", "7")
    # rapid's own flags win over the RIE's variables.
    f = load({"timeout": "9"}, env, str(tmp_path)).functions["my-fn"]
    assert (f.timeout, f.memory) == (9, 512)


def test_dropin_rie_timeout_validated(tmp_path: Path) -> None:
    assert "timeout" in error_of({}, {"AWS_LAMBDA_FUNCTION_TIMEOUT": "0"}, tmp_path)
    assert "memory" in error_of({}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "64"}, tmp_path)


def test_dropin_with_command(tmp_path: Path) -> None:
    cfg = load({"command": ["python", "-m", "awslambdaric", "app.handler"]}, {}, str(tmp_path))
    assert cfg.dropin is True
    f = cfg.functions["function"]
    assert f.command == ["python", "-m", "awslambdaric", "app.handler"]
    assert Path(f.path) == tmp_path
    assert (f.timeout, f.memory) == (300, 3008)


def test_command_alongside_declared_functions(tmp_path: Path, fn_dir: Path) -> None:
    cfg = load({"function": ["other=fn"], "command": ["./bootstrap"]}, {}, str(tmp_path))
    assert cfg.dropin is True
    assert sorted(cfg.functions) == ["function", "other"]
    assert cfg.functions["function"].command == ["./bootstrap"]
    assert cfg.functions["other"].command is None


def test_command_does_not_silently_replace_a_declared_function(tmp_path: Path, fn_dir: Path) -> None:
    # `--function function=fn -- ./bootstrap` declares `function` twice; like any other
    # duplicate (see test_function_declared_twice) it must be refused, not dropped.
    assert "'function'" in error_of({"function": ["function=fn"], "command": ["./bootstrap"]}, cwd=tmp_path)


def test_toml_without_functions_is_dropin(tmp_path: Path) -> None:
    cfg_file = toml(tmp_path, "port = 9001\n")
    cfg = load({"config": cfg_file}, {}, str(tmp_path))
    assert cfg.port == 9001 and cfg.dropin is True and list(cfg.functions) == ["function"]


def test_a_small_max_concurrency_with_nothing_reserved(tmp_path: Path, fn_dir: Path) -> None:
    cfg = load({"config": toml(tmp_path, 'max_concurrency = 8\n[functions.f]\npath = "fn"\n')}, {}, str(tmp_path))
    assert cfg.max_concurrency == 8
    reserving = toml(tmp_path, 'max_concurrency = 8\n[functions.f]\npath = "fn"\nreserved_concurrency = 1\n', "r.toml")
    assert "100 stay unreserved" in error_of({"config": reserving}, cwd=tmp_path)
