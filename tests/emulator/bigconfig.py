"""A real-size declarative config for the emulator's size and speed checks (issue 11, Build 4).

`big_config(services=10_000)` gives 10,000 services, 20,000 routes (two per service), 10,000 consumers with
one key-auth credential each and 5,000 plugins: 55,000 entities. Half the plugins are key-auth on routes,
the rest rate-limiting on services (loaded, not executed, by the emulator). Everything scales with
`services`, so `big_config(1_000)` is the 5,500-entity medium size. Deterministic: ids are uuid5 of the
entity's name, keys are derived from the consumer's index.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

_NS = uuid.UUID("5d0c2a7e-9a1b-4c55-8d0e-3f1f6a2b7c10")


def _id(kind: str, index: int) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{index}"))


def consumer_key(index: int) -> str:
    """The key-auth credential of consumer `index`."""
    return f"key-{index:05d}-{uuid.uuid5(_NS, f'key-{index}').hex[:16]}"


def big_config(services: int = 10_000, upstream: str = "http://127.0.0.1:9", fmt: str = "3.0",
               with_ids: bool = True) -> dict[str, Any]:
    """The flat config as a dict (top-level lists, foreign keys by id); 5.5 entities per service."""
    host_port = upstream.split("://", 1)[1]
    host, _, port = host_port.partition(":")
    out: dict[str, list[dict[str, Any]]] = {
        "services": [], "routes": [], "consumers": [], "keyauth_credentials": [], "plugins": []}

    def ident(kind: str, index: int) -> dict[str, str]:
        return {"id": _id(kind, index)} if with_ids else {}

    for i in range(services):
        out["services"].append({**ident("service", i), "name": f"svc-{i:05d}", "protocol": "http",
                                "host": host, "port": int(port or 80), "path": f"/s{i}",
                                "tags": ["bench", f"tier-{i % 3}"]})
        for r in range(2):
            j = 2 * i + r
            out["routes"].append({**ident("route", j), "name": f"route-{j:05d}", "paths": [f"/s{i}/r{r}"],
                                  "methods": ["GET", "POST"] if r == 0 else None,
                                  "service": {"id": _id("service", i)} if with_ids else {"name": f"svc-{i:05d}"}})
        out["consumers"].append({**ident("consumer", i), "username": f"user-{i:05d}", "custom_id": f"c-{i}"})
        out["keyauth_credentials"].append({**ident("cred", i), "key": consumer_key(i),
                                           "consumer": {"id": _id("consumer", i)} if with_ids
                                           else {"username": f"user-{i:05d}"}})
    for p in range(services // 2):
        if p % 2 == 0:
            j = 2 * p  # the first route of service p
            out["plugins"].append({**ident("plugin", p), "name": "key-auth",
                                   "route": {"id": _id("route", j)} if with_ids else {"name": f"route-{j:05d}"},
                                   "config": {"key_names": ["apikey"]}})
        else:
            out["plugins"].append({**ident("plugin", p), "name": "rate-limiting",
                                   "service": {"id": _id("service", p)} if with_ids else {"name": f"svc-{p:05d}"},
                                   "config": {"minute": 100, "policy": "local"}})
    return {"_format_version": fmt, **out}


def entity_count(config: dict[str, Any]) -> int:
    return sum(len(v) for k, v in config.items() if isinstance(v, list))


def big_config_text(services: int = 10_000, upstream: str = "http://127.0.0.1:9") -> str:
    """JSON text of `big_config` (a JSON document is also valid YAML, as Kong parses it)."""
    return json.dumps(big_config(services, upstream))
