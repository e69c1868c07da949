"""What every splitter shares: the backend value, the Protocol, weight arithmetic, small helpers.

A splitter sits in front of cluster X and cluster Y and sends ``x`` percent of requests to X and
``y`` percent to Y. Whatever balancer does the work, the probe can tell who answered from two
response headers the splitter adds (:data:`HEADER_UPSTREAM`, :data:`HEADER_SIDE`), and a request
carrying ``X-KUH-Pin: y`` goes to Y at any weight, 0 % included.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from harness.errors import TrafficError

Side = Literal["x", "y"]

HEADER_UPSTREAM = "X-KUH-Upstream"   # response: the backend (node) name that answered
HEADER_SIDE = "X-KUH-Side"           # response: "x" or "y"
HEADER_PIN = "X-KUH-Pin"             # request: "y" routes to cluster Y whatever the weights

# HAProxy accepts server weights 0..256; nginx has no small limit, the same scale keeps them alike.
MAX_SERVER_WEIGHT = 256

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Backend:
    """One node behind the splitter: its name (as the probe will report it), side, proxy address."""

    name: str
    side: Side
    host: str
    port: int

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TrafficError(
                f"backend name {self.name!r} is not usable in a balancer config; expected letters, "
                "digits, '_', '.', '-' (at most 63, starting with a letter or digit)",
                hint="name backends after their nodes, e.g. x1, y2",
            )
        if self.side not in ("x", "y"):
            raise TrafficError(f"backend {self.name}: side must be 'x' or 'y', got {self.side!r}")
        if not 0 < self.port < 65536:
            raise TrafficError(f"backend {self.name}: port must be 1..65535, got {self.port}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@runtime_checkable
class Splitter(Protocol):
    """Moves traffic between cluster X and cluster Y. Use as a context manager (start/stop)."""

    kind: str

    @property
    def listen_url(self) -> str:
        """Where clients (and the probe) send their requests."""
        ...

    def start(self) -> None: ...

    def set_weights(self, x: int, y: int) -> None:
        """Send ``x`` % of requests to X and ``y`` % to Y (integers, ``x + y == 100``)."""
        ...

    def weights(self) -> tuple[int, int]:
        """The split the balancer itself reports now, as percentages."""
        ...

    def drain(self, node_name: str) -> None:
        """Stop sending new requests to one backend."""
        ...

    def stop(self) -> None: ...

    def __enter__(self) -> Splitter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_weights(x: int, y: int) -> tuple[int, int]:
    """Validate a split: two integers 0..100 summing to 100."""
    for label, value in (("x", x), ("y", y)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise TrafficError(
                f"weight {label}={value!r} is invalid; expected an integer percentage 0..100",
                hint="pass weights like set_weights(95, 5)",
            )
    if x + y != 100:
        raise TrafficError(f"weights x={x}, y={y} sum to {x + y}; expected 100")
    return x, y


def check_backends(backends: Sequence[Backend]) -> tuple[Backend, ...]:
    """At least one backend per side, unique names and unique addresses (attribution relies on both)."""
    backends = tuple(backends)
    sides = {b.side for b in backends}
    if sides != {"x", "y"}:
        missing = sorted({"x", "y"} - sides)
        raise TrafficError(
            f"a splitter needs at least one backend on each side; none on {', '.join(missing)}",
            hint="pass Backend(name, 'x', ...) and Backend(name, 'y', ...) entries",
        )
    for attr in ("name", "address"):
        seen: dict[str, Backend] = {}
        for b in backends:
            key = getattr(b, attr)
            if key in seen:
                raise TrafficError(f"backends {seen[key].name} and {b.name} share the {attr} {key!r}")
            seen[key] = b
    return backends


def _spread(total: int, names: Sequence[str]) -> dict[str, int]:
    """``total`` divided among ``names`` as evenly as integers allow (the first ones get the rest)."""
    base, rest = divmod(total, len(names))
    return {name: base + (1 if i < rest else 0) for i, name in enumerate(names)}


def server_weights(backends: Sequence[Backend], x: int, y: int) -> dict[str, int]:
    """Per-server weights that give side X ``x`` % and side Y ``y`` % whatever the node counts.

    Weights are integers 0..:data:`MAX_SERVER_WEIGHT`, so the split is rounded: every combined
    total is tried and the side totals closest to ``x`` : ``y`` win (95/5 with one node a side
    gives 19 and 1, exact); each side's total is then spread evenly over its servers. Giving every
    server of a live side at least weight 1 is preferred while that costs at most 0.2 points of
    share; beyond that (1 % over ten X nodes against one Y node at 99 %: ten weights of 1 would
    already be 3.8 %), some servers of the small side get 0 and the side shares stay right.
    """
    check_weights(x, y)
    names = {side: [b.name for b in backends if b.side == side] for side in ("x", "y")}
    n_x, n_y = len(names["x"]), len(names["y"])
    if not n_x or not n_y:
        raise TrafficError("server weights need at least one backend on each side")
    best: tuple[float, int, int] | None = None          # (error, w_x, w_y)
    best_full: tuple[float, int, int] | None = None     # the same, every live server >= 1
    for total in range(MAX_SERVER_WEIGHT * (n_x + n_y), 0, -1):
        w_y = round(total * y / 100)
        w_x = total - w_y
        if w_x > MAX_SERVER_WEIGHT * n_x or w_y > MAX_SERVER_WEIGHT * n_y:
            continue
        if (x > 0 and w_x < 1) or (y > 0 and w_y < 1):
            continue
        error = abs(w_x / total - x / 100)
        if best is None or error < best[0] - 1e-12:
            best = (error, w_x, w_y)
        full = (x == 0 or w_x >= n_x) and (y == 0 or w_y >= n_y)
        if full and (best_full is None or error < best_full[0] - 1e-12):
            best_full = (error, w_x, w_y)
        if error < 1e-12 and full:
            break
    assert best is not None
    chosen = best_full if best_full is not None and best_full[0] <= 0.002 else best
    _, w_x, w_y = chosen
    return {**_spread(w_x, names["x"]), **_spread(w_y, names["y"])}


def split_from_server_weights(backends: Sequence[Backend], weights: Mapping[str, int]) -> tuple[int, int]:
    """Invert :func:`server_weights`: the percentages a set of per-server weights stands for.

    When the weights are exactly what :func:`server_weights` writes for some split, that split is
    returned; otherwise (weights changed by hand) the nearest whole-percent share.
    """
    total_x = sum(weights.get(b.name, 0) for b in backends if b.side == "x")
    total_y = sum(weights.get(b.name, 0) for b in backends if b.side == "y")
    if total_x + total_y == 0:
        return 0, 0
    nearest = round(100 * total_x / (total_x + total_y))
    for x in (nearest, nearest - 1, nearest + 1):
        if 0 <= x <= 100 and server_weights(backends, x, 100 - x) == dict(weights):
            return x, 100 - x
    return nearest, 100 - nearest


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(text: str, lines: int = 20) -> str:
    """The last lines of a process's output, indented for an error message."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n    ".join(kept) if kept else "(no output)"


class SplitterBase:
    """Context-manager plumbing shared by the concrete splitters."""

    kind = "base"

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> SplitterBase:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
