"""Traffic between cluster X and cluster Y: splitters behind one Protocol, the probe, rollback.

``get_splitter(kind, ...)`` builds a splitter by name and imports its module only then:

    haproxy   HAProxySplitter(backends, run_dir, port=None, initial=(100, 0))    (default)
    nginx     NginxSplitter(backends, run_dir, port=None, initial=(100, 0))
    command   CommandSplitter(set_command, listen_url=..., get_command=None, ...)
              or command=<an object with set_weights / get_weights / listen_url strings>
"""

from __future__ import annotations

import importlib
from typing import Any

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


def get_splitter(kind: str = DEFAULT_SPLITTER, /, **kwargs: Any) -> Splitter:
    """A splitter of ``kind``, not started yet (use it as a context manager, or start()/stop())."""
    if kind not in SPLITTERS:
        raise TrafficError(
            f"unknown splitter {kind!r}; valid: {', '.join(SPLITTERS)}",
            hint="set traffic.splitter in the plan to one of these",
        )
    module_name, _, class_name = SPLITTERS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
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
            for name in ("drain_command", "shell", "timeout"):
                if getattr(spec, name, None) is not None:
                    kwargs.setdefault(name, getattr(spec, name))
        set_command = kwargs.pop("set_command", None)
        if set_command is None:
            raise TrafficError("the command splitter needs set_command (or command=) with {x} and {y}")
        return cls(set_command, **kwargs)
    kwargs.pop("command", None)  # only the command splitter takes one
    return cls(**kwargs)


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
