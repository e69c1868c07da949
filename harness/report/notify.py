"""Notifications, as Flagger's alerts: a small JSON body on each stage verdict, each rollback and the
final verdict, to the plan's ``notify.command`` (on its standard input) and/or ``notify.webhook``
(an HTTP POST).

A notification never changes a verdict: every failure (a command that exits non-zero or outlives
``notify.timeout_seconds``, a webhook that refuses, times out or answers non-2xx) is reported
through ``log`` and kept in ``problems``, and the run goes on. The body passes through the run's
redactor; it carries figures and the report's path, never a configuration.

The command runs in its own process group; on timeout that group, and only it, is stopped by its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from harness.report.redact import Redactor

SCHEMA = 1


@dataclass
class Notifier:
    """Sends each event to the command and the webhook the plan names (either, both or neither)."""

    command: str | None = None
    webhook: str | None = None
    timeout_seconds: float = 5.0
    redactor: Redactor = field(default_factory=lambda: Redactor(()))
    log: Callable[[str], None] = print
    sent: list[dict[str, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.command or self.webhook)

    def send(self, event: Mapping[str, object]) -> None:
        """Deliver one event; never raises."""
        if not self.enabled:
            return
        body = self.redactor.text(json.dumps({"schema": SCHEMA, **event}, sort_keys=True, default=str))
        self.sent.append(json.loads(body))
        what = f"{event.get('event')} {event.get('stage') or ''}".strip()
        if self.command:
            problem = self._run_command(body)
            if problem:
                self._problem(f"notify.command for {what}: {problem}")
        if self.webhook:
            problem = self._post(body)
            if problem:
                self._problem(f"notify.webhook for {what}: {problem}")

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        self.log(f"notification failed (the verdict stands): {text}")

    def _run_command(self, body: str) -> str | None:
        assert self.command is not None
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return f"could not start: {exc}"
        try:
            _, err = proc.communicate(body.encode("utf-8"), timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group it was started in; its id is its pid
            proc.communicate()
            return f"still running after {self.timeout_seconds:g} s (pid {proc.pid}, stopped)"
        if proc.returncode != 0:
            tail = self.redactor.text(err.decode("utf-8", "replace").strip().splitlines()[-1:][0]
                                      if err.strip() else "")
            return f"exited {proc.returncode}" + (f": {tail[:200]}" if tail else "")
        return None

    def _post(self, body: str) -> str | None:
        assert self.webhook is not None
        try:
            answer = httpx.post(self.webhook, content=body.encode("utf-8"), timeout=self.timeout_seconds,
                                headers={"content-type": "application/json"}, follow_redirects=False)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {str(exc)[:200] or 'no answer'}"
        if not 200 <= answer.status_code < 300:
            return f"answered {answer.status_code}"
        return None


def stage_event(plan: str, run: str, stage: str, verdict: str, *, cause: str = "", message: str = "",
                figures: Mapping[str, object] | None = None, report: str = "") -> dict[str, object]:
    return {"event": "stage", "plan": plan, "run": run, "stage": stage, "verdict": verdict, "cause": cause,
            "message": message, "figures": dict(figures or {}), "report": report}


def rollback_event(plan: str, run: str, *, reason: str, seconds_to_proof: float, requests_after: int,
                   y_hits_after: int, report: str = "") -> dict[str, object]:
    return {"event": "rollback", "plan": plan, "run": run, "stage": "shift", "verdict": "rolled back",
            "message": reason, "figures": {"seconds_to_proof": seconds_to_proof, "requests_after": requests_after,
                                           "y_hits_after": y_hits_after}, "report": report}


def run_event(plan: str, run: str, *, verdict: str, failing_stage: str | None, headline: str, exit_code: int,
              figures: Mapping[str, object] | None = None, report: str = "") -> dict[str, object]:
    return {"event": "run", "plan": plan, "run": run, "stage": failing_stage, "verdict": verdict,
            "message": headline, "exit_code": exit_code, "figures": dict(figures or {}), "report": report}
