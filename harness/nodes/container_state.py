"""Container readiness and state for the docker provider: what Kong answers when it is up, and what a
container that stopped left behind (exit code, last log lines).

Imported by :mod:`harness.nodes.docker` after it has set testcontainers' defaults.
"""

from __future__ import annotations

import time

import httpx
from testcontainers.core.wait_strategies import HttpWaitStrategy
from testcontainers.core.waiting_utils import WaitStrategyTarget

from harness.nodes.spec import ReadyCheck


class ContainerExited(RuntimeError):
    """The container stopped while we waited for it to become ready."""


class KongReadyWait(HttpWaitStrategy):
    """HTTP readiness as Kong answers it (200, or 503 "no configuration" when no config is expected).

    Unlike the plain ``HttpWaitStrategy`` it gives up at once when the container exits, and remembers
    the last answer it saw for the error message. ``url``: a fixed URL (host networking); without it
    the URL is the published port of ``port``.
    """

    def __init__(self, port: int, check: ReadyCheck, url: str | None = None) -> None:
        super().__init__(port, check.path)
        self.check = check
        self.last_seen = "no answer yet"
        self.url: str | None = url

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                container.reload()
                if container.status in ("exited", "dead", "removing"):
                    code = container.get_wrapped_container().attrs.get("State", {}).get("ExitCode")
                    raise ContainerExited(f"container {container.status} (exit code {code}) before it was ready")
                if container.status == "running":
                    try:
                        if self.url is None:
                            self.url = self._url(container)
                        response = client.get(self.url)
                        if self.check.judge(response.status_code, response.text):
                            return
                        self.last_seen = f"{response.status_code} {response.text[:200]!r}"
                    except (httpx.HTTPError, ConnectionError) as exc:
                        self.last_seen = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    waited = f"{self._startup_timeout:.0f}s"
                    raise TimeoutError(f"not ready after {waited}; last seen {self.last_seen}")
                time.sleep(self._poll_interval)

    def _url(self, container: WaitStrategyTarget) -> str:
        wrapped = container.get_wrapped_container()
        mappings = wrapped.client.api.port(wrapped.id, self._port)
        if not mappings:
            raise ConnectionError(f"port {self._port} is not published yet")
        return f"http://{container.get_container_host_ip()}:{mappings[0]['HostPort']}{self._path}"


