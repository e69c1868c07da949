"""The request corpus: requests derived from a declarative configuration's routes and consumers.

The same corpus is sent to X and to Y (differential checks) and drives the probe. Each route gives
one request; a route under key-auth gives three (a good key, no key, a wrong key). Keys are read
from the configuration to build requests and are never part of a request's name or repr.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from harness.config import fingerprint as config_fingerprint

Auth = Literal["none", "good", "missing", "invalid"]

PROBE_HOST = "kuh-probe.invalid"  # a Host header no route filters on, the same for X and Y
WRONG_KEY = "kuh-not-a-real-key"  # not a secret: sent where a route's key-auth reads keys


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

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


@dataclass(frozen=True)
class Corpus:
    requests: tuple[CorpusRequest, ...]
    skipped: tuple[str, ...]  # routes no request could be derived for, with the reason
    secrets: frozenset[str] = field(repr=False, default=frozenset())

    def by_auth(self, auth: Auth) -> list[CorpusRequest]:
        return [r for r in self.requests if r.auth == auth]


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


def _key_auth_for(view: _View, route: Mapping[str, Any]) -> KeyAuth | None:
    """The key-auth plugin that applies to a route: route scope beats service scope beats global."""
    route_ref = {str(route.get("id")), str(route.get("name"))} - {"None"}
    svc_ref = _ref(route.get("service"))
    svc = view.services.get(svc_ref or "")
    svc_refs = {str(svc.get("id")), str(svc.get("name"))} - {"None"} if svc else set()
    best: tuple[int, Mapping[str, Any]] | None = None
    for p in view.plugins:
        if p.get("name") != "key-auth" or p.get("enabled") is False or _ref(p.get("consumer")):
            continue
        r, s = _ref(p.get("route")), _ref(p.get("service"))
        if r:
            rank = 3 if r in route_ref else 0
        elif s:
            rank = 2 if s in svc_refs else 0
        else:
            rank = 1
        if rank and (best is None or rank > best[0]):
            best = (rank, p)
    if best is None:
        return None
    rank, plugin = best
    conf = plugin.get("config") or {}
    scope = {3: "route", 2: "service", 1: "global"}[rank]
    return KeyAuth(
        scope=scope,
        key_names=tuple(conf.get("key_names") or ["apikey"]),
        hide_credentials=bool(conf.get("hide_credentials", False)),
        anonymous=conf.get("anonymous") or None,
        key_in_header=conf.get("key_in_header", True) is not False,
        key_in_query=conf.get("key_in_query", True) is not False,
        realm=conf.get("realm") or None,
    )


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
        path = next((p for p in (sample_path(x) for x in paths) if p is not None), None)
        if path is None:
            skipped.append(f"{label}: no sample request path could be derived from {paths}")
            continue
        method = (route.get("methods") or ["GET"])[0]
        headers: list[tuple[str, str]] = [("Host", (route.get("hosts") or [PROBE_HOST])[0])]
        for name, values in (route.get("headers") or {}).items():
            if values:
                headers.append((name, str(values[0])))
        key_auth = _key_auth_for(view, route)
        if key_auth is None:
            requests.append(CorpusRequest(f"{label}", label, method, path, tuple(headers)))
            continue
        key_header = key_auth.key_names[0]
        requests.append(CorpusRequest(f"{label}/no-key", label, method, path, tuple(headers), "missing", key_auth))
        # the wrong key goes where the plugin reads keys (KONG-FACTS §4): elsewhere it is a missing key
        if key_auth.key_in_header:
            requests.append(
                CorpusRequest(
                    f"{label}/wrong-key", label, method, path,
                    (*headers, (key_header, WRONG_KEY)), "invalid", key_auth,
                )
            )
        elif key_auth.key_in_query:
            wrong_path = f"{path}{'&' if '?' in path else '?'}{urlencode({key_header: WRONG_KEY})}"
            requests.append(CorpusRequest(
                f"{label}/wrong-key", label, method, wrong_path, tuple(headers), "invalid", key_auth,
            ))
        if credentials and key_auth.key_in_header:
            cred = credentials[0]
            key = str(cred["key"])
            secrets.add(key)
            consumer = view.consumers.get(_ref(cred.get("consumer")) or "", {})
            requests.append(
                CorpusRequest(
                    f"{label}/good-key", label, method, path, (*headers, (key_header, key)), "good",
                    key_auth, fingerprint(key), consumer.get("username") or consumer.get("custom_id"),
                )
            )
    for cred in credentials:
        secrets.add(str(cred["key"]))
    return Corpus(tuple(requests), tuple(skipped), frozenset(secrets))


def consumer_names(config: Mapping[str, Any]) -> Iterable[str]:
    view = _collect(config)
    return sorted({str(c.get("username") or c.get("custom_id")) for c in view.consumers.values()})
