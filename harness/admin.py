"""Kong Admin API and Status API clients (httpx), and the read-only view used for cluster X.

- :class:`AdminClient`: reads and writes (writes are used on cluster Y only).
- :class:`ReadOnlyAdmin`: the view for cluster X. It has only read methods, and its transport refuses
  every method but GET/HEAD with :class:`ReadOnlyViolation` before anything is sent.
- :class:`StatusClient`: the Status API (a DP has no Admin API, only ``status_listen``).

Retries are bounded and only for transient failures: connection errors (nothing was sent), and
429/502/503/504 answers to GETs, honouring ``Retry-After`` up to a cap. A 4xx is never retried. The
admin token is sent as ``Kong-Admin-Token`` and never appears in a repr, an error or a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from harness.errors import AdminAPIError, BadResponse, NodeUnreachable, ReadOnlyViolation

log = logging.getLogger(__name__)

TOKEN_HEADER = "Kong-Admin-Token"

#: entity name (as the harness says it) -> Admin API collection path
ENTITY_PATHS: Mapping[str, str] = {
    "services": "/services",
    "routes": "/routes",
    "consumers": "/consumers",
    "plugins": "/plugins",
    "key-auths": "/key-auths",
    "keyauth_credentials": "/key-auths",
    "upstreams": "/upstreams",
    "targets": "/upstreams/{upstream}/targets",   # nested only: listed per upstream
    "certificates": "/certificates",
    "snis": "/snis",
    "ca_certificates": "/ca_certificates",
}

_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_MAX_PAGES = 10_000


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
# transport guard


class _ReadOnlyTransport(httpx.BaseTransport):
    """Refuses every method but GET/HEAD before the request reaches the wrapped transport."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method.upper() not in _SAFE_METHODS:
            raise ReadOnlyViolation(
                f"refused {request.method} {request.url.copy_with(query=None)}: cluster X is read-only "
                "(the harness never writes to the running cluster)",
                hint="write only to cluster Y; use AdminClient for Y and ReadOnlyAdmin for X",
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


# ---------------------------------------------------------------------------------------------------
# shared HTTP core


class _Http:
    """One httpx client with Kong-aware error mapping and bounded retries on transient failures."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None,
        read_only: bool,
        what: str,
        retry_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{what} URL must be http(s)://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.retry_cap = retry_cap
        self.what = what
        self._sleep = sleep
        inner = transport if transport is not None else httpx.HTTPTransport()
        self.transport: httpx.BaseTransport = _ReadOnlyTransport(inner) if read_only else inner
        headers = {"Accept": "application/json", "User-Agent": "kong-upgrade-harness"}
        if token:
            headers[TOKEN_HEADER] = token
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=self.transport,
            follow_redirects=False, trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return self.base_url + path if path.startswith("/") else urljoin(self.base_url + "/", path)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        method = method.upper()
        url = self.url(path)
        attempt = 0
        while True:
            try:
                response = self._client.request(method, url, **kwargs)
            except ReadOnlyViolation:
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # nothing reached Kong: safe to retry any method
                if attempt < self.retries:
                    attempt += 1
                    log.debug("%s %s: %s, retry %d/%d", method, url, type(exc).__name__, attempt,
                              self.retries)
                    self._sleep(min(self.retry_cap, 0.1 * 2 ** attempt))
                    continue
                raise self._unreachable(method, url, exc, attempt) from None
            except httpx.TimeoutException as exc:
                if method in _SAFE_METHODS and attempt < self.retries:
                    attempt += 1
                    self._sleep(min(self.retry_cap, 0.1 * 2 ** attempt))
                    continue
                raise self._unreachable(method, url, exc, attempt) from None
            except httpx.TransportError as exc:
                raise self._unreachable(method, url, exc, attempt) from None
            transient = response.status_code in _TRANSIENT_STATUS and method in _SAFE_METHODS
            if transient and attempt < self.retries:
                attempt += 1
                delay = self._retry_after(response) or min(self.retry_cap, 0.1 * 2 ** attempt)
                log.debug("%s %s answered %d, retry %d/%d in %.2fs", method, url, response.status_code,
                          attempt, self.retries, delay)
                self._sleep(delay)
                continue
            return response

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, min(self.retry_cap, float(value)))
        except ValueError:
            return self.retry_cap

    def _unreachable(self, method: str, url: str, exc: Exception, attempts: int) -> NodeUnreachable:
        tries = f" after {attempts + 1} attempts" if attempts else ""
        return NodeUnreachable(
            f"{self.what} at {url} did not answer {method}{tries} (timeout {self.timeout:g}s): "
            f"{type(exc).__name__}: {_scrub(str(exc))}",
            hint="is the node running? check admin_listen (and status_listen for the Status API) "
                 "and that the URL's host and port are right",
        )

    def json(self, response: httpx.Response, *, expect: type = dict) -> Any:
        """Kong's JSON body, raising :class:`AdminAPIError` for error statuses and
        :class:`BadResponse` for bodies that are not JSON of the expected shape."""
        request = response.request
        where = f"{request.method} {request.url.copy_with(query=None)}"
        if response.status_code >= 400:
            raise api_error(where, response)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise BadResponse(
                f"{where} answered {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                hint="is this URL a Kong Admin/Status API? check the port (proxy and admin ports differ)",
            ) from None
        if not isinstance(body, expect):
            raise BadResponse(
                f"{where} answered JSON of the wrong shape: expected {expect.__name__}, got "
                f"{type(body).__name__}: {json.dumps(body)[:200]}",
                hint="is this URL a Kong Admin/Status API of a supported version (2.8, 3.x)?",
            )
        return body


def _scrub(text: str) -> str:
    return text[:300]


_HINTS: tuple[tuple[Callable[[int, str, int | None], bool], str], ...] = (
    (lambda s, m, c: c == 12 or (s == 405 and "not using a database" in m),
     "this node is DB-less (or a DP): entities cannot be written one by one; load a whole declarative "
     "config with POST /config"),
    (lambda s, m, c: "configured to not use a database" in m,
     "this node uses a database (traditional mode or a CP): read its config by entity listing "
     "(harness.config.capture does) and load config through entity endpoints"),
    (lambda s, m, c: "configured to run as Control Plane" in m,
     "/clustering/* exists only on a control plane (role = control_plane); ask the CP, not a DP"),
    (lambda s, m, c: c == 14,
     "the declarative config is invalid: see the fields above; run the considerations stage for "
     "version-specific rules"),
    (lambda s, m, c: s == 413,
     "the config is too large for the node: raise lmdb_map_size (3.x) or mem_cache_size (2.8)"),
    (lambda s, m, c: s == 429,
     "the node is still loading the previous configuration; wait and retry"),
    (lambda s, m, c: s in (401, 403),
     "the Admin API wants a token: put it in an environment variable and name it in "
     "credentials.admin_token_env"),
    (lambda s, m, c: s == 404,
     "the endpoint does not exist on this node or version (e.g. /status/ready needs 3.3+ and the Status "
     "API; /config needs a DB-less node)"),
)


def api_error(where: str, response: httpx.Response) -> AdminAPIError:
    """An :class:`AdminAPIError` carrying Kong's own message, code and name, with a next step."""
    body: Any = None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = response.text[:200] or None
    kong_message = code = name = None
    if isinstance(body, dict):
        kong_message = body.get("message") if isinstance(body.get("message"), str) else None
        code = body.get("code") if isinstance(body.get("code"), int) else None
        name = body.get("name") if isinstance(body.get("name"), str) else None
    status = response.status_code
    text = kong_message or (body if isinstance(body, str) else "(empty body)")
    message = f"{where} answered {status}: {text}"
    if code is not None:
        message += f" (code {code}, {name})"
    hint = next((h for match, h in _HINTS if match(status, kong_message or "", code)), None)
    return AdminAPIError(message, status=status, kong_message=kong_message, code=code, name=name,
                         body=body, hint=hint)


# ---------------------------------------------------------------------------------------------------
# clients


class _StatusReads:
    _http: _Http

    def status(self) -> dict[str, Any]:
        """``GET /status``: memory, server counters, database (not in DB-less 3.4+), configuration_hash."""
        body = self._http.json(self._http.request("GET", "/status"))
        if "server" not in body:
            raise BadResponse(f"GET {self._http.url('/status')} has no 'server' field: "
                              f"{json.dumps(body)[:200]}")
        return dict(body)

    def ready(self) -> tuple[int, str]:
        """``GET /status/ready`` (3.3+): ``(200, "ready")`` or ``(503, Kong's reason)``."""
        response = self._http.request("GET", "/status/ready")
        if response.status_code in (200, 503):
            try:
                body = response.json()
            except (json.JSONDecodeError, ValueError):
                body = None
            message = body.get("message") if isinstance(body, dict) else None
            if not isinstance(message, str):
                raise BadResponse(
                    f"GET {self._http.url('/status/ready')} answered {response.status_code} without a "
                    f"message: {response.text[:200]!r}")
            return response.status_code, message
        raise api_error(f"GET {self._http.url('/status/ready')}", response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatusClient(_StatusReads):
    """The Status API (``status_listen``): the only HTTP surface of a DP. Read-only by construction."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = _Http(base_url, token=None, timeout=timeout, retries=retries, transport=transport,
                           read_only=True, what="Kong Status API")

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


class _AdminReads(_StatusReads):
    """The read methods shared by :class:`AdminClient` and :class:`ReadOnlyAdmin`, and their
    constructor: the two differ only in whether the transport refuses writes (``_read_only``)."""

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
    ) -> None:
        self._settings = _Settings(token, timeout, retries, transport, retry_cap, sleep)
        self._http = _Http(base_url, token=token, timeout=timeout, retries=retries, transport=transport,
                           read_only=self._read_only, what=self._what, retry_cap=retry_cap, sleep=sleep)

    def __repr__(self) -> str:
        token = ", token=<set>" if self._settings.token else ""
        return f"{type(self).__name__}({self._http.base_url!r}{token})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def root(self) -> NodeInfo:
        """``GET /``: version, edition, node id, role, database, plugins."""
        body = self._http.json(self._http.request("GET", "/"))
        version = body.get("version")
        if not isinstance(version, str):
            raise BadResponse(f"GET {self._http.url('/')} has no version: {json.dumps(body)[:200]}",
                              hint="is this URL a Kong Admin API? (the proxy port answers 404 here)")
        conf = body.get("configuration") if isinstance(body.get("configuration"), dict) else {}
        plugins = body.get("plugins") if isinstance(body.get("plugins"), dict) else {}
        available = plugins.get("available_on_server") or {}
        enabled = plugins.get("enabled_in_cluster") or []
        return NodeInfo(
            version=version,
            edition=body.get("edition"),
            node_id=body.get("node_id"),
            hostname=body.get("hostname"),
            role=str(conf.get("role") or "traditional"),
            database=conf.get("database"),
            plugins_available=tuple(sorted(available)),   # 2.8: name->true; 3.x: name->{version,priority}
            plugins_enabled=tuple(sorted(enabled)) if isinstance(enabled, list) else (),
            raw=body,
        )

    def config(self) -> dict[str, Any]:
        """DB-less ``GET /config``: the flat declarative export, parsed from its YAML string."""
        import yaml

        body = self._http.json(self._http.request("GET", "/config"))
        text = body.get("config")
        if not isinstance(text, str):
            raise BadResponse(f"GET {self._http.url('/config')} has no 'config' string: "
                              f"{json.dumps(body)[:200]}")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadResponse(f"GET {self._http.url('/config')} returned YAML that does not parse: {exc}; "
                              f"starts {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise BadResponse(f"GET {self._http.url('/config')} config is not a mapping: {text[:200]!r}")
        return data

    def pages(self, path: str, *, size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following ``next`` page by page."""
        params: dict[str, Any] | None = {"size": size} if size else None
        next_path: str | None = path
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if next_path is None:
                return
            body = self._http.json(self._http.request("GET", next_path, params=params))
            data = body.get("data")
            if not isinstance(data, list):
                raise BadResponse(f"GET {self._http.url(next_path)} is not a Kong collection (no 'data'): "
                                  f"{json.dumps(body)[:200]}")
            yield from data
            nxt = body.get("next")
            if nxt is None or nxt == "":
                return
            if not isinstance(nxt, str) or nxt in seen:
                raise BadResponse(f"GET {self._http.url(next_path)} gave a bad or repeated next page {nxt!r}")
            seen.add(nxt)
            next_path, params = nxt, None        # Kong's next already carries offset (and size)
        raise BadResponse(f"{self._http.url(path)} has more than {_MAX_PAGES} pages; stopped")

    def list(self, entity: str, *, size: int | None = None) -> list[dict[str, Any]]:
        """All entities of one kind, across pages. ``targets`` are listed per upstream."""
        if entity not in ENTITY_PATHS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(sorted(ENTITY_PATHS))}")
        if entity == "targets":
            out: list[dict[str, Any]] = []
            for upstream in self.pages("/upstreams", size=size):
                out.extend(self.pages(f"/upstreams/{upstream['id']}/targets", size=size))
            return out
        return list(self.pages(ENTITY_PATHS[entity], size=size))

    def data_planes(self) -> tuple[DataPlane, ...]:
        """A CP's ``/clustering/data-planes`` (400 with Kong's message on any other node)."""
        planes = []
        for row in self.pages("/clustering/data-planes"):
            planes.append(DataPlane(
                id=str(row.get("id")), hostname=row.get("hostname"), ip=row.get("ip"),
                version=row.get("version"), sync_status=row.get("sync_status"),
                config_hash=row.get("config_hash"), last_seen=row.get("last_seen"),
                labels=row.get("labels") or {}, raw=row,
            ))
        return tuple(planes)


class AdminClient(_AdminReads):
    """Kong Admin API client: reads, and writes for cluster Y (``post_config``, ``create``)."""

    _read_only = False
    _what = "Kong Admin API"

    def read_only(self) -> ReadOnlyAdmin:
        """A read-only view of the same node (same URL, token, timeouts and transport)."""
        s = self._settings
        return ReadOnlyAdmin(self._http.base_url, token=s.token, timeout=s.timeout, retries=s.retries,
                             transport=s.transport, retry_cap=s.retry_cap, sleep=s.sleep)

    def post_config(self, config: str | Mapping[str, Any], *, check_hash: bool = False,
                    flatten_errors: bool = False) -> ConfigLoad:
        """DB-less ``POST /config``. Text goes in the ``config`` field (so ``check_hash`` can answer 304);
        a dict goes as the JSON body and must carry ``_format_version``."""
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
        from harness.config import NESTED_CHILDREN

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
