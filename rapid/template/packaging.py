"""A function's or layer's code as the ZIP the control plane takes.

A folder is zipped the same way every time (entries sorted, a fixed timestamp, the file
modes kept so a ``bootstrap`` stays executable), so unchanged code gives the same bytes and
the same CodeSha256, and re-applying a template changes nothing. A ``.zip`` is read as it
is. Inline code (SAM's ``InlineCode``, ``Code.ZipFile``) becomes one file named after the
handler's module (``index.handler`` with a Node runtime: ``index.js``).
Symbolic links are followed as the AWS CLI's packaging does; ``.aws-sam`` and ``__pycache__``
folders are left out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile

_SKIP = {".aws-sam", "__pycache__", ".git"}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_folder(folder: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP)
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, folder).replace(os.sep, "/")
                try:
                    st = os.stat(path)
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue  # gone meanwhile (an editor's swap file)
                info = zipfile.ZipInfo(rel, _EPOCH)
                info.external_attr = (stat.S_IFREG | (st.st_mode & 0o777)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    return out.getvalue()


def inline_zip(source: str, runtime: str, handler: str) -> bytes:
    module = (handler or "index.handler").rsplit(".", 1)[0]
    if runtime.startswith("nodejs"):
        filename = module + (".mjs" if "export " in source else ".js")
    elif runtime.startswith("python"):
        filename = module + ".py"
    else:
        filename = "bootstrap"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo(filename, _EPOCH)
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        z.writestr(info, source)
    return out.getvalue()


def code_bytes(path: str) -> bytes:
    """The ZIP of a folder, or a .zip's bytes; OSError when neither exists."""
    if os.path.isdir(path):
        return zip_folder(path)
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            return f.read()
    if os.path.isfile(path):
        raise OSError(f"{path} is neither a folder nor a .zip")
    raise OSError(f"no such folder or .zip: {path}")


def b64_sha256(data: bytes) -> str:
    """CodeSha256 as Lambda gives it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
