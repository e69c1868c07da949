"""Echo upstream: answers JSON with the method, path, query, headers and body it received.

A small asyncio HTTP/1.1 server (keep-alive, Content-Length and chunked request bodies, TCP_NODELAY so
there is no delayed-ACK stall). Request headers steer it: `X-Echo-Status: 503` sets the status,
`X-Echo-Delay-Ms: 200` delays the answer, `X-Echo-Server: none` omits the Server header (any other
value replaces it; default `kuh-echo`).

    python -m emulator.echo --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from typing import Any
from urllib.parse import parse_qsl, urlsplit

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            request = self._parse()
            if request is None:
                return
            delay = _int(request["headers"].get("x-echo-delay-ms"), 0)
            if delay > 0:
                self.busy = True
                asyncio.get_running_loop().call_later(delay / 1000, self._respond_later, request)
                return
            self._respond(request)

    def _respond_later(self, request: dict[str, Any]) -> None:
        self.busy = False
        self._respond(request)
        self._drain()

    def _parse(self) -> dict[str, Any] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, http_version = lines[0].split(" ", 2)
        except ValueError:
            self._error()
            return None
        pairs = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
        lowered = {name.lower(): value for name, value in pairs}
        position = end + 4
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                line_end = self.buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                size = int(bytes(self.buffer[position:line_end]).split(b";")[0] or b"0", 16)
                if len(self.buffer) < line_end + 2 + size + 2:
                    return None
                body += self.buffer[line_end + 2:line_end + 2 + size]
                position = line_end + 2 + size + 2
                if size == 0:
                    break
        else:
            length = _int(lowered.get("content-length"), 0)
            if len(self.buffer) < position + length:
                return None
            body = self.buffer[position:position + length]
            position += length
        del self.buffer[:position]
        parts = urlsplit(target)
        query: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in query:
                query[key] = [*query[key], value] if isinstance(query[key], list) else [query[key], value]
            else:
                query[key] = value
        headers: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return {"method": method, "path": parts.path, "query": query, "raw_query": parts.query,
                "headers": headers, "body": bytes(body).decode("utf-8", "replace"),
                "http_version": http_version, "keep_alive": lowered.get("connection", "").lower() != "close"}

    def _respond(self, request: dict[str, Any]) -> None:
        status = _int(request["headers"].get("x-echo-status"), 200)
        server = request["headers"].get("x-echo-server", "kuh-echo")
        keep_alive = request.pop("keep_alive")
        payload = json.dumps(request).encode()
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Content-Type: application/json",
                 f"Content-Length: {len(payload)}"]
        if server.lower() != "none":
            lines.append(f"Server: {server}")
        if not keep_alive:
            lines.append("Connection: close")
        assert self.transport is not None
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if request["method"] == "HEAD"
                                                                          else payload))
        if not keep_alive:
            self.transport.close()

    def _error(self) -> None:
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            self.transport.close()


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


async def start_echo(host: str, port: int) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(EchoProtocol, host, port, reuse_address=True, backlog=1024)


async def _main(host: str, port: int) -> None:
    server = await start_echo(host, port)
    print(f"echo upstream listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9000", help="host:port (default 127.0.0.1:9000)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    asyncio.run(_main(host or "127.0.0.1", int(port)))


if __name__ == "__main__":
    main()
