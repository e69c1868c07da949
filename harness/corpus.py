"""The request corpus: requests derived from a declarative configuration's routes and consumers.

The same corpus is sent to X and to Y (differential checks) and drives the probe. Each route gives
one request; a route under key-auth gives three (a good key, no key, a wrong key). Keys are read
from the configuration to build requests and are never part of a request's name or repr.

Each request carries its route's :class:`RouteClass` (how it reaches its service, the auth plugins
that run on the route, the other plugins, the methods) and its upstream: ``harness.sampling`` samples
the corpus by them at real sizes, and :class:`Coverage` says what a sample covers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from harness.config_redact import fingerprint as config_fingerprint

Auth = Literal["none", "good", "missing", "invalid"]

PROBE_HOST = "kuh-probe.invalid"  # a Host header no route filters on, the same for X and Y
WRONG_KEY = "kuh-not-a-real-key"  # not a secret: sent where a route's key-auth reads keys
SEED = 0  # the sample's default seed: a fixed one, so every session of a run draws the same requests

#: plugins that decide who may pass (Kong's authentication plugins, and acl, which answers 403): a route
#: class is split by them, since a route under one answers differently from a route without
AUTH_PLUGINS = frozenset({
    "key-auth", "key-auth-enc", "basic-auth", "hmac-auth", "jwt", "oauth2", "ldap-auth", "ldap-auth-advanced",
    "openid-connect", "mtls-auth", "session", "vault-auth", "saml", "acl",
})


@dataclass(frozen=True)
class KeyAuth:
    """A key-auth plugin as it applies to one route."""

    scope: str
    key_names: tuple[str, ...] = ("apikey",)
    hide_credentials: bool = False
    anonymous: str | None = None
    key_in_header: bool = True
    key_in_query: bool = True
    realm: str | None = None


@dataclass(frozen=True, order=True)
class RouteClass:
    """The stratum a route's requests are sampled in: routes of one class are expected to behave alike.

    ``service`` is how a request reaches the service, not which service: the service's protocol and
    whether it adds a path (``http+path``; ``-`` for a route without a service), and the route's settings
    that change what the upstream receives or what matches when they differ from Kong's defaults
    (``strip_path=false``, ``preserve_host``, ``path_handling=v1``; KONG-FACTS §6.4) or its kind of match
    (``regex``, ``hosts``, ``headers``). Which upstream it reaches is each request's ``upstream``: a sample
    spreads over upstreams within a class. So 10,000 services, each with its own host, are a handful of
    classes, and a budget smaller than the number of services still covers every class. ``auth`` names the
    auth plugins that run on the route (key-auth with the settings that change its answers), ``plugins``
    the other plugins, ``methods`` the route's methods (``*`` for any).
    """

    service: str
    auth: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("*",)

    def render(self) -> str:
        return (f"{self.service} auth={','.join(self.auth) or 'none'} plugins={','.join(self.plugins) or 'none'} "
                f"methods={','.join(self.methods)}")


@dataclass(frozen=True)
class CorpusRequest:
    """One request of the corpus. ``headers`` may hold a credential: never print them raw."""

    name: str
    route: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    auth: Auth = "none"
    key_auth: KeyAuth | None = None
    credential_fingerprint: str | None = None
    consumer: str | None = None
    route_class: RouteClass | None = None
    upstream: str = ""        # the service's upstream, protocol://host:port ("-" without a service)

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


@dataclass(frozen=True)
class Coverage:
    """What a corpus (whole or sampled) covers of its configuration."""

    routes_total: int        # routes in the configuration
    routes_probed: int       # routes with at least one request chosen
    classes_total: int       # route classes among the routes a request could be derived for
    classes_covered: int     # classes with at least one request chosen
    requests_total: int      # requests the whole corpus holds
    requests: int            # requests chosen
    budget: int
    seed: int = SEED

    @property
    def sampled(self) -> bool:
        return self.requests < self.requests_total

    @property
    def over_budget(self) -> int:
        """Requests chosen beyond the budget: one per class wins over the budget when classes outnumber it."""
        return max(0, self.requests - self.budget)

    def summary(self) -> str:
        if self.sampled:
            how = (f"a stratified sample of {self.requests} of {self.requests_total} requests "
                   f"(budget {self.budget}, seed {self.seed})")
        else:
            how = f"all {self.requests} requests (budget {self.budget})"
        line = (f"{how}: {self.routes_probed} of {self.routes_total} routes, "
                f"{self.classes_covered} of {self.classes_total} route classes")
        if self.over_budget:
            line += f"; {self.over_budget} over the budget to keep one request per class"
        return line


@dataclass(frozen=True)
class Corpus:
    requests: tuple[CorpusRequest, ...]
    skipped: tuple[str, ...]  # routes no request could be derived for, with the reason
    secrets: frozenset[str] = field(repr=False, default=frozenset())
    routes_total: int = 0     # routes in the configuration (0: not counted, taken as the routes requested)
    coverage: Coverage | None = None  # set by harness.sampling.sample_corpus

    def by_auth(self, auth: Auth) -> list[CorpusRequest]:
        return [r for r in self.requests if r.auth == auth]

    def classes(self) -> dict[RouteClass | None, list[CorpusRequest]]:
        """The requests by route class, classes sorted, requests in corpus order."""
        out: dict[RouteClass | None, list[CorpusRequest]] = defaultdict(list)
        for req in self.requests:
            out[req.route_class].append(req)
        return dict(sorted(out.items(), key=lambda item: (item[0] is not None, item[0] or RouteClass(""))))


def fingerprint(secret: str) -> str:
    """The label a credential goes by in reports: the same ``sha256:<prefix>`` as in the parity diff."""
    return f"sha256:{config_fingerprint(secret)}"


# --- reading a declarative config (flat GET /config output or nested decK-style input) ---------

def _ref(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("id") or value.get("name") or value.get("username") or "") or None
    return str(value)


@dataclass
class _View:
    services: dict[str, dict[str, Any]] = field(default_factory=dict)   # by id and by name
    routes: list[dict[str, Any]] = field(default_factory=list)
    consumers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id, username, custom_id
    credentials: list[dict[str, Any]] = field(default_factory=list)
    plugins: list[dict[str, Any]] = field(default_factory=list)


def _collect(config: Mapping[str, Any]) -> _View:
    view = _View()

    def add_service(svc: Mapping[str, Any]) -> None:
        s = dict(svc)
        for key in ("id", "name"):
            if s.get(key):
                view.services[str(s[key])] = s
        for r in svc.get("routes") or []:
            add_route(r, s)
        for p in svc.get("plugins") or []:
            view.plugins.append({**p, "service": s.get("id") or s.get("name")})

    def add_route(route: Mapping[str, Any], parent: Mapping[str, Any] | None = None) -> None:
        r = dict(route)
        if parent is not None:
            r["service"] = parent.get("id") or parent.get("name")
        view.routes.append(r)
        for p in route.get("plugins") or []:
            view.plugins.append({**p, "route": r.get("id") or r.get("name")})

    def add_consumer(con: Mapping[str, Any]) -> None:
        c = dict(con)
        for key in ("id", "username", "custom_id"):
            if c.get(key):
                view.consumers[str(c[key])] = c
        for cred in con.get("keyauth_credentials") or []:
            view.credentials.append({**cred, "consumer": c.get("id") or c.get("username")})
        for p in con.get("plugins") or []:
            view.plugins.append({**p, "consumer": c.get("id") or c.get("username")})

    for svc in config.get("services") or []:
        add_service(svc)
    for route in config.get("routes") or []:
        add_route(route)
    for con in config.get("consumers") or []:
        add_consumer(con)
    view.credentials.extend(dict(c) for c in config.get("keyauth_credentials") or [])
    view.plugins.extend(dict(p) for p in config.get("plugins") or [])
    return view


def _route_label(route: Mapping[str, Any], index: int) -> str:
    if route.get("name"):
        return str(route["name"])
    paths = ",".join(route.get("paths") or []) or "-"
    return f"route#{index}({paths})"


@dataclass(frozen=True)
class _PluginIndex:
    """The enabled plugins that are not consumer-scoped, by where they apply: a route (id or name), a
    service (id or name), or every route. Built once, so resolving a route's plugins does not walk them
    all (20,000 routes x 5,000 plugins)."""

    by_route: Mapping[str, Sequence[Mapping[str, Any]]]
    by_service: Mapping[str, Sequence[Mapping[str, Any]]]
    every_route: Sequence[Mapping[str, Any]]

    @classmethod
    def of(cls, plugins: Iterable[Mapping[str, Any]]) -> _PluginIndex:
        by_route: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        by_service: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        every: list[Mapping[str, Any]] = []
        for p in plugins:
            if p.get("enabled") is False or _ref(p.get("consumer")):
                continue
            r, s = _ref(p.get("route")), _ref(p.get("service"))
            if r:
                by_route[r].append(p)
            elif s:
                by_service[s].append(p)
            else:
                every.append(p)
        return cls(by_route, by_service, every)


_SCOPES = {3: "route", 2: "service", 1: "global"}


def _plugins_for(view: _View, index: _PluginIndex, route: Mapping[str, Any]
                 ) -> dict[str, tuple[int, Mapping[str, Any]]]:
    """Each plugin name that runs on ``route``, with its scope rank and instance: route scope beats service
    scope beats global; of two at one scope the first listed wins."""
    route_refs = [str(route[k]) for k in ("id", "name") if route.get(k) is not None]
    svc = view.services.get(_ref(route.get("service")) or "")
    svc_refs = [str(svc[k]) for k in ("id", "name") if svc and svc.get(k) is not None]
    best: dict[str, tuple[int, Mapping[str, Any]]] = {}

    def offer(rank: int, plugins: Iterable[Mapping[str, Any]]) -> None:
        for p in plugins:
            name = str(p.get("name"))
            if name not in best or rank > best[name][0]:
                best[name] = (rank, p)

    offer(1, index.every_route)
    for ref in dict.fromkeys(svc_refs):
        offer(2, index.by_service.get(ref, ()))
    for ref in dict.fromkeys(route_refs):
        offer(3, index.by_route.get(ref, ()))
    return best


def _key_auth(rank: int, plugin: Mapping[str, Any]) -> KeyAuth:
    conf = plugin.get("config") or {}
    return KeyAuth(
        scope=_SCOPES[rank],
        key_names=tuple(conf.get("key_names") or ["apikey"]),
        hide_credentials=bool(conf.get("hide_credentials", False)),
        anonymous=conf.get("anonymous") or None,
        key_in_header=conf.get("key_in_header", True) is not False,
        key_in_query=conf.get("key_in_query", True) is not False,
        realm=conf.get("realm") or None,
    )


_DEFAULT_PORTS = {"https": 443, "grpcs": 443, "tls": 443}


def _service_parts(svc: Mapping[str, Any]) -> tuple[str, str, int | None, str | None]:
    """A service's protocol, host, port and path, from its ``url`` shorthand or its fields."""
    if svc.get("url"):
        parts = urlsplit(str(svc["url"]))
        return parts.scheme or "http", parts.hostname or "", parts.port, parts.path or None
    port = svc.get("port")
    return (str(svc.get("protocol") or "http"), str(svc.get("host") or ""), port if isinstance(port, int) else None,
            svc.get("path") or None)


def _upstream(svc: Mapping[str, Any] | None) -> str:
    """A service's upstream as ``protocol://host:port``; ``-`` for none."""
    if not svc:
        return "-"
    protocol, host, port, _ = _service_parts(svc)
    return f"{protocol}://{host}:{port or _DEFAULT_PORTS.get(protocol, 80)}"


def _forwarding(svc: Mapping[str, Any] | None, route: Mapping[str, Any], regex: bool) -> str:
    """How a route's requests reach its service (:class:`RouteClass`'s ``service``)."""
    parts = ["-"]
    if svc:
        protocol, _, _, path = _service_parts(svc)
        parts = [protocol + ("+path" if path and path != "/" else "")]
    if route.get("strip_path") is False:
        parts.append("strip_path=false")
    if route.get("preserve_host") is True:
        parts.append("preserve_host")
    if (route.get("path_handling") or "v0") != "v0":
        parts.append(f"path_handling={route['path_handling']}")
    parts += [flag for flag, on in (("regex", regex), ("hosts", bool(route.get("hosts"))),
                                    ("headers", bool(route.get("headers")))) if on]
    return " ".join(parts)


def _route_class(view: _View, route: Mapping[str, Any], applied: Mapping[str, tuple[int, Mapping[str, Any]]],
                 key_auth: KeyAuth | None, regex: bool) -> RouteClass:
    auth = []
    for name in sorted(n for n in applied if n in AUTH_PLUGINS):
        if name == "key-auth" and key_auth is not None:
            flags = [f for f, on in (("hide_credentials", key_auth.hide_credentials),
                                     ("anonymous", bool(key_auth.anonymous)),
                                     ("no-header", not key_auth.key_in_header),
                                     ("no-query", not key_auth.key_in_query),
                                     ("realm", bool(key_auth.realm))) if on]
            name = f"key-auth[{','.join(flags)}]" if flags else name
        auth.append(name)
    methods = tuple(sorted({str(m).upper() for m in route.get("methods") or []})) or ("*",)
    return RouteClass(_forwarding(view.services.get(_ref(route.get("service")) or ""), route, regex), tuple(auth),
                      tuple(sorted(n for n in applied if n not in AUTH_PLUGINS)), methods)


# --- turning a route's path into a concrete request path ----------------------------------------

_REGEX_SAMPLES: tuple[tuple[str, str], ...] = (
    (r"\d+", "42"), (r"[0-9]+", "42"), (r"\d", "4"), (r"[0-9]", "4"),
    (r"[^/]+", "item"), (r"\w+", "abc"), (r"[a-z]+", "abc"), (r"[A-Za-z]+", "abc"),
    (r"[a-zA-Z0-9]+", "abc1"), (r"[a-z0-9-]+", "abc-1"), (r".+", "x"), (r".*", ""),
    (r"\.", "."), (r"\/", "/"), (r"\-", "-"), ("^", ""), ("$", ""),
)


def sample_path(path: str) -> str | None:
    """A request path that ``path`` matches: a plain prefix as is, a ``~`` regex by substitution.

    Returns None when no sample could be made that the regex (anchored at the start, as Kong
    anchors it) actually matches.
    """
    if not path.startswith("~"):
        return path
    regex = path[1:]
    sample = re.sub(r"\(\?<\w+>", "(", regex)
    sample = re.sub(r"\(\?:", "(", sample)
    # innermost groups first: an optional group is left out, otherwise its first alternative is kept
    group = re.compile(r"\(([^()]*)\)(\?)?")
    while group.search(sample):
        sample = group.sub(lambda m: "" if m.group(2) else m.group(1).split("|")[0], sample)
    for pattern, replacement in _REGEX_SAMPLES:
        sample = sample.replace(pattern, replacement)
    sample = sample.replace("?", "")
    try:
        # PCRE named groups (?<name>...) are (?P<name>...) in Python's re
        return sample if re.match(re.sub(r"\(\?<(\w+)>", r"(?P<\1>", regex), sample) else None
    except re.error:
        return None


def build_corpus(config: Mapping[str, Any]) -> Corpus:
    """Derive the corpus from a declarative configuration (flat or nested)."""
    view = _collect(config)
    plugin_index = _PluginIndex.of(view.plugins)
    requests: list[CorpusRequest] = []
    skipped: list[str] = []
    secrets: set[str] = set()
    credentials = [c for c in view.credentials if c.get("key")]
    for index, route in enumerate(view.routes):
        label = _route_label(route, index)
        paths = route.get("paths") or []
        protocols = route.get("protocols") or ["http", "https"]
        if "http" not in protocols:
            skipped.append(f"{label}: not reachable over plain http (protocols {protocols})")
            continue
        if not paths:
            skipped.append(f"{label}: no paths (host/header-only routes are not probed)")
            continue
        found = next(((raw, p) for raw in paths if (p := sample_path(raw)) is not None), None)
        if found is None:
            skipped.append(f"{label}: no sample request path could be derived from {paths}")
            continue
        raw_path, path = found
        method = (route.get("methods") or ["GET"])[0]
        headers: list[tuple[str, str]] = [("Host", (route.get("hosts") or [PROBE_HOST])[0])]
        for name, values in (route.get("headers") or {}).items():
            if values:
                headers.append((name, str(values[0])))
        applied = _plugins_for(view, plugin_index, route)
        key_auth = _key_auth(*applied["key-auth"]) if "key-auth" in applied else None
        klass = _route_class(view, route, applied, key_auth, raw_path.startswith("~"))
        upstream = _upstream(view.services.get(_ref(route.get("service")) or ""))
        if key_auth is None:
            requests.append(CorpusRequest(f"{label}", label, method, path, tuple(headers), route_class=klass,
                                          upstream=upstream))
            continue
        key_header = key_auth.key_names[0]
        requests.append(CorpusRequest(f"{label}/no-key", label, method, path, tuple(headers), "missing", key_auth,
                                      route_class=klass, upstream=upstream))
        # the wrong key goes where the plugin reads keys (KONG-FACTS §4): elsewhere it is a missing key
        if key_auth.key_in_header:
            requests.append(
                CorpusRequest(
                    f"{label}/wrong-key", label, method, path,
                    (*headers, (key_header, WRONG_KEY)), "invalid", key_auth, route_class=klass,
                    upstream=upstream,
                )
            )
        elif key_auth.key_in_query:
            wrong_path = f"{path}{'&' if '?' in path else '?'}{urlencode({key_header: WRONG_KEY})}"
            requests.append(CorpusRequest(
                f"{label}/wrong-key", label, method, wrong_path, tuple(headers), "invalid", key_auth,
                route_class=klass, upstream=upstream,
            ))
        if credentials and key_auth.key_in_header:
            cred = credentials[0]
            key = str(cred["key"])
            secrets.add(key)
            consumer = view.consumers.get(_ref(cred.get("consumer")) or "", {})
            requests.append(
                CorpusRequest(
                    f"{label}/good-key", label, method, path, (*headers, (key_header, key)), "good",
                    key_auth, fingerprint(key), consumer.get("username") or consumer.get("custom_id"), klass,
                    upstream,
                )
            )
    for cred in credentials:
        secrets.add(str(cred["key"]))
    return Corpus(tuple(requests), tuple(skipped), frozenset(secrets), len(view.routes))


def consumer_names(config: Mapping[str, Any]) -> Iterable[str]:
    view = _collect(config)
    return sorted({str(c.get("username") or c.get("custom_id")) for c in view.consumers.values()})
