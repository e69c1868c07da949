"""The proxy router, compiled once per loaded config (KONG-FACTS.md 6.4).

Order, within routes that test the same number of request attributes (more attributes first):
an exact plain-path match, then regex paths by `regex_priority` (higher first), then plain prefixes
by length (longer first); ties keep config order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from emulator.schema import path_is_regex, pcre_to_python, regex_source
from emulator.versions import KongVersion


@dataclass(frozen=True)
class Candidate:
    route: dict[str, Any]
    service: dict[str, Any] | None
    hosts: frozenset[str]
    wild_hosts: tuple[re.Pattern[str], ...]
    methods: frozenset[str]
    headers: tuple[tuple[str, frozenset[str]], ...]
    prefix: str | None = None
    regex: re.Pattern[str] | None = None

    def matches_rest(self, host: str, method: str, headers: Mapping[str, str]) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.hosts or self.wild_hosts:
            bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            if not (host in self.hosts or bare in self.hosts or any(w.match(bare) for w in self.wild_hosts)):
                return False
        for name, values in self.headers:
            seen = headers.get(name)
            if seen is None or seen.lower() not in values:
                return False
        return True


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    matched_prefix: str  # the part of the path the route matched (stripped when strip_path)


@dataclass
class _Group:
    weight: int
    exact: dict[str, list[Candidate]]
    regex: list[tuple[int, int, Candidate]]
    prefix: list[tuple[int, int, Candidate]]
    pathless: list[Candidate]


class Router:
    def __init__(self, routes: list[dict[str, Any]], services: Mapping[str, dict[str, Any]],
                 version: KongVersion, dropped: frozenset[str] = frozenset()) -> None:
        groups: dict[int, _Group] = {}
        for order, route in enumerate(routes):
            if route.get("name") in dropped:
                continue
            if not set(route.get("protocols") or []) & {"http", "https"}:
                continue
            service_ref = route.get("service")
            service = services.get(service_ref["id"]) if isinstance(service_ref, dict) else None
            hosts = [h.lower() for h in route.get("hosts") or []]
            header_rules = tuple(
                (name.lower(), frozenset(str(v).lower() for v in values))
                for name, values in (route.get("headers") or {}).items()
                if name.lower() != "host"
            )
            base = Candidate(
                route=route, service=service,
                hosts=frozenset(h for h in hosts if "*" not in h),
                wild_hosts=tuple(
                    re.compile("^" + re.escape(h).replace(r"\*", ".+") + "$") for h in hosts if "*" in h
                ),
                methods=frozenset(m.upper() for m in route.get("methods") or []),
                headers=header_rules,
            )
            paths = route.get("paths") or []
            weight = sum(1 for key in ("hosts", "methods", "headers", "snis") if route.get(key)) + (
                1 if paths else 0)
            group = groups.setdefault(weight, _Group(weight, {}, [], [], []))
            if not paths:
                group.pathless.append(base)
            for path in paths:
                if path_is_regex(path, version):
                    pattern = re.compile(pcre_to_python(regex_source(path, version)))
                    group.regex.append((-int(route.get("regex_priority") or 0), order,
                                        replace(base, regex=pattern)))
                else:
                    candidate = replace(base, prefix=path)
                    group.exact.setdefault(path, []).append(candidate)
                    group.prefix.append((-len(path), order, candidate))
        self._groups = [groups[w] for w in sorted(groups, reverse=True)]
        for group in self._groups:
            group.regex.sort(key=lambda item: item[:2])
            group.prefix.sort(key=lambda item: item[:2])

    def find(self, method: str, path: str, host: str, headers: Mapping[str, str]) -> Match | None:
        host = host.lower()
        for group in self._groups:
            for candidate in group.exact.get(path, ()):
                if candidate.matches_rest(host, method, headers):
                    return Match(candidate, path)
            for _, _, candidate in group.regex:
                assert candidate.regex is not None
                found = candidate.regex.match(path)
                if found and candidate.matches_rest(host, method, headers):
                    return Match(candidate, path[: found.end()])
            for _, _, candidate in group.prefix:
                assert candidate.prefix is not None
                if path.startswith(candidate.prefix) and candidate.matches_rest(host, method, headers):
                    return Match(candidate, candidate.prefix)
            for candidate in group.pathless:
                if candidate.matches_rest(host, method, headers):
                    return Match(candidate, "")
        return None


def _join_v0(base: str, rest: str) -> str:
    """Segment join of path_handling v0: exactly one slash between the two parts."""
    if not rest:
        return base
    if base.endswith("/") and rest.startswith("/"):
        return base[:-1] + rest
    if not base.endswith("/") and not rest.startswith("/"):
        return base + "/" + rest
    return base + rest


def upstream_path(match: Match, request_path: str) -> str:
    """The upstream URI path for path_handling v0 (and v1, which only differs in joining)."""
    route = match.candidate.route
    service = match.candidate.service or {}
    base = service.get("path") or "/"
    if route.get("strip_path", True) and match.matched_prefix:
        rest = request_path[len(match.matched_prefix):]
    else:
        rest = request_path
    if route.get("path_handling") == "v1":
        if base == "/":
            return rest if rest.startswith("/") else "/" + rest
        return base + rest if rest else base
    if base == "/":
        return rest if rest.startswith("/") else "/" + rest
    return _join_v0(base, rest)
