"""Command splitter: the user's own commands move the weights on any other balancer.

For cloud load balancers, DNS weights, a Kubernetes ingress: ``set_command`` is run with ``{x}``
and ``{y}`` replaced by the percentages, e.g. ``./lb.sh set --blue {x} --green {y}``. Commands are
split like a shell would (shlex) and run WITHOUT a shell unless ``shell=True``; placeholders are
filled in per argument after splitting, so a value can never become extra shell syntax. Every run
has a timeout. A non-zero exit raises :class:`TrafficError` naming the command, the exit code and
the tail of its output.

``get_command`` (optional) prints the current split as two numbers, "X Y" (e.g. ``95 5``): with it
``weights()`` reads the balancer; without it ``weights()`` returns the last split set and says so
in ``weights_source``. ``drain_command`` (optional) gets ``{node}``; without one, draining a node
whose side the balancer already gives 0 % succeeds with nothing to run (it gets no new requests),
and any other drain raises.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import TrafficError
from harness.traffic.base import Backend, SplitterBase, check_weights, tail

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


class CommandSplitter(SplitterBase):
    kind = "command"

    def __init__(
        self,
        set_command: str,
        *,
        listen_url: str,
        get_command: str | None = None,
        drain_command: str | None = None,
        start_command: str | None = None,
        stop_command: str | None = None,
        shell: bool = False,
        timeout: float = 30.0,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        backends: Sequence[Backend] = (),
    ) -> None:
        if not set_command or "{x}" not in set_command or "{y}" not in set_command:
            raise TrafficError(
                f"the command splitter's set command {set_command!r} must contain both {{x}} and {{y}}",
                hint="e.g. './set-weights.sh --x {x} --y {y}'",
            )
        if not listen_url.startswith(("http://", "https://")):
            raise TrafficError(
                f"the command splitter's listen_url {listen_url!r} must be an http(s) URL: where clients "
                "send their traffic to the balancer your commands control"
            )
        self.set_command = set_command
        self.get_command = get_command
        self.drain_command = drain_command
        self.start_command = start_command
        self.stop_command = stop_command
        self.shell = shell
        self.timeout = timeout
        self.cwd = str(cwd) if cwd is not None else None
        self.env = dict(env) if env is not None else None
        self.backends = tuple(backends)
        self._listen_url = listen_url.rstrip("/")
        self._last: tuple[int, int] | None = None

    @property
    def listen_url(self) -> str:
        return self._listen_url

    @property
    def weights_source(self) -> str:
        return "get_command" if self.get_command else "last set (no get_command configured)"

    def _argv(self, template: str, values: Mapping[str, object]) -> str | list[str]:
        def fill(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                key = match.group(1)
                if key not in values:
                    raise TrafficError(
                        f"command {template!r} has the placeholder {{{key}}}; this command accepts "
                        f"{', '.join('{' + k + '}' for k in values) or 'none'}"
                    )
                return str(values[key])

            return _PLACEHOLDER.sub(one, text)

        if self.shell:
            return fill(template)
        try:
            parts = shlex.split(template)
        except ValueError as exc:
            raise TrafficError(f"command {template!r} cannot be split into arguments: {exc}") from exc
        if not parts:
            raise TrafficError("an empty command was configured for the command splitter")
        return [fill(part) for part in parts]

    def _run(self, what: str, template: str, values: Mapping[str, object]) -> str:
        argv = self._argv(template, values)
        shown = argv if isinstance(argv, str) else shlex.join(argv)
        try:
            result = subprocess.run(
                argv, shell=self.shell, capture_output=True, text=True, timeout=self.timeout,
                cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            raise TrafficError(
                f"{what} command `{shown}` did not finish within {self.timeout:g}s; output so far:\n"
                f"    {tail(output)}",
                hint="make the command finish faster or raise the splitter's timeout",
            ) from exc
        except OSError as exc:
            raise TrafficError(
                f"{what} command `{shown}` could not be run: {exc}",
                hint="check the program exists and is executable (commands run without a shell "
                "unless shell=True)",
            ) from exc
        if result.returncode != 0:
            raise TrafficError(
                f"{what} command `{shown}` exited with code {result.returncode}; expected 0. Its output:\n"
                f"    {tail(result.stdout + result.stderr)}",
                hint="run the command by hand to see why it fails; the weights may not have changed",
            )
        return result.stdout

    def start(self) -> None:
        if self.start_command:
            self._run("start", self.start_command, {})

    def set_weights(self, x: int, y: int) -> None:
        check_weights(x, y)
        self._run("set-weights", self.set_command, {"x": x, "y": y})
        self._last = (x, y)
        if self.get_command:
            seen = self.weights()
            if seen != (x, y):
                raise TrafficError(
                    f"after setting x={x}, y={y}, the get-weights command `{self.get_command}` reports "
                    f"x={seen[0]}, y={seen[1]}",
                    hint="the balancer did not take the change, or the get command reads something else",
                )

    def weights(self) -> tuple[int, int]:
        if not self.get_command:
            if self._last is None:
                raise TrafficError(
                    "the command splitter has no get_weights command and no weights were set yet",
                    hint="configure get_weights (printing 'X Y') to read the balancer's split",
                )
            return self._last
        output = self._run("get-weights", self.get_command, {})
        numbers = re.findall(r"-?\d+", output)
        if len(numbers) != 2:
            raise TrafficError(
                f"get-weights command `{self.get_command}` printed {output.strip()[:200]!r}; expected two "
                "integers 'X Y', e.g. '95 5'"
            )
        x, y = int(numbers[0]), int(numbers[1])
        return check_weights(x, y)

    def drain(self, node_name: str) -> None:
        if self.drain_command:
            self._run("drain", self.drain_command, {"node": node_name})
            return
        side = next((b.side for b in self.backends if b.name == node_name), None)
        share = None
        if side is not None and (self.get_command or self._last is not None):
            share = self.weights()[0 if side == "x" else 1]
            if share == 0:
                return  # the balancer sends this side no new requests: drained already
        raise TrafficError(
            f"cannot drain {node_name!r}: the command splitter has no drain command"
            + (f" and side {side.upper()} still has {share} % of the traffic" if side and share else ""),
            hint="configure drain_command with {node}, set that side's weight to 0 first, or drain "
            "through your balancer by hand",
        )

    def stop(self) -> None:
        if self.stop_command:
            self._run("stop", self.stop_command, {})
