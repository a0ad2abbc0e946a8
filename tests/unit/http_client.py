"""A small HTTP/1.1 client on asyncio streams, for in-process tests: one keep-alive
connection, Content-Length bodies (all rapid sends), nothing else. The fake runtimes speak
the Runtime API with it and the tests call the Invoke API with it, both over loopback."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Connection:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self._writer.drain()
        status_line = await self._reader.readline()
        if not status_line:
            self.close()
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        head: dict[str, str] = {}
        while True:
            line = (await self._reader.readline()).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            head[name.strip().lower()] = value.strip()
        data = await self._reader.readexactly(int(head.get("content-length", "0")))
        if head.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, head, data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None


async def request(address: str, method: str, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> Reply:
    """One request on a connection of its own."""
    conn = Connection(address)
    try:
        return await conn.request(method, path, body, headers)
    finally:
        conn.close()
