"""What every splitter shares: the backend value, the Protocol, weight arithmetic, small helpers,
and :class:`ProcessSplitter`, the child-process life cycle of the balancers the harness runs itself.

A splitter sits in front of cluster X and cluster Y and sends ``x`` percent of requests to X and
``y`` percent to Y. Whatever balancer does the work, the probe can tell who answered from two
response headers the splitter adds (:data:`HEADER_UPSTREAM`, :data:`HEADER_SIDE`), and a request
carrying ``X-KUH-Pin: y`` goes to Y at any weight, 0 % included.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from harness import ports
from harness.errors import TrafficError
from harness.model import Side

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


free_port = ports.free_port  # one allocator for the whole harness: a port is never handed out twice


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


class ProcessSplitter(SplitterBase):
    """A balancer the harness runs as its own child process (HAProxy, nginx): what they share.

    The subclass says how to prepare its folder and config (:meth:`_prepare`), which command line
    runs the balancer (:meth:`_argv`), where the child's output goes (``output_paths[0]``; more
    files to read after it for an error message), what "started" means (:meth:`_wait_started`)
    and how to read the per-server weights (:meth:`server_weights`). Starting, watching for an
    early exit, the error tails, stopping by pid, and backend lookup are here.
    """

    label = "balancer"      # how messages name it: "HAProxy", "nginx"
    install_hint = ""       # the next step when the binary cannot be run
    config_name = "balancer.conf"  # the config file the subclass writes in run_dir

    def __init__(
        self,
        backends: Sequence[Backend],
        run_dir: str | Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
        initial: tuple[int, int] = (100, 0),
        start_timeout: float = 10.0,
    ) -> None:
        """``port`` None picks a free one; ``binary`` None runs the program named like :attr:`kind`."""
        self.backends = check_backends(backends)
        self.run_dir = Path(run_dir).absolute()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = binary or self.kind
        self.initial = check_weights(*initial)
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- what a balancer says about itself ------------------------------------------------------

    @property
    def output_paths(self) -> tuple[Path, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _prepare(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _argv(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _wait_started(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def server_weights(self) -> dict[str, int]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _stopped(self) -> None:
        """Clean-up after the child is gone (e.g. a socket file); nothing by default."""

    # ---- shared ---------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.run_dir / self.config_name

    @property
    def listen_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        if self._proc is not None:
            raise TrafficError(f"{self.kind} splitter on {self.listen_url} is already started (pid {self.pid})")
        self._prepare()
        output = self.output_paths[0].open("wb")
        try:
            # its own session: a Ctrl-C at the terminal reaches pytest, which returns traffic to X before it
            # stops the balancer by its pid; the balancer must not die with the terminal's process group first
            self._proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=output,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise TrafficError(f"could not run {self.label} ({self.binary!r}): {exc}",
                               hint=self.install_hint) from exc
        finally:
            output.close()  # the child keeps its own handle
        try:
            self._wait_started()
        except BaseException:
            self.stop()
            raise

    def _output(self) -> str:
        """The first of :attr:`output_paths` that holds anything (they mostly repeat each other)."""
        for path in self.output_paths:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                if text.strip():
                    return text
        return ""

    def _raise_if_exited(self, doing: str) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise TrafficError(
                f"{self.label} exited with code {code} while {doing} on {self.host}:{self.port} "
                f"(config {self.config_path}); its output:\n    {tail(self._output())}",
                hint="if the port is taken, choose another port (or leave port unset for a free one)",
            )

    def _wait_for(
        self, ready: Callable[[], str | None], timeout: float, *, doing: str, goal: str, interval: float
    ) -> None:
        """Poll ``ready`` (None when done, else what it saw) until ``timeout``; the child exiting
        meanwhile raises at once, naming what it was ``doing``."""
        deadline = time.monotonic() + timeout
        seen: str | None = "nothing yet"
        while time.monotonic() < deadline:
            self._raise_if_exited(doing)
            seen = ready()
            if seen is None:
                return
            time.sleep(interval)
        raise TrafficError(
            f"{self.label} (pid {self.pid}) on {self.listen_url} did not {goal} within {timeout:.0f}s; "
            f"last seen: {seen}; its output:\n    {tail(self._output())}"
        )

    def _require_running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise TrafficError(
                f"the {self.label} splitter on {self.listen_url} is not running",
                hint=f"call start() first; its output: {self.output_paths[0]}",
            )

    def _backend(self, node_name: str) -> Backend:
        for b in self.backends:
            if b.name == node_name:
                return b
        known = ", ".join(b.name for b in self.backends)
        raise TrafficError(f"no backend named {node_name!r} behind this splitter; known: {known}")

    def weights(self) -> tuple[int, int]:
        return split_from_server_weights(self.backends, self.server_weights())

    def _confirm_weights(self, x: int, y: int) -> None:
        """After a change: the split the running balancer reports must be the one just set."""
        seen = self.weights()
        if seen != (x, y):
            raise TrafficError(f"{self.label} reports weights {seen} after setting x={x}, y={y}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: a fast shutdown for both balancers
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._stopped()
