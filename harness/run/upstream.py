"""The upstream the configuration points at, and X's rendered configuration.

With ``config.upstream: echo`` the harness runs the emulator's echo server on 127.0.0.1 and fills
``${UPSTREAM_URL}`` in the plan's config template with its URL; with ``none`` the config's own
upstream URLs are used as written. A resumed session reuses the first session's port, so X's
rendered configuration, and with it X's configuration hash, stays the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx

from harness.deck import DeckState, load_deck, to_declarative_text
from harness.errors import NodeStartError, PlanError
from harness.plan import Plan
from harness.ports import free_port
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = "${UPSTREAM_URL}"


def _get_status(url: str) -> int:
    with httpx.Client(timeout=1) as client:
        return client.get(url).status_code


def start_echo(work_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start the emulator's echo upstream on 127.0.0.1 (its own session; log in ``work_dir/echo.log``) and
    wait until it answers: the process and its URL. Stop it with :func:`stop_echo`."""
    port = port or free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "echo.log"
    with log_path.open("wb") as log:  # the child keeps its own handle
        echo = subprocess.Popen(
            [sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _get_status(url + "/"),
            ok=lambda code: code == 200 or echo.poll() is not None,
            what="the echo upstream to answer", where=url, timeout=15,
            logs=lambda: log_path.read_text(errors="replace"),
        )
    except BaseException:
        stop_echo(echo)
        raise
    if echo.poll() is not None:
        raise NodeStartError(f"the echo upstream exited with code {echo.returncode}", hint=f"see {log_path}")
    return echo, url


def stop_echo(echo: subprocess.Popen[bytes] | None) -> None:
    """Stop an echo upstream by its process group (its pid). Never raises."""
    if echo is None or echo.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(echo.pid, signal.SIGTERM)
    try:
        echo.wait(5)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(echo.pid, signal.SIGKILL)
        echo.wait(5)


class Upstream:
    """The echo upstream (when the plan asks for it) and the config rendered for it."""

    def __init__(self, plan: Plan, work_dir: Path, log: Callable[[str], None], *, port: int | None = None) -> None:
        self._plan = plan
        self._work_dir = work_dir
        self._log = log
        self.port = port
        self.url: str | None = None
        self._echo: subprocess.Popen[bytes] | None = None
        self._rendered: str | None = None

    def __repr__(self) -> str:
        return f"Upstream(url={self.url!r})"

    @property
    def echo_port(self) -> int | None:
        """The echo's port once it runs (docker nodes of the emulator image run one beside them)."""
        return self.port if self.url else None

    def start(self) -> str | None:
        """Start the echo upstream when the plan asks for it; its URL, or None with ``upstream: none``."""
        if self._plan.config.upstream != "echo" or self.url:
            return self.url
        echo, url = start_echo(self._work_dir, self.port)
        self._echo = echo
        self.port, self.url = int(url.rsplit(":", 1)[1]), url
        self._log(f"echo upstream: {url} (pid {echo.pid})")
        return url

    def template(self) -> str:
        """X's config as written: a Kong declarative file as is, or decK state files converted to the
        declarative format of X's version (``${UPSTREAM_URL}`` kept for ``rendered_config``)."""
        config = self._plan.config
        if config.source is None:
            raise PlanError("config.source is not set", hint="name a declarative config file in the plan")
        if config.source_format == "deck":
            return to_declarative_text(load_deck(config.source), self._plan.x.version)
        try:
            return Path(config.source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanError(f"config.source {config.source}: cannot be read ({type(exc).__name__})",
                            hint="check the file named by config.source") from None

    def reviewed_state(self) -> DeckState:
        """The reviewed decK state of ``config.source`` (for ``parity.against: file``)."""
        config = self._plan.config
        if config.source is None or config.source_format != "deck":
            raise PlanError("parity.against: file needs config.source to be decK state files",
                            hint="point config.source at the reviewed decK file or folder (config.format: deck)")
        return load_deck(config.source)

    def rendered_config(self) -> str:
        """X's declarative configuration: the plan's template with the upstream URL filled in."""
        if self._rendered is None:
            text = self.template()
            url = self.start()
            if PLACEHOLDER in text:
                if url is None:
                    raise PlanError(
                        f"config.source uses {PLACEHOLDER} but config.upstream is none",
                        hint="set config.upstream: echo, or write the upstream URLs into the config",
                    )
                text = text.replace(PLACEHOLDER, url)
            self._rendered = text
        return self._rendered

    def close(self) -> None:
        """Stop the echo upstream (its process group, by pid). Never raises."""
        echo, self._echo = self._echo, None
        stop_echo(echo)
