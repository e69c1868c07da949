"""Configs of real sizes that a whole upgrade can run on, and plans around them.

    .venv/bin/python -m benchmarks.sized_config medium OUT_DIR     # writes OUT_DIR/config.yaml + plan.yaml

``services`` services behind the echo upstream (``${UPSTREAM_URL}``), two routes each (one GET, one
GET/POST), as many consumers with a key-auth credential each, and ``services / 2`` plugins: key-auth on
every fourth route, correlation-id on services. The issue's sizes:

    medium   1,000 services, 2,000 routes, 1,000 consumers + 1,000 keys, 500 plugins =  5,500 entities
    large   10,000 services, 20,000 routes, 10,000 consumers + 10,000 keys, 5,000 plugins = 55,000 entities

Every route is reachable through the echo upstream, so the differential requests and the probe exercise
the whole config. Keys are fake (``sized-key-<n>``) and deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import REPO

SIZES = {"sample": 0, "medium": 1_000, "large": 10_000}


def entity_count(services: int) -> int:
    return services * 5 + services // 2


def sized_config(services: int) -> dict[str, Any]:
    """A Kong 3.x declarative config (nested, as users write it) of ``services`` services."""
    consumers = []
    for k in range(services):
        consumers.append({"username": f"user-{k:05d}", "custom_id": f"cust-{k}",
                          "keyauth_credentials": [{"key": f"sized-key-{k:05d}"}]})
    out_services = []
    plugins_left = services // 2
    for i in range(services):
        routes: list[dict[str, Any]] = [
            {"name": f"svc-{i:05d}-get", "paths": [f"/s{i}/items"], "methods": ["GET"]},
            {"name": f"svc-{i:05d}-rw", "paths": [f"/s{i}/rw"], "methods": ["GET", "POST"]},
        ]
        service: dict[str, Any] = {"name": f"svc-{i:05d}", "url": f"${{UPSTREAM_URL}}/svc/{i}", "routes": routes}
        if plugins_left and i % 2 == 0:   # key-auth on the first route of every other service
            routes[0]["plugins"] = [{"name": "key-auth", "config": {"key_names": ["apikey"]}}]
            plugins_left -= 1
        out_services.append(service)
    return {"_format_version": "3.0", "services": out_services, "consumers": consumers}


def write_sized_plan(size: str, out: Path, *, y_provider: str = "process") -> Path:
    """``out/config.yaml`` of ``size`` and ``out/plan.yaml``: the default plan, 2 X and 2 Y nodes, on it."""
    services = SIZES[size]
    out.mkdir(parents=True, exist_ok=True)
    plan = yaml.safe_load((REPO / "plans" / "default.yaml").read_text())
    if services:
        (out / "config.yaml").write_text(yaml.safe_dump(sized_config(services), sort_keys=False))
        plan["config"]["source"] = "config.yaml"
    else:
        plan["config"].update(source=str(REPO / "plans" / "configs" / "sample.yaml"),
                              allowed_root=str(REPO / "plans" / "configs"))
    plan["name"] = f"sized-{size}"
    plan["x"]["count"] = 2
    plan["y"].update(provider=y_provider, count=2, initial=1)
    plan["traffic"].update(steps=[10, 100], hold_seconds=4)
    path = out / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


if __name__ == "__main__":
    print(write_sized_plan(sys.argv[1], Path(sys.argv[2])))
