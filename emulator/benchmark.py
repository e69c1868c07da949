"""Times of the emulator at real size (issue 11, Build 4): `/config` both ways, CP pages, CP writes, DP sync.

    .venv/bin/python -m emulator.benchmark [--services 10000] [--version 3.9.1]

Run from the repository root (it uses tests/emulator's config generator and process helpers). 10,000
services give 55,000 entities. Prints one line per step; nothing is asserted. Every process it starts is
stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


@contextmanager
def timed(what: str, results: list[tuple[str, float, str]], note: str = "") -> Iterator[None]:
    started = time.perf_counter()
    yield
    results.append((what, time.perf_counter() - started, note))
    print(f"{what:<58} {results[-1][1]:7.2f} s  {note}", flush=True)


def main() -> int:
    from tests.emulator.bigconfig import big_config, entity_count
    from tests.emulator.conftest import make_cluster_cert, start_emulator, wait_for

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--version", default="3.9.1")
    args = parser.parse_args()
    version = args.version
    config = big_config(args.services)
    text = json.dumps(config)
    count = entity_count(config)
    print(f"{count:,} entities; JSON body {len(text) / 1e6:.1f} MB", flush=True)
    results: list[tuple[str, float, str]] = []
    work = Path(tempfile.mkdtemp(prefix="emu-bench-"))
    client = httpx.Client(timeout=600)
    started: list[Any] = []

    def start(role: str = "traditional", **kwargs: Any) -> Any:
        node = start_emulator(version, role=role, wait=False, workdir=work, **kwargs)
        started.append(node)
        url = f"{node.status}/status" if role == "data_plane" else f"{node.admin}/status"
        wait_for(f"{url} to answer", lambda: node.process.poll() is None and httpx.get(url).status_code == 200,
                 timeout=300, log=node.log)
        return node

    try:
        big = {"KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "64m"}
        node = start(env=big)
        with timed("DB-less POST /config (JSON body)", results, f"{len(text) / 1e6:.1f} MB"):
            answer = client.post(node.admin + "/config", content=text, headers={"Content-Type": "application/json"})
        assert answer.status_code == 201, answer.text[:300]
        with timed("DB-less GET /config", results):
            exported = client.get(node.admin + "/config")
        yaml_text = exported.json()["config"]
        results[-1] = (results[-1][0], results[-1][1], f"{len(yaml_text) / 1e6:.1f} MB of YAML")
        with timed("DB-less POST /config of that YAML (config field)", results):
            answer = client.post(node.admin + "/config", json={"config": yaml_text})
        assert answer.status_code == 201, answer.text[:300]

        cert = make_cluster_cert(work / "certs")
        hybrid = {"KONG_CLUSTER_CERT": str(cert.cert), "KONG_CLUSTER_CERT_KEY": str(cert.key),
                  "KONG_EMULATOR_PING_INTERVAL": "1", "KONG_EMULATOR_RECONNECT_DELAY": "0.5-1"}
        with timed("CP start with the config (KONG_DECLARATIVE_CONFIG)", results):
            cp = start("control_plane", env=hybrid, config=text)
        pages = 0
        with timed("CP: every entity page (size=1000) of 5 collections", results):
            for collection in ("services", "routes", "consumers", "plugins", "key-auths"):
                url: str | None = f"/{collection}?size=1000"
                while url:
                    body = client.get(cp.admin + url).json()
                    pages += 1
                    url = body.get("next")
        results[-1] = (results[-1][0], results[-1][1], f"{pages} pages")
        writes = 500
        with timed(f"CP: {writes} service POSTs into {count:,} entities", results):
            for i in range(writes):
                made = client.post(cp.admin + "/services", json={"name": f"extra-{i}", "url": "http://127.0.0.1:9"})
                assert made.status_code == 201, made.text
        results[-1] = (results[-1][0], results[-1][1], f"{results[-1][1] / writes * 1000:.2f} ms per write")

        def cp_hash() -> str:
            rows = client.get(cp.admin + "/clustering/data-planes").json()["data"]
            return rows[0]["config_hash"] if rows else ""

        with timed("DP start and sync of the whole config", results):
            dp = start("data_plane", env={**hybrid, "KONG_DATABASE": "off",
                                          "KONG_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{cp.cluster_port}"})
            wait_for("the DP to be ready", lambda: httpx.get(dp.status + "/status/ready").status_code == 200,
                     timeout=300, log=dp.log)
            wait_for("the DP to report a config hash", lambda: cp_hash() not in ("", "0" * 32), timeout=300,
                     log=cp.log)
        with timed("DP re-sync after one more CP write", results):
            before = httpx.get(dp.status + "/status").json()["configuration_hash"]
            client.post(cp.admin + "/services", json={"name": "one-more", "url": "http://127.0.0.1:9"})
            wait_for("the DP's new hash", lambda: httpx.get(dp.status + "/status").json()["configuration_hash"]
                     != before, timeout=300, log=dp.log)
    finally:
        for node in reversed(started):
            node.stop()
        client.close()
    print("\nstep | seconds | note")
    for what, seconds, note in results:
        print(f"{what} | {seconds:.2f} | {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
