"""Traffic between cluster X and cluster Y: splitters behind one Protocol, the probe, rollback.

``get_splitter(kind, ...)`` builds a splitter by name and imports its module only then:

    haproxy   HAProxySplitter(backends, run_dir, port=None, initial=(100, 0))    (default)
    nginx     NginxSplitter(backends, run_dir, port=None, initial=(100, 0))
    command   CommandSplitter(set_command, listen_url=..., get_command=None, ...)
              or command=<an object with set_weights / get_weights / listen_url strings>
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

from harness.errors import TrafficError
from harness.model import ProbeRecord, ProbeWindow, Side, SideFigures
from harness.registry import DEFAULT_SPLITTER, SPLITTERS
from harness.traffic.base import (
    HEADER_PIN,
    HEADER_SIDE,
    HEADER_UPSTREAM,
    Backend,
    Splitter,
    check_weights,
    server_weights,
)
from harness.traffic.probe import Probe, ProbeRequest
from harness.traffic.rollback import RollbackEvidence, rollback


class CommandSpec(Protocol):
    """What the command splitter reads from ``command=``: the plan's ``traffic.command``
    (harness.plan_sections.CommandSplitter) or any object with these attributes; ``get_weights``,
    ``drain_command``, ``shell`` and ``timeout`` are read when present."""

    @property
    def set_weights(self) -> str: ...

    @property
    def listen_url(self) -> str: ...


class SplitterOptions(TypedDict, total=False):
    """The keyword arguments of ``get_splitter``: each splitter's constructor takes its own of these
    (HAProxySplitter/NginxSplitter the balancer ones, CommandSplitter the command ones);
    ``run_dir`` is dropped for the command splitter and ``command`` for the others."""

    # haproxy, nginx (harness.traffic.base.ProcessSplitter, nginx's reload options)
    backends: Sequence[Backend]
    run_dir: str | Path
    port: int | None
    host: str
    binary: str | None
    initial: tuple[int, int]
    start_timeout: float
    reload_timeout: float
    test_each_reload: bool
    # command (harness.traffic.command.CommandSplitter), or command= to read them from
    command: CommandSpec | None
    set_command: str
    listen_url: str
    get_command: str | None
    drain_command: str | None
    start_command: str | None
    stop_command: str | None
    shell: bool
    timeout: float
    cwd: str | Path | None
    env: Mapping[str, str] | None


def get_splitter(kind: str = DEFAULT_SPLITTER, /, **kwargs: Unpack[SplitterOptions]) -> Splitter:
    """A splitter of ``kind``, not started yet (use it as a context manager, or start()/stop())."""
    if kind not in SPLITTERS:
        raise TrafficError(
            f"unknown splitter {kind!r}; valid: {', '.join(SPLITTERS)}",
            hint="set traffic.splitter in the plan to one of these",
        )
    module_name, _, class_name = SPLITTERS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    splitter: Splitter
    if kind == "command":
        kwargs.pop("run_dir", None)
        spec = kwargs.pop("command", None)
        if spec is not None:
            if not getattr(spec, "set_weights", None) or not getattr(spec, "listen_url", None):
                raise TrafficError(
                    "the command splitter needs set_weights (with {x} and {y}) and listen_url; got "
                    f"{spec!r}"
                )
            kwargs.setdefault("set_command", spec.set_weights)
            kwargs.setdefault("get_command", getattr(spec, "get_weights", None))
            kwargs.setdefault("listen_url", spec.listen_url)
            # optional attributes of the spec, taken when set (one line each: TypedDict keys are literals)
            if (drain_command := getattr(spec, "drain_command", None)) is not None:
                kwargs.setdefault("drain_command", drain_command)
            if (shell := getattr(spec, "shell", None)) is not None:
                kwargs.setdefault("shell", shell)
            if (timeout := getattr(spec, "timeout", None)) is not None:
                kwargs.setdefault("timeout", timeout)
        set_command = kwargs.pop("set_command", None)
        if set_command is None:
            raise TrafficError("the command splitter needs set_command (or command=) with {x} and {y}")
        splitter = cls(set_command, **kwargs)
        return splitter
    kwargs.pop("command", None)  # only the command splitter takes one
    splitter = cls(**kwargs)
    return splitter


__all__ = [
    "DEFAULT_SPLITTER",
    "HEADER_PIN",
    "HEADER_SIDE",
    "HEADER_UPSTREAM",
    "SPLITTERS",
    "Backend",
    "Probe",
    "ProbeRecord",
    "ProbeRequest",
    "ProbeWindow",
    "RollbackEvidence",
    "Side",
    "SideFigures",
    "Splitter",
    "check_weights",
    "get_splitter",
    "rollback",
    "server_weights",
]
