"""Kong Admin API and Status API clients, and the read-only view used for cluster X.

- :class:`AdminClient`: reads and writes (writes are used on cluster Y only).
- :class:`ReadOnlyAdmin`: the view for cluster X. It has only read methods, and its transport refuses
  every method but GET/HEAD with :class:`ReadOnlyViolation` before anything is sent.
- :class:`StatusClient`: the Status API (a DP has no Admin API, only ``status_listen``).

What each call means to Kong lives here: ``GET /`` -> :class:`NodeInfo`, ``GET /config`` parsed from its YAML
(harness.yamlsafe), ``/clustering/data-planes`` -> :class:`DataPlane`, ``POST /config`` -> :class:`ConfigLoad`,
entity writes. Every call goes through the bounded transport (harness.transport: a total deadline from the
call's size, a streamed size cap of :data:`MAX_ANSWER_BYTES` unless set, a watchdog, bounded retries);
listing a collection is harness.listing (one deadline over all pages; endless or off-node pages refused).

The admin token is sent as ``Kong-Admin-Token`` and never appears in a repr, an error or a log line, and
never leaves the node's own host and port: a ``next`` page elsewhere is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from harness.api_errors import api_error, parse_json, preview, scrub
from harness.deadline import CallBudget, Deadline, MiB
from harness.errors import BadResponse
from harness.listing import ENTITY_PATHS, CollectionReads
from harness.transport import Http
from harness.yamlsafe import YamlRefused, load_yaml

#: the largest answer body (after any gzip) the clients read by default. For the 55,000-entity config
#: (benchmarks.admin_budget) ``GET /config`` answers 19 MiB of YAML in a JSON string and the 201 answer to
#: its ``POST /config`` (every entity flattened, with defaults) is of the order of 23 MiB: 64 MiB is 2.8 times
#: the larger, room for larger entities (certificates, plugin configs) without letting a node exhaust memory.
MAX_ANSWER_BYTES = 64 * MiB

#: the answer size ``GET /config`` is given time for before its headers arrive (the node exports the whole
#: config first): 5 + 10 x 8 = 85 s, 19 times the 2.8-4.5 s the emulator took for the whole 19 MiB answer
#: of 55,000 entities. A larger answer earns more time as its bytes arrive.
CONFIG_EXPECTED_BYTES = 8 * MiB


@dataclass(frozen=True)
class NodeInfo:
    """What ``GET /`` says about a node."""

    version: str
    edition: str | None            # "community" | "enterprise"; None before 3.6 (not reported)
    node_id: str | None
    hostname: str | None
    role: str                      # "traditional" | "control_plane" | "data_plane"
    database: str | None           # "off" in DB-less mode; "postgres" ...
    plugins_available: tuple[str, ...]
    plugins_enabled: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """``dbless``, ``cp``, ``dp`` or ``traditional``."""
        if self.role == "control_plane":
            return "cp"
        if self.role == "data_plane":
            return "dp"
        return "dbless" if self.database == "off" else "traditional"


@dataclass(frozen=True)
class DataPlane:
    """One row of a CP's ``/clustering/data-planes``."""

    id: str
    hostname: str | None
    ip: str | None
    version: str | None
    sync_status: str | None
    config_hash: str | None
    last_seen: float | None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ConfigLoad:
    """Result of ``POST /config``: 201 with the flattened entities, or 304 when ``check_hash`` matched."""

    status: int
    entities: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> bool:
        return self.status == 201


# ---------------------------------------------------------------------------------------------------
# clients


class _StatusReads:
    _http: Http

    def status(self) -> dict[str, Any]:
        """``GET /status``: memory, server counters, database (not in DB-less 3.4+), configuration_hash."""
        response = self._http.request("GET", "/status")
        body = self._http.json(response)
        if "server" not in body:
            raise BadResponse(f"GET {self._http.url('/status')} has no 'server' field: {preview(response)}")
        return dict(body)

    def ready(self) -> tuple[int, str]:
        """``GET /status/ready`` (3.3+): ``(200, "ready")`` or ``(503, Kong's reason)``."""
        response = self._http.request("GET", "/status/ready")
        if response.status_code in (200, 503):
            body = parse_json(response)
            message = body.get("message") if isinstance(body, dict) else None
            if not isinstance(message, str):
                raise BadResponse(
                    f"GET {self._http.url('/status/ready')} answered {response.status_code} without a "
                    f"message: {preview(response)!r}")
            return response.status_code, message
        if 300 <= response.status_code < 400:
            self._http.json(response)           # raises: a redirect
        raise api_error(f"GET {self._http.url('/status/ready')}", response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatusClient(_StatusReads):
    """The Status API (``status_listen``): the only HTTP surface of a DP. Read-only by construction.

    ``timeout`` is the base of every call's total deadline (``budget`` replaces the whole policy);
    ``max_bytes`` caps an answer's size.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None, budget: CallBudget | None = None,
                 max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._http = Http(base_url, token=None, timeout=timeout, retries=retries, transport=transport,
                          read_only=True, what="Kong Status API", budget=budget, max_bytes=max_bytes)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        return f"StatusClient({self._http.base_url!r})"


@dataclass(frozen=True)
class _Settings:
    token: str | None = field(repr=False)
    timeout: float
    retries: int
    transport: httpx.BaseTransport | None
    retry_cap: float
    sleep: Callable[[float], None]
    budget: CallBudget | None
    max_bytes: int


class _AdminReads(_StatusReads, CollectionReads):
    """The read methods shared by :class:`AdminClient` and :class:`ReadOnlyAdmin`, and their
    constructor: the two differ only in whether the transport refuses writes (``_read_only``).

    ``timeout`` is the base of every call's total deadline and the connect timeout; ``budget`` replaces
    the whole size-scaled policy (harness.deadline.CallBudget); ``max_bytes`` caps an answer's size.
    """

    _read_only: bool
    _what: str

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        retry_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        budget: CallBudget | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._settings = _Settings(token, timeout, retries, transport, retry_cap, sleep, budget, max_bytes)
        self._http = Http(base_url, token=token, timeout=timeout, retries=retries, transport=transport,
                          read_only=self._read_only, what=self._what, retry_cap=retry_cap, sleep=sleep,
                          budget=budget, max_bytes=max_bytes)

    def __repr__(self) -> str:
        token = ", token=<set>" if self._settings.token else ""
        return f"{type(self).__name__}({self._http.base_url!r}{token})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def root(self) -> NodeInfo:
        """``GET /``: version, edition, node id, role, database, plugins."""
        response = self._http.request("GET", "/")
        body = self._http.json(response)
        version = body.get("version")
        if not isinstance(version, str):
            raise BadResponse(f"GET {self._http.url('/')} has no version: {preview(response)}",
                              hint="is this URL a Kong Admin API? (the proxy port answers 404 here)")
        conf = body.get("configuration") if isinstance(body.get("configuration"), dict) else {}
        plugins = body.get("plugins") if isinstance(body.get("plugins"), dict) else {}
        available = plugins.get("available_on_server")
        enabled = plugins.get("enabled_in_cluster")
        return NodeInfo(
            version=version,
            edition=_text(body.get("edition")),
            node_id=_text(body.get("node_id")),
            hostname=_text(body.get("hostname")),
            role=_text(conf.get("role")) or "traditional",
            database=_text(conf.get("database")),
            # 2.8: name->true; 3.x: name->{version,priority}
            plugins_available=tuple(sorted(str(p) for p in available)) if isinstance(available, dict) else (),
            plugins_enabled=tuple(sorted(p for p in enabled if isinstance(p, str))) if isinstance(enabled, list)
            else (),
            raw=body,
        )

    def config(self, *, expect_bytes: int = CONFIG_EXPECTED_BYTES, deadline: Deadline | None = None) -> dict[str, Any]:
        """DB-less ``GET /config``: the flat declarative export, parsed from its YAML string.

        The call gets time for an answer of ``expect_bytes`` before its headers arrive (the node exports
        first), more as a larger answer comes in, never past ``deadline`` when one is given.
        The YAML is read with aliases, nesting and size limited (harness.yamlsafe): a YAML bomb is
        refused at once.
        """
        where = f"GET {self._http.url('/config')}"
        response = self._http.request("GET", "/config", expect_bytes=expect_bytes, within=deadline)
        body = self._http.json(response)
        text = body.get("config")
        if not isinstance(text, str):
            raise BadResponse(f"{where} has no 'config' string: {preview(response)}",
                              hint="is this node DB-less? (a CP or database node answers 400 here)")
        data = _node_yaml(text, where=where, max_bytes=self._http.max_bytes)
        if not isinstance(data, dict):
            raise BadResponse(f"{where}: the config is not a mapping but {type(data).__name__}",
                              hint="is this URL a Kong Admin API? Kong exports a mapping with _format_version")
        return data

    def data_planes(self) -> tuple[DataPlane, ...]:
        """A CP's ``/clustering/data-planes`` (400 with Kong's message on any other node)."""
        planes = []
        for row in self.pages("/clustering/data-planes"):
            labels = row.get("labels")
            planes.append(DataPlane(
                id=str(row.get("id")), hostname=_text(row.get("hostname")), ip=_text(row.get("ip")),
                version=_text(row.get("version")), sync_status=_text(row.get("sync_status")),
                config_hash=_text(row.get("config_hash")),
                last_seen=seen if isinstance(seen := row.get("last_seen"), int | float) else None,
                labels=labels if isinstance(labels, dict) else {}, raw=row,
            ))
        return tuple(planes)


def _text(value: Any) -> str | None:
    """A string field of Kong's answer, or None when it is missing or not a string."""
    return value if isinstance(value, str) else None


def _node_yaml(text: str, *, where: str, max_bytes: int) -> Any:
    """A node's YAML answer, read with size, nesting and aliases limited (harness.yamlsafe): a YAML bomb
    is refused at once, as a :class:`BadResponse` naming the limit."""
    try:
        return load_yaml(text, source=where, max_bytes=max_bytes)
    except (YamlRefused, yaml.YAMLError) as exc:
        raise BadResponse(f"{where} returned YAML that was refused or does not parse: {scrub(str(exc))}",
                          hint="Kong's own export is plain YAML without aliases: check what answers on this "
                               "port, or capture the config by entity listing") from None


class AdminClient(_AdminReads):
    """Kong Admin API client: reads, and writes for cluster Y (``post_config``, ``create``)."""

    _read_only = False
    _what = "Kong Admin API"

    def read_only(self) -> ReadOnlyAdmin:
        """A read-only view of the same node (same URL, token, timeouts and transport)."""
        s = self._settings
        return ReadOnlyAdmin(self._http.base_url, token=s.token, timeout=s.timeout, retries=s.retries,
                             transport=s.transport, retry_cap=s.retry_cap, sleep=s.sleep, budget=s.budget,
                             max_bytes=s.max_bytes)

    def post_config(self, config: str | Mapping[str, Any], *, check_hash: bool = False,
                    flatten_errors: bool = False) -> ConfigLoad:
        """DB-less ``POST /config``. Text goes in the ``config`` field (so ``check_hash`` can answer 304);
        a dict goes as the JSON body and must carry ``_format_version``. The call's deadline grows with
        the size of what is sent (harness.deadline.CallBudget): Kong validates and loads it all first."""
        params = {}
        if check_hash:
            params["check_hash"] = "1"
        if flatten_errors:
            params["flatten_errors"] = "1"
        if isinstance(config, str):
            payload: Any = {"config": config}
        else:
            if "_format_version" not in config:
                raise ValueError("a declarative config dict needs _format_version (e.g. \"3.0\")")
            payload = dict(config)
        response = self._http.request("POST", "/config", params=params, json=payload)
        if response.status_code == 304:
            return ConfigLoad(304)
        body = self._http.json(response)
        return ConfigLoad(response.status_code, body)

    def create(self, entity: str, body: Mapping[str, Any], *, parent: str | None = None) -> dict[str, Any]:
        """``POST`` one entity (database mode / CP); ``parent`` nests it: ``/consumers/{id}/key-auth``."""
        if parent is not None:
            child = "key-auth" if entity in ("key-auths", "keyauth_credentials") else entity
            path = f"{parent.rstrip('/')}/{child}"
        elif entity in ENTITY_PATHS and "{" not in ENTITY_PATHS[entity]:
            path = ENTITY_PATHS[entity]
        else:
            raise ValueError(f"cannot create {entity!r} at top level; give parent= (e.g. '/upstreams/<id>')")
        return dict(self._http.json(self._http.request("POST", path, json=dict(body))))

    def load_config_via_entities(self, declarative: Mapping[str, Any]) -> dict[str, int]:
        """Create a declarative config's entities one by one (a CP or database-mode node), parents first.

        Accepts nested and flat files; foreign keys by name or id. Returns counts per kind.
        """
        from harness.config_rules import NESTED_CHILDREN

        ids: dict[str, dict[str, str]] = {}
        counts: dict[str, int] = {}

        def remember(kind: str, item: Mapping[str, Any], created: Mapping[str, Any]) -> str:
            new_id = str(created.get("id"))
            table = ids.setdefault(kind, {})
            for f in ("id", "name", "username", "custom_id"):
                if item.get(f):
                    table[str(item[f])] = new_id
            counts[kind] = counts.get(kind, 0) + 1
            return new_id

        def ref(kind: str, value: Any) -> dict[str, str]:
            if isinstance(value, Mapping):
                value = value.get("id") or value.get("name") or value.get("username")
            return {"id": ids.get(kind, {}).get(str(value), str(value))}

        def strip(item: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in item.items()
                    if k not in ("created_at", "updated_at")
                    and not (k in NESTED_CHILDREN and isinstance(v, list)
                             and all(isinstance(i, Mapping) for i in v))}

        deferred: list[Callable[[], None]] = []     # plugins go last: they may name any consumer

        def create_plugins(items: Any, scope: dict[str, Any]) -> None:
            for plugin in items or []:
                def create_one(plugin: Mapping[str, Any] = plugin) -> None:
                    body = strip(plugin)
                    for f, kind in (("service", "services"), ("route", "routes"), ("consumer", "consumers")):
                        if body.get(f) is not None:
                            body[f] = ref(kind, body[f])
                    body.update(scope)
                    remember("plugins", plugin, self.create("plugins", body))
                deferred.append(create_one)

        def create_route(route: Mapping[str, Any], service_id: str | None) -> None:
            body = strip(route)
            if service_id is not None:
                body["service"] = {"id": service_id}
            elif body.get("service") is not None:
                body["service"] = ref("services", body["service"])
            route_id = remember("routes", route, self.create("routes", body))
            create_plugins(route.get("plugins"), {"route": {"id": route_id}})

        for service in declarative.get("services") or []:
            service_id = remember("services", service, self.create("services", strip(service)))
            for route in service.get("routes") or []:
                create_route(route, service_id)
            create_plugins(service.get("plugins"), {"service": {"id": service_id}})
        for route in declarative.get("routes") or []:
            create_route(route, None)
        for consumer in declarative.get("consumers") or []:
            consumer_id = remember("consumers", consumer, self.create("consumers", strip(consumer)))
            for cred in consumer.get("keyauth_credentials") or []:
                remember("keyauth_credentials", cred,
                         self.create("key-auths", strip(cred), parent=f"/consumers/{consumer_id}"))
            create_plugins(consumer.get("plugins"), {"consumer": {"id": consumer_id}})
        for cred in declarative.get("keyauth_credentials") or []:
            consumer_ref = ref("consumers", cred.get("consumer"))["id"]
            body = {k: v for k, v in strip(cred).items() if k != "consumer"}
            remember("keyauth_credentials", cred,
                     self.create("key-auths", body, parent=f"/consumers/{consumer_ref}"))
        for upstream in declarative.get("upstreams") or []:
            upstream_id = remember("upstreams", upstream, self.create("upstreams", strip(upstream)))
            for target in upstream.get("targets") or []:
                remember("targets", target, self.create("targets", strip(target),
                                                        parent=f"/upstreams/{upstream_id}"))
        for target in declarative.get("targets") or []:
            upstream_ref = ref("upstreams", target.get("upstream"))["id"]
            body = {k: v for k, v in strip(target).items() if k != "upstream"}
            remember("targets", target, self.create("targets", body, parent=f"/upstreams/{upstream_ref}"))
        create_plugins(declarative.get("plugins"), {})
        for create_one in deferred:
            create_one()
        return counts


class ReadOnlyAdmin(_AdminReads):
    """The view of a cluster-X node: read methods only, over a transport that refuses writes."""

    _read_only = True
    _what = "Kong Admin API (read-only view)"
