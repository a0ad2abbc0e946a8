"""Who may use the management API: open on loopback; elsewhere SigV4 or nothing.

Whoever can reach CreateFunction can run code on this machine. On a loopback address the
management API is open, as before. On any other address it needs one of:

- ``--credentials FILE``: an AWS credentials file (``[profile]`` sections with
  ``aws_access_key_id`` and ``aws_secret_access_key``; every profile's key is accepted).
  Each management request must carry a valid AWS Signature Version 4 by one of those keys,
  as every SDK sends: an unknown key id is 403 ``UnrecognizedClientException``, a wrong
  signature (or one dated more than 15 minutes from the server's clock) 403
  ``InvalidSignatureException``.
- ``--allow-unauthenticated``: open, as on loopback, by the operator's explicit choice.

Without either, every management request is answered 403 ``AccessDeniedException`` saying
how to enable it; Invoke and the Runtime API stay open, as a drop-in container needs.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

from rapid.core.errors import ServiceError
from rapid.http.message import Request

MAX_SKEW = 15 * 60  # seconds a signature's X-Amz-Date may differ from the server's clock, as AWS allows
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<scope>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)\s*$"
)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_credentials(path: str) -> dict[str, str]:
    """``{access key id: secret}`` from an AWS credentials file; ValueError if none."""
    import configparser  # only with --credentials: not on every daemon's start

    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ValueError(f"{path}: {exc}") from None
    keys = {}
    for section in parser.sections():
        key = parser.get(section, "aws_access_key_id", fallback=None)
        secret = parser.get(section, "aws_secret_access_key", fallback=None)
        if key and secret:
            keys[key.strip()] = secret.strip()
    if not keys:
        raise ValueError(f"{path}: no profile with aws_access_key_id and aws_secret_access_key")
    return keys


def _skew(stamp: str, now: float) -> float | None:
    """Seconds between an ``X-Amz-Date`` (``20261201T134745Z``) and ``now``; None if malformed."""
    try:
        signed = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None
    return abs(now - signed)


def _denied(code: str, message: str) -> ServiceError:
    return ServiceError(403, code, message)


class Guard:
    """Checks management requests; ``keys`` None means refuse them all."""

    def __init__(self, keys: dict[str, str] | None, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.clock = clock

    def check(self, req: Request) -> None:
        if self.keys is None:
            raise _denied(
                "AccessDeniedException",
                "The management API is disabled on a non-loopback address: start rapid with "
                "--credentials FILE (SigV4-signed requests) or --allow-unauthenticated",
            )
        header = req.headers.get("authorization")
        if not header:
            raise _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
        m = _AUTH.match(header)
        if m is None:
            raise _denied("IncompleteSignatureException",
                          f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature': {header}")
        secret = self.keys.get(m["key"])
        if secret is None:
            raise _denied("UnrecognizedClientException", "The security token included in the request is invalid.")
        stamp = req.headers.get("x-amz-date", "")
        skew = _skew(stamp, self.clock())
        if skew is None or skew > MAX_SKEW:
            raise _denied("InvalidSignatureException", f"Signature expired: {stamp} is now earlier or later than "
                          f"{MAX_SKEW // 60} minutes from the server's time.")
        expected = signature(req, secret, m["scope"], m["headers"].split(";"))
        if expected is None or not hmac.compare_digest(expected, m["signature"]):
            raise _denied(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.",
            )

    def __repr__(self) -> str:
        return f"<Guard {'refuse' if self.keys is None else f'sigv4 keys={len(self.keys)}'}>"


def signature(req: Request, secret: str, scope: str, signed: list[str]) -> str | None:
    """SigV4 of ``req`` as the SDKs compute it (the path encoded once more, as botocore
    does for every service but S3)."""
    parts = scope.split("/")
    amz_date = req.headers.get("x-amz-date")
    if len(parts) != 4 or parts[3] != "aws4_request" or amz_date is None:
        return None
    date, region, service, _ = parts
    path = req.path or "/"
    query = sorted(parse_qsl(req.query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    headers = "".join(f"{h}:{' '.join(req.headers.get(h, '').split())}\n" for h in signed)
    payload = req.headers.get("x-amz-content-sha256") or hashlib.sha256(bytes(req.body)).hexdigest()
    canonical = "\n".join([req.method, quote(path, safe="/~"), canonical_query, headers, ";".join(signed), payload])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
