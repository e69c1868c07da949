"""The run context: the composition root that owns one run's parts and closes them in order.

    RunContext
      clients    Admin/Status clients (X's read-only and audited)        harness.run.clients
      upstream   the echo upstream and X's rendered configuration        harness.run.upstream
      clusters   providers, X's nodes, Y's nodes, readiness              harness.run.clusters
      traffic    splitter + probe, once the shift starts it              harness.run.traffic
      backup     X's backup, once the backup stage captured it (or a resume loaded it)
      secrets    the one secret store every writer reads
      record     what the run did, for the reports

Nothing here does I/O when constructed: ``open()`` resolves the providers (``auto`` asks Docker)
and makes the private work folder. No part re-runs an earlier stage behind the caller's back:
a stage that needs an earlier stage's result asks for it (``require_backup``, ``require_traffic``)
and is told what is missing; a resumed session brings back what its first stage needs through
``restore``, which says what it does.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks.backup import BACKUP_FILE, Backup, load_backup
from harness.corpus import Corpus, build_corpus
from harness.errors import HarnessError
from harness.ledger import STAGES
from harness.locks import RUN_ENV, RunLock
from harness.nodes import RUN_FILE, SWEPT_FILE, sweep, sweep_dead_runs
from harness.plan import Plan
from harness.record import RunRecord
from harness.report.redact import SecretStore
from harness.run.clients import Clients
from harness.run.clusters import Clusters, resolve_provider
from harness.run.traffic import Guard, TrafficRun
from harness.run.upstream import Upstream
from harness.rundir import RunDir
from harness.supervisor import Held, take_over

ROOT = Path(__file__).resolve().parents[2]


def work_root() -> Path:
    """Node folders, the restorable backup, certificates: private, never in the run folder
    (``KUH_WORK_ROOT`` moves it)."""
    return Path(os.environ.get("KUH_WORK_ROOT") or ROOT / ".kuh")


@dataclass(repr=False)
class RunContext:
    """Everything one upgrade run starts and talks to. Its repr names no config and no secret."""

    plan: Plan
    run_dir: RunDir
    log: Callable[[str], None] = print
    admin_token: str | None = None
    x_provider: str | None = None           # overrides of the plan's providers (CLI)
    y_provider: str | None = None
    upstream_port: int | None = None        # a resumed session reuses the first one's echo port
    secrets: SecretStore = field(default_factory=SecretStore)
    record: RunRecord = field(default_factory=RunRecord)
    provider_notes: dict[str, str] = field(default_factory=dict)
    backup: Backup | None = None
    traffic: TrafficRun | None = None
    held: Held | None = None                # a resumed session: what a paused run's supervisor held
    pause_note: str | None = None           # this session ended in a deliberate pause
    _lock: RunLock | None = None
    _clusters: Clusters | None = None
    _clients: Clients | None = None
    _upstream: Upstream | None = None
    _corpus: Corpus | None = None
    _traffic_error: str | None = None

    def __repr__(self) -> str:
        return f"RunContext(plan={self.plan.name!r}, run_id={self.run_id!r})"

    @property
    def run_id(self) -> str:
        return self.run_dir.run_id

    @property
    def work_dir(self) -> Path:
        return work_root() / self.run_id

    def open(self) -> RunContext:
        """Make the private work folder (mode 0700), take over a paused split (resume), take the run
        lock for the whole session, label what the run starts (``KUH_RUN_ID``), resolve the providers."""
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.held = take_over(self.work_dir / "supervisor")
        self._lock = RunLock.acquire(self.work_dir)
        os.environ[RUN_ENV] = self.run_id
        (self.work_dir / SWEPT_FILE).unlink(missing_ok=True)
        x, self.provider_notes["x"] = resolve_provider(self.x_provider or self.plan.x.provider, self.plan.x.image)
        y, self.provider_notes["y"] = resolve_provider(self.y_provider or self.plan.y.provider, self.plan.y.image)
        (self.work_dir / RUN_FILE).write_text(json.dumps({"providers": [x, y], "pid": os.getpid()}))
        self.secrets.add([self.admin_token])
        rec = self.record
        rec.plan_name, rec.mode, rec.splitter = self.plan.name, self.plan.mode, self.plan.traffic.splitter
        rec.x_version, rec.y_version = self.plan.x.version or "", self.plan.y_version
        self._clients = Clients(self.admin_token, max_call_seconds=self.plan.admin.max_call_seconds)
        self._upstream = Upstream(self.plan, self.work_dir, self.log, port=self.upstream_port)
        self._clusters = Clusters(self.plan, run_id=self.run_id, work_dir=self.work_dir, clients=self._clients,
                                  upstream=self._upstream, record=rec, log=self.log, x_provider=x, y_provider=y)
        return self

    def _opened(self) -> tuple[Clients, Upstream, Clusters]:
        if self._clients is None or self._upstream is None or self._clusters is None:
            raise HarnessError("the run context is not open", hint="call RunContext.open() first")
        return self._clients, self._upstream, self._clusters

    @property
    def clients(self) -> Clients:
        return self._opened()[0]

    @property
    def upstream(self) -> Upstream:
        return self._opened()[1]

    @property
    def clusters(self) -> Clusters:
        return self._opened()[2]

    def use_probe_rate(self, rate: float) -> None:
        """Run the probe at ``rate`` instead of the plan's (preflight caps it at what this machine holds)."""
        if rate != self.plan.probe.rate:
            self.plan = self.plan.model_copy(update={"probe": self.plan.probe.model_copy(update={"rate": rate})})

    @property
    def echo_port(self) -> int | None:
        """The echo upstream's port once it runs (a resumed session reuses it)."""
        return self._upstream.echo_port if self._upstream is not None else None

    def sweep_leftovers(self, *, resume: bool = True) -> list[str]:
        """Remove what dead runs left (any plan, only runs whose lock is free: never a live or paused
        run) and, on ``resume``, what an earlier session of this run left; say what was removed."""
        c = self.clusters
        results = [sweep(self.run_id, run_dir=self.work_dir / "nodes", work_dir=self.work_dir,
                         docker="docker" in (c.x_provider, c.y_provider))] if resume else []
        results += sweep_dead_runs(work_root(), skip=self.run_id)
        lines = [r.line() for r in results if r.removed]
        for line in lines:
            self.log(f"removed leftovers of a dead run: {line}")
        return lines

    # ---- results of earlier stages --------------------------------------------------------------
    def set_backup(self, backup: Backup) -> None:
        self.backup = backup
        self.secrets.add(build_corpus(backup.config).secrets)
        self._corpus = None

    def require_backup(self) -> Backup:
        if self.backup is None:
            raise HarnessError("no backup of X in this session",
                               hint="the backup stage captures it; resume with --from-stage backup")
        return self.backup

    def corpus(self) -> Corpus:
        """The request corpus derived from X's backup (its consumer keys join the secret store)."""
        if self._corpus is None:
            self._corpus = build_corpus(self.require_backup().config)
            self.secrets.add(self._corpus.secrets)
        return self._corpus

    def start_traffic(self) -> TrafficRun:
        """Start the splitter and the probe (once; a failed start is reported once, not per step)."""
        if self._traffic_error is not None:
            raise HarnessError(f"traffic could not start earlier in this run: {self._traffic_error}")
        if self.traffic is None:
            c = self.clusters
            try:
                guard = Guard(self.run_id, self.work_dir, self._lock.fileno() if self._lock else None)
                initial = self.held.weights if self.held and self.held.weights else (100, 0)
                self.traffic = TrafficRun.start(self.plan, c.x_nodes, c.y_nodes, self.corpus(), self.log,
                                                guard=guard, initial=initial)
            except HarnessError as exc:
                self._traffic_error = str(exc).splitlines()[0]
                raise
        return self.traffic

    @property
    def held_step(self) -> int:
        """The Y weight a paused run's supervisor still held when this session took over (0: none)."""
        return self.held.weights[1] if self.held and self.held.weights else 0

    def pause_traffic(self, step: int) -> dict[str, object]:
        """End the session after ``step``, the split held by the supervisor for at most
        ``traffic.max_pause_seconds`` (the nodes keep running for it); the ledger fact to record."""
        fact = self.require_traffic().pause(time.time() + self.plan.traffic.max_pause_seconds, step)
        self.pause_note = str(fact["message"])
        return fact

    def require_traffic(self) -> TrafficRun:
        if self.traffic is None:
            raise HarnessError("traffic is not running in this session",
                               hint="the shift stage starts it; resume with --from-stage shift")
        return self.traffic

    def restore(self, first_stage: str) -> None:
        """A resumed session: bring back what ``first_stage`` builds on, and say so.

        X is started (or adopted) again, X's backup is read from the private work folder, Y is
        deployed again from it to the size the earlier stages reached, and from decommission on the
        traffic run is started again (all on X, then the stage drains X).
        """
        index = STAGES.index(first_stage)
        if index <= STAGES.index("preflight"):
            return
        c = self.clusters
        self.log(f"resuming at {first_stage}: starting cluster X again")
        c.start_x()
        if index <= STAGES.index("backup"):
            return
        self.set_backup(load_backup(self.work_dir))
        self.log(f"resuming at {first_stage}: X's backup read from {self.work_dir / BACKUP_FILE}")
        if index <= STAGES.index("deploy"):
            return
        backup = self.require_backup()
        count = self.plan.y.initial if index <= STAGES.index("scale") else self.plan.y.count
        self.log(f"resuming at {first_stage}: deploying {count} Y node(s) again from the backup")
        c.deploy_y(count, backup.config)
        if index >= STAGES.index("decommission"):
            self.log("resuming at decommission: starting the splitter and the probe again")
            self.start_traffic()

    def close(self) -> None:
        """Traffic back to X, then stop the splitter, the clients, Y, harness-owned X, the upstream,
        and release the run lock; after a pause all of it stays for the supervisor. Never raises."""
        errors: list[str] = []
        if self.traffic is not None:
            errors += self.traffic.close()   # paused: the splitter stays, with the supervisor
        if self._clients is not None:
            self._clients.close()
        if (c := self._clusters) is not None and self.pause_note:   # the held split needs its nodes, upstream
            for name in {c.x_provider, c.y_provider}:
                atexit.unregister(c.provider(name).close)
        elif c is not None:
            errors += c.close()
        if self._upstream is not None and not self.pause_note:
            self._upstream.close()
        if self._lock is not None:   # paused: the supervisor keeps holding the lock
            self._lock.forget() if self.pause_note else self._lock.release()
        os.environ.pop(RUN_ENV, None)
        for line in errors:
            self.log(f"teardown problem: {line}")
