"""The traffic run: the splitter in front of X and Y, and the background open-loop probe.

This part moves weights and measures; judging a step belongs to ``harness.checks.shift``. It is
started once, explicitly, by the shift stage's first check (or by a resumed session's restore),
and ``close()`` returns all traffic to X before it stops the splitter.

With a :class:`Guard` (the run context always gives one) the splitter is also handed to the traffic
supervisor (``harness.supervisor``), the dead man's switch: if this process dies with traffic split,
the supervisor puts all traffic on X. Its recipe for that is built here, from the splitter
(:func:`failsafe_for`). Every step checks the supervisor is still there; ``drain`` (decommission)
disarms it first, since X is retired next; ``pause`` hands the held split over to it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.corpus import SEED, Corpus
from harness.deadline import Deadline
from harness.differential import batch_seconds, observe, request_timeout, run_bounded, shared_client
from harness.errors import TrafficError
from harness.model import Node, ProbeWindow
from harness.nodes import BALANCER_FILE, BALANCER_PREFIX, OWNER_FILE
from harness.nodes.leftovers import record_of
from harness.plan import Plan
from harness.sampling import sample_corpus
from harness.supervisor import (
    MISS_SECONDS,
    NGINX_FAILSAFE_GENERATION,
    CommandFailsafe,
    Failsafe,
    HAProxyFailsafe,
    NginxFailsafe,
    Supervisor,
    start_time,
)
from harness.traffic import Backend, Probe, ProbeRequest, RollbackEvidence, Splitter, get_splitter, rollback
from harness.traffic.base import server_weights

ROLLBACK_PROOF_REQUESTS = 50     # consecutive answers from X, none failed, that prove a rollback
ROLLBACK_PROOF_TIMEOUT_S = 10.0

Log = Callable[[str], None]


#: the most kinds of request in the probe's mix: the probe cycles through them, so more kinds only cost the
#: up-front read of X's answers; every route class is kept even beyond it (harness.sampling.sample_corpus)
PROBE_KINDS = 500


def probe_mix(x: Node, corpus: Corpus, *, kinds: int = PROBE_KINDS, concurrency: int = 8, seed: int = SEED,
              deadline_seconds: float | None = None, client: httpx.Client | None = None) -> list[ProbeRequest]:
    """The corpus, sampled as staging samples it (at most ``kinds`` requests, every route class kept), as
    probe requests, each expecting the status X gives it now (read-only, ``concurrency`` reads in flight)."""
    chosen = sample_corpus(corpus, kinds, seed=seed).requests
    seconds = deadline_seconds if deadline_seconds is not None else batch_seconds(len(chosen),
                                                                                  concurrency=concurrency)
    deadline = Deadline.start(seconds, what="reading X's answers for the probe's mix", where=str(x),
                              hint="look at X's proxy log: X must answer promptly before the shift")
    http = client or shared_client(concurrency, 1)
    try:
        batch = run_bounded(
            chosen,
            lambda req: observe(http, x.proxy_url or "", req, where=str(x), timeout=request_timeout(deadline)).status,
            concurrency=concurrency, deadline=deadline)
    finally:
        if client is None:
            http.close()
    if batch.not_sent:
        raise deadline.error(f"{len(batch.not_sent)} of {len(chosen)} requests unread, first "
                             f"{chosen[batch.not_sent[0]].name}")
    mix = []
    for req, status in zip(chosen, batch.results, strict=True):
        if status is None:  # not reached: not_sent is empty, so every request was read
            continue
        if status >= 500:
            raise TrafficError(
                f"{x} answers {req.name} with {status} before any traffic moved",
                hint="X must be healthy before the shift; fix X or drop the route from the corpus",
            )
        mix.append(ProbeRequest(req.method, req.path, req.header_dict(), status, req.name))
    return mix


class TrafficRun:
    """A started splitter (all weight on X at first) and a running probe through it."""

    def __init__(self, splitter: Splitter, probe: Probe, folder: Path, log: Log,
                 supervisor: Supervisor | None = None, record: Path | None = None) -> None:
        self.splitter = splitter
        self.probe = probe
        self.supervisor = supervisor
        self._folder = folder
        self._log = log
        self._record = record            # the run's balancer.json (removed once the balancer is stopped)
        self.paused: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"TrafficRun(listen={self.splitter.listen_url!r})"

    @classmethod
    def start(cls, plan: Plan, x_nodes: list[Node], y_nodes: list[Node], corpus: Corpus, log: Log, *,
              guard: Guard | None = None, initial: tuple[int, int] = (100, 0)) -> TrafficRun:
        """Start the splitter at ``initial`` (all on X, or a paused run's held split), hand it to the
        supervisor when ``guard`` is given, then start the probe."""
        if not x_nodes or not y_nodes:
            raise TrafficError("the shift needs running X and Y nodes",
                               hint="preflight starts X, deploy and scale start Y")
        backends = []
        for node in x_nodes + y_nodes:
            url = httpx.URL(node.proxy_url or "")
            backends.append(Backend(node.name, node.cluster, url.host, url.port or 80))
        kind = plan.traffic.splitter
        # a short folder: HAProxy's admin socket path must stay under the ~100 characters unix allows
        folder = Path(tempfile.mkdtemp(prefix=BALANCER_PREFIX))
        splitter = _start_splitter(kind, backends, folder, plan)
        supervisor: Supervisor | None = None
        record: Path | None = None
        try:
            if guard is not None:
                record = _record_balancer(splitter, folder, guard)
            splitter.set_weights(*initial)
            log(f"splitter {kind} listening on {splitter.listen_url}: {initial[0]} % X, {initial[1]} % Y")
            if guard is not None:
                supervisor = Supervisor.start(guard.work_dir / "supervisor", failsafe_for(splitter),
                                              lock_fd=guard.lock_fd, miss_seconds=guard.miss_seconds)
                log(f"traffic supervisor (pid {supervisor.pid}) holds the dead man's switch: if this run dies, "
                    "all traffic returns to X")
            mix = probe_mix(x_nodes[0], corpus, concurrency=plan.differential.concurrency)
            probe = Probe(splitter.listen_url, mix, rate=plan.probe.rate, timeout=plan.probe.timeout_seconds,
                          version_sides={plan.x.version or "": "x", plan.y_version: "y"})
            # bounded: at most the whole plan's holds and soak, plus a generous margin for set-up
            t = plan.traffic
            budget = (len(t.steps) + 2) * t.hold_seconds * 3 + t.soak_seconds + 300
            probe.start(count=int(plan.probe.rate * budget), duration=budget)
        except BaseException:
            if supervisor is not None:
                supervisor.close("the traffic run did not start")
            splitter.stop()
            shutil.rmtree(folder, ignore_errors=True)
            if record is not None:
                record.unlink(missing_ok=True)
            raise
        log(f"probe: {plan.probe.rate:g} req/s open loop through {splitter.listen_url}, {len(mix)} kinds of request")
        return cls(splitter, probe, folder, log, supervisor, record)

    def check_guard(self) -> None:
        """Each step: the supervisor must still be there (its death leaves the weights as they are)."""
        if self.supervisor is not None:
            self.supervisor.check()

    def set_weights(self, x: int, y: int) -> None:
        """Set the split and read it back from the balancer."""
        self.check_guard()
        self.splitter.set_weights(x, y)
        seen = self.splitter.weights()
        if seen != (x, y):
            raise TrafficError(f"the splitter reports weights {seen} after being set to {(x, y)}",
                               hint="check the balancer's runtime API or the command splitter's get_weights")

    def window(self, seconds: float, weights: tuple[int, int], label: str) -> tuple[ProbeWindow, float, float]:
        """The requests scheduled after now, over ``seconds``; and when the window opened and closed."""
        opened = self.probe.now()
        self.probe.take_window()
        time.sleep(seconds)
        closed = self.probe.now()
        window = self.probe.take_window(label=label, weights=weights)
        records = [r for r in window.records if r.scheduled >= opened]
        self.check_guard()
        return ProbeWindow.of(records, label=label, weights=weights), opened, closed

    def roll_back(self, reason: str) -> RollbackEvidence:
        """All weight to X now; proven when the probe shows X alone answering, without errors."""
        return rollback(self.splitter, self.probe, timeout=ROLLBACK_PROOF_TIMEOUT_S,
                        consecutive=ROLLBACK_PROOF_REQUESTS, reason=reason)

    def drain(self, nodes: list[Node]) -> None:
        self.set_weights(0, 100)
        if self.supervisor is not None:   # X is drained and retired next: "all traffic to X" would hurt now
            for problem in self.supervisor.disarm("decommission: all traffic is on Y and X is drained next"):
                self._log(f"traffic supervisor: {problem}")
            self.supervisor = None
        for node in nodes:
            self.splitter.drain(node.name)

    def pause(self, until: float, step: int) -> dict[str, object]:
        """A deliberate pause after ``step``: the probe stops, the supervisor holds the split (and the run
        lock) until ``until`` (epoch seconds), then returns all traffic to X. The balancer keeps running.
        Returns what to record (the ledger fact ``paused``)."""
        if self.supervisor is None:
            raise TrafficError("a pause needs the traffic supervisor, and this traffic run has none",
                               hint="start the traffic run with a Guard (RunContext.start_traffic does)")
        x, y = self.splitter.weights()
        if self.probe.running:
            self.probe.stop()
        self.supervisor.pause(until, (x, y))
        self.paused = (x, y)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(until))
        message = (f"paused after {step} % Y: X {x} % / Y {y} % held by the traffic supervisor (pid "
                   f"{self.supervisor.pid}) until {stamp}, then all traffic returns to X; resume with "
                   "--from-stage shift")
        self._log(message)
        return {"after_step": step, "weights": [x, y], "until": until, "supervisor_pid": self.supervisor.pid,
                "message": message}

    def close(self) -> list[str]:
        """Stop the probe, return all traffic to X, stop the splitter. Never raises; the problems met.
        A paused run leaves all of it to the supervisor."""
        if self.paused is not None:
            return []
        errors: list[str] = []
        try:
            if self.probe.running:
                self.probe.stop()
        except Exception as exc:
            errors.append(f"stopping the probe: {exc}")
        try:
            if self.splitter.weights() != (100, 0):
                self.splitter.set_weights(100, 0)
                self._log("teardown: all traffic returned to X")
        except Exception as exc:
            errors.append(f"returning traffic to X: {exc}")
        if self.supervisor is not None:
            errors += self.supervisor.close()
        try:
            self.splitter.stop()
        except Exception as exc:
            errors.append(f"stopping the splitter: {exc}")
        shutil.rmtree(self._folder, ignore_errors=True)
        if self._record is not None:
            self._record.unlink(missing_ok=True)
        return errors


@dataclass(frozen=True)
class Guard:
    """What the dead man's switch needs from the run: its id, private folder and lock (the supervisor
    holds the lock too, so no other run sweeps this one while it acts)."""

    run_id: str
    work_dir: Path
    lock_fd: int | None = None
    miss_seconds: float = MISS_SECONDS


def _start_splitter(kind: str, backends: list[Backend], folder: Path, plan: Plan, attempts: int = 3) -> Splitter:
    """Start the splitter; a balancer whose free port was taken meanwhile (another run on this machine)
    is started again on another port."""
    for attempt in range(1, attempts + 1):
        splitter = get_splitter(kind, backends=backends, run_dir=folder, command=plan.traffic.command)
        try:
            splitter.start()
            return splitter
        except TrafficError as exc:
            text = str(exc).lower()
            if attempt == attempts or not any(m in text for m in ("address already in use", "cannot bind")):
                shutil.rmtree(folder, ignore_errors=True)
                raise
    raise AssertionError("unreachable")


def _record_balancer(splitter: Splitter, folder: Path, guard: Guard) -> Path:
    """The balancer's pid record, in the run's folder and in the balancer's own temp folder, so a later
    run can stop it and remove the folder once this run's lock is free (harness.nodes.sweep_dead_runs)."""
    pid = getattr(splitter, "pid", None)
    record: dict[str, object] = record_of(pid) if isinstance(pid, int) else {}
    record.update(kind=splitter.kind, folder=str(folder), run_id=guard.run_id, work_dir=str(guard.work_dir))
    for path in (folder / OWNER_FILE, guard.work_dir / BALANCER_FILE):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
    return guard.work_dir / BALANCER_FILE


def failsafe_for(splitter: Splitter) -> Failsafe:
    """The supervisor's recipe for all traffic on X, read from a started splitter (see harness.supervisor)."""
    from harness.traffic.command import CommandSplitter
    from harness.traffic.haproxy import SPLIT_BACKEND, HAProxySplitter
    from harness.traffic.nginx import STATUS_PATH, NginxSplitter, render_config

    if isinstance(splitter, HAProxySplitter | NginxSplitter):
        on_x = server_weights(splitter.backends, 100, 0)
        weights = tuple((b.name, on_x[b.name]) for b in splitter.backends)
    if isinstance(splitter, HAProxySplitter):
        return HAProxyFailsafe(str(splitter.socket_path), SPLIT_BACKEND, weights)
    if isinstance(splitter, NginxSplitter):
        pid = splitter.pid
        assert pid is not None
        text = render_config(splitter.backends, run_dir=splitter.run_dir, port=splitter.port, weights=on_x,
                             drained=frozenset(), generation=NGINX_FAILSAFE_GENERATION, host=splitter.host)
        return NginxFailsafe(str(splitter.config_path), text, pid, start_time(pid), splitter.host, splitter.port,
                             STATUS_PATH, weights)
    if isinstance(splitter, CommandSplitter):
        def argv(template: str) -> tuple[str, ...]:
            filled = splitter._argv(template, {"x": 100, "y": 0})   # the splitter's own placeholder rules
            return (filled,) if isinstance(filled, str) else tuple(filled)

        get = argv(splitter.get_command) if splitter.get_command else None
        return CommandFailsafe(argv(splitter.set_command), get, splitter.shell, splitter.timeout, splitter.cwd)
    raise TrafficError(f"no failsafe recipe for the {splitter.kind} splitter: the supervisor cannot return its "
                       "traffic to X", hint="add one in harness/run/traffic.py (failsafe_for) and harness.supervisor")
