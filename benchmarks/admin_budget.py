"""Admin API call budget at real size: what the 55,000-entity config's calls take, against their deadlines.

    .venv/bin/python -m benchmarks.admin_budget [--services 10000] [--repeat 2] [--version 3.8.1]

Starts one DB-less emulator node on free 127.0.0.1 ports, and through harness.admin.AdminClient (default
budget, default size cap) times: ``POST /config`` of the config as the harness sends it (X's backup, a
dict, as the JSON body), ``GET /config`` and one listing of every service. Each row shows the call's
time, its size, the deadline harness.deadline.CallBudget gives it, and the headroom (deadline / time);
the target is a headroom of at least 5x, so a node five times slower than the emulator still passes. The
node is stopped by its pid. These figures justify the defaults in harness/deadline.py, harness/admin.py
and harness/listing.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import REPO, Row, Table, fmt_ratio, fmt_seconds, print_table, timed
from benchmarks.config_parity import FULL, generate_x
from harness.admin import CONFIG_EXPECTED_BYTES, MAX_ANSWER_BYTES, AdminClient
from harness.deadline import CallBudget, MiB
from harness.listing import LIST_SECONDS
from harness.ports import free_ports
from harness.wait import wait_until

TARGET_HEADROOM = 5.0


def start_node(version: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    admin, proxy = free_ports(2)
    env = {**os.environ, "KONG_EMULATOR_VERSION": version, "KONG_DATABASE": "off",
           "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin}", "KONG_PROXY_LISTEN": f"127.0.0.1:{proxy}",
           "KONG_STATUS_LISTEN": "off", "KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "64m"}  # the YAML is > 10m
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{admin}"
    with AdminClient(url, retries=0) as probe:
        wait_until(probe.root, what="the emulator's Admin API", where=url, timeout=20,
                   logs=lambda: log.read_text(errors="replace"))
    return process, url


def stop_node(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def headroom_row(what: str, seconds: float, deadline: float, size: str) -> Row:
    room = deadline / seconds if seconds > 0 else float("inf")
    return Row(what, f"{fmt_seconds(seconds)} ({size})", f"deadline {deadline:.1f} s", fmt_ratio(room),
               f">= {TARGET_HEADROOM:g}x", room >= TARGET_HEADROOM)


def measure(services: int, repeat: int, version: str) -> Table:
    sizes = FULL if services == FULL.services else FULL.scaled(services / FULL.services)
    config = generate_x(sizes)
    text = yaml.dump(config, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    budget = CallBudget()
    rows: list[Row] = []
    notes = [f"{sizes.describe()}; the backup's YAML is {len(text.encode()) / MiB:.1f} MiB",
             f"budget: {budget.describe()}; answer cap {MAX_ANSWER_BYTES / MiB:.0f} MiB; "
             f"GET /config expects {CONFIG_EXPECTED_BYTES / MiB:.0f} MiB; a listing {LIST_SECONDS:.0f} s"]
    with tempfile.TemporaryDirectory(prefix="kuh-admin-budget-") as tmp:
        process, url = start_node(version, Path(tmp) / "node.log")
        try:
            with AdminClient(url) as admin:
                sent = len(json.dumps(config, separators=(",", ":")).encode())    # httpx's compact JSON body
                post = get = listing = float("inf")
                answer = exported = pages = 0
                for _ in range(repeat):
                    with timed() as t:
                        loaded = admin.post_config(config)       # a dict, as harness.run.clusters sends it
                    post = min(post, t.seconds)
                    answer = len(json.dumps(loaded.entities).encode())
                    with timed() as t:
                        got = admin.config()
                    get = min(get, t.seconds)
                    exported = len(yaml.dump(got, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                             sort_keys=False).encode())
                    counted: list[int] = []
                    with timed() as t:
                        listed = admin.list("services", on_progress=lambda p, e, seen=counted: seen.append(p))
                    listing = min(listing, t.seconds)
                    pages = counted[-1] if counted else 0
                    assert len(listed) == sizes.services
            rows.append(headroom_row("POST /config (the backup, as the harness sends it)", post,
                                     budget.seconds(sent), f"{sent / MiB:.1f} MiB sent"))
            rows.append(headroom_row("GET /config (before and while its answer comes)", get,
                                     budget.seconds(max(CONFIG_EXPECTED_BYTES, exported)),
                                     f"~{exported / MiB:.1f} MiB of YAML"))
            rows.append(headroom_row(f"list services ({pages} pages of 100)", listing, LIST_SECONDS,
                                     f"{sizes.services:,} entities"))
            notes.append(f"the 201 answer to POST /config is ~{answer / MiB:.1f} MiB of JSON (re-encoded), under the "
                         f"{MAX_ANSWER_BYTES / MiB:.0f} MiB answer cap")
            notes.append(f"best of {repeat}; emulator {version}, DB-less, on free 127.0.0.1 ports, stopped by pid")
        finally:
            stop_node(process)
    return Table("Admin API call budget at 55,000 entities", tuple(rows), tuple(notes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--services", type=int, default=FULL.services)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--version", default="3.8.1")
    args = parser.parse_args(argv)
    table = measure(args.services, args.repeat, args.version)
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
