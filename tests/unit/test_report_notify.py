"""Notifications: the JSON body reaches the command and the webhook; every failure is reported, none raises."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.ports import free_port
from harness.report.notify import Notifier, rollback_event, run_event, stage_event
from harness.report.redact import Redactor


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, object]], list[int]]]:
    bodies: list[dict[str, object]] = []
    status = [204]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(status[0])
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies, status
    server.shutdown()
    server.server_close()


def test_webhook_gets_the_small_json_body(receiver: tuple[str, list[dict[str, object]], list[int]]) -> None:
    url, bodies, _ = receiver
    logged: list[str] = []
    n = Notifier(webhook=url, log=logged.append)
    n.send(stage_event("p", "run-1", "shift", "failed", cause="check", message="gate failed at 50 % Y",
                       figures={"steps_passed": 2}, report="/r/signoff.html"))
    n.send(rollback_event("p", "run-1", reason="gate", seconds_to_proof=0.3, requests_after=80, y_hits_after=0))
    n.send(run_event("p", "run-1", verdict="failed", failing_stage="shift", headline="h", exit_code=1))
    assert [b["event"] for b in bodies] == ["stage", "rollback", "run"]
    assert bodies[0] == {"schema": 1, "event": "stage", "plan": "p", "run": "run-1", "stage": "shift",
                         "verdict": "failed", "cause": "check", "message": "gate failed at 50 % Y",
                         "figures": {"steps_passed": 2}, "report": "/r/signoff.html"}
    assert bodies[1]["figures"] == {"seconds_to_proof": 0.3, "requests_after": 80, "y_hits_after": 0}
    assert n.problems == [] and logged == []


def test_a_refusing_or_absent_receiver_is_reported_never_raised(
        receiver: tuple[str, list[dict[str, object]], list[int]]) -> None:
    url, _, status = receiver
    status[0] = 500
    logged: list[str] = []
    n = Notifier(webhook=url, log=logged.append)
    n.send(stage_event("p", "r", "preflight", "passed"))
    down = Notifier(webhook=f"http://127.0.0.1:{free_port()}", timeout_seconds=1, log=logged.append)
    down.send(stage_event("p", "r", "preflight", "passed"))
    assert n.problems == ["notify.webhook for stage preflight: answered 500"]
    assert len(down.problems) == 1 and "ConnectError" in down.problems[0]
    assert all("the verdict stands" in line for line in logged) and len(logged) == 2


def test_the_command_reads_the_body_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    n = Notifier(command=f"cat > {out}")
    n.send(stage_event("p", "r", "backup", "passed"))
    assert json.loads(out.read_text())["stage"] == "backup" and n.problems == []


def test_a_failing_or_hanging_command_is_reported_and_stopped(tmp_path: Path) -> None:
    n = Notifier(command="echo nope >&2; exit 3", log=lambda _: None)
    n.send(stage_event("p", "r", "backup", "passed"))
    assert n.problems == ["notify.command for stage backup: exited 3: nope"]
    marker = tmp_path / "still-running"
    slow = Notifier(command=f"sleep 5; touch {marker}", timeout_seconds=0.5, log=lambda _: None)
    started = time.monotonic()
    slow.send(stage_event("p", "r", "backup", "passed"))
    assert time.monotonic() - started < 4
    assert "still running after 0.5 s" in slow.problems[0]
    time.sleep(0.2)
    assert not marker.exists()


def test_secrets_never_leave_in_a_body(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    n = Notifier(command=f"cat > {out}", redactor=Redactor(["fake-key-alice-0001"]))
    n.send(stage_event("p", "r", "staging", "failed", message="key fake-key-alice-0001 refused"))
    assert "fake-key-alice-0001" not in out.read_text()


def test_without_command_or_webhook_nothing_is_sent() -> None:
    n = Notifier()
    n.send(stage_event("p", "r", "staging", "passed"))
    assert not n.enabled and n.sent == []
