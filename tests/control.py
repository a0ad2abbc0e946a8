"""Helpers for the control-plane tests: ZIPs made in memory, boto3 clients for a daemon."""

from __future__ import annotations

import io
import zipfile

import boto3
from botocore.config import Config

from tests.daemon import BEHAVE_SYSTEM, Daemon

ROLE = "arn:aws:iam::000000000000:role/rapid-test"


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def python_zip(body: str) -> bytes:
    return make_zip({"app.py": body})


def behave_zip() -> bytes:
    """A ``provided`` function: the scriptable runtime of tests.daemon as its bootstrap."""
    return make_zip({"bootstrap": BEHAVE_SYSTEM}, {"bootstrap": 0o755})


def client(daemon: Daemon, key: str = "test", secret: str = "test", retries: int = 0):  # type: ignore[no-untyped-def]
    return boto3.client(
        "lambda", endpoint_url=f"http://127.0.0.1:{daemon.port}", region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": retries, "mode": "standard"}, read_timeout=60),
    )


def wait_active(lam, name: str) -> None:  # type: ignore[no-untyped-def]
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def wait_updated(lam, name: str) -> None:  # type: ignore[no-untyped-def]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
