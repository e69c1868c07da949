"""Free TCP ports on 127.0.0.1 for the nodes, balancers and upstreams the harness starts.

A port is free when the kernel hands it out for a bind to port 0. Between closing that socket and the
real server binding it another process may take it; callers that start servers retry on "address in
use" (see ``harness.nodes.process``). Ports handed out by this process are not handed out again, so
several ports asked for in one run never collide with each other.
"""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_given: set[int] = set()


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago and are new to this process."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        with _lock:
            attempts = 0
            while len(ports) < count:
                attempts += 1
                if attempts > count * 50 + 50:
                    raise OSError(f"could not find {count} free ports on {host} after {attempts} binds")
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)  # keep it bound so the kernel does not hand the same port out twice
                sock.bind((host, 0))
                port = sock.getsockname()[1]
                if port in _given:
                    continue
                _given.add(port)
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def free_port(host: str = LOOPBACK) -> int:
    """Return one port that was free on ``host`` a moment ago."""
    return free_ports(1, host)[0]
