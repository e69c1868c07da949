"""Version knowledge: Kong version parsing, the hybrid-mode version rule, and breaking-change rules X -> Y.

Every rule is data (id, boundary version, severity, texts) plus a small predicate that looks at the
declarative config and kong.conf. A rule fires only when the upgrade crosses its boundary
(``x < introduced_in <= y``) unless it declares its own trigger (e.g. the LMDB wipe, which happens on
every minor change once Y is 3.6 or later). Facts come from ../shared/KONG-FACTS.md (§3.3, §5, §6, §7).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import HarnessError

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

_VERSION_RE = re.compile(
    r"^\s*v?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:\.(?P<build>\d+))?"
    r"(?P<suffix>-[0-9A-Za-z.+_-]+)?\s*$"
)


@dataclass(frozen=True, order=True)
class Version:
    """A Kong version: OSS ``3.8.1``, ``2.8.5``, enterprise ``3.4.3.12`` or ``3.9.3-enterprise-edition``.

    Ordering uses (major, minor, patch, build); the suffix is ignored, as Kong's hybrid check ignores it.
    """

    major: int
    minor: int
    patch: int = 0
    build: int = 0
    suffix: str = field(default="", compare=False)
    four_part: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, text: object) -> Version:
        """Parse a version string; raises :class:`HarnessError` naming the text and the accepted forms."""
        if isinstance(text, Version):
            return text
        match = _VERSION_RE.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise HarnessError(
                f"not a Kong version: {text!r}; expected MAJOR.MINOR.PATCH such as '3.8.1', an enterprise "
                "version such as '3.4.3.12', or one with a suffix such as '3.9.3-enterprise-edition'",
                hint="write the version as a quoted string in YAML (3.4 unquoted is a number)",
            )
        build = match.group("build")
        return cls(
            major=int(match.group("major")),
            minor=int(match.group("minor")),
            patch=int(match.group("patch") or 0),
            build=int(build or 0),
            suffix=(match.group("suffix") or "")[1:],
            four_part=build is not None,
        )

    @property
    def enterprise(self) -> bool:
        """True for enterprise versions (four parts, or an ``enterprise`` suffix)."""
        return self.four_part or "enterprise" in self.suffix

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.four_part:
            text += f".{self.build}"
        if self.suffix:
            text += f"-{self.suffix}"
        return text


def _v(text: str | Version) -> Version:
    return Version.parse(text)


# ---------------------------------------------------------------------------------------------------
# Hybrid mode (KONG-FACTS §3.1, §3.3)

def _wrpc_only(v: Version) -> bool:
    """OSS 3.1.x (and enterprise 3.1.0.x / 3.1.1.0-1) speak only wRPC; 3.2+ speak only /v1/outlet."""
    if (v.major, v.minor) != (3, 1):
        return False
    if v.enterprise:
        return (v.patch, v.build) < (1, 2)
    return True


def _outlet_only(v: Version) -> bool:
    return (v.major == 3 and v.minor >= 2) or v.major > 3


def hybrid_compatible(cp: str | Version, dp: str | Version) -> tuple[bool, str | None, str]:
    """Would a CP of version ``cp`` accept and configure a DP of version ``dp``?

    Returns ``(ok, sync_status, message)``. ``sync_status`` is what the CP would list for the DP in
    ``/clustering/data-planes`` (``normal`` or ``kong_version_incompatible``), or ``None`` when the DP
    could not even open its WebSocket (the OSS 3.1 wRPC break) and so is never listed. The messages for
    rejected versions are Kong's own.
    """
    c, d = _v(cp), _v(dp)
    if (_wrpc_only(d) and _outlet_only(c)) or (_wrpc_only(c) and _outlet_only(d)):
        return (
            False,
            None,
            f"data plane version {d} and control plane version {c} use different sync transports "
            "(3.1 speaks only wRPC, 3.2+ only /v1/outlet): the DP never connects; "
            "upgrade 3.1 nodes to 3.1.1.3 (enterprise) or move CP and DPs past 3.1 together",
        )
    if c.major != d.major:
        return (
            False,
            "kong_version_incompatible",
            f"data plane version {d} is incompatible with control plane version {c} "
            f"({c.major}.x.y are accepted)",
        )
    if d.minor > c.minor:
        return (
            False,
            "kong_version_incompatible",
            f"data plane version {d} is incompatible with older control plane version {c}",
        )
    if d.minor < c.minor:
        return (
            True,
            "normal",
            f"data plane version {d} is older than control plane version {c}: accepted (the CP removes "
            "fields the DP does not know before each push)",
        )
    return True, "normal", f"data plane version {d} matches control plane version {c} (major.minor)"


# ---------------------------------------------------------------------------------------------------
# Findings and rules

@dataclass(frozen=True)
class Finding:
    """One breaking change met by an upgrade, on one entity (or on the whole node)."""

    id: str
    severity: Severity
    entity: str            # "routes['orders-v1']", "plugins['key-auth@service:orders']", "kong.conf", "node"
    breaks: str            # what breaks
    action: str            # what to do
    introduced_in: str     # the Kong version that introduced the change
    title: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "severity": self.severity,
            "entity": self.entity,
            "title": self.title,
            "breaks": self.breaks,
            "action": self.action,
            "introduced_in": self.introduced_in,
        }


@dataclass(frozen=True)
class UpgradeContext:
    """What a rule predicate may look at."""

    x: Version
    y: Version
    mode: str                                   # "dbless" | "hybrid"
    format_version: str | None
    routes: tuple[tuple[str, Mapping[str, Any]], ...]    # (label, route) in file order
    plugins: tuple[tuple[str, Mapping[str, Any]], ...]   # (label "name@scope", plugin)
    certificates: tuple[tuple[str, Mapping[str, Any]], ...]
    kong_conf: Mapping[str, Any]

    def plugins_named(self, *names: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for label, plugin in self.plugins:
            if plugin.get("name") in names:
                yield label, plugin


# (entity label, detail appended to the rule's "breaks" text[, severity overriding the rule's])
Hit = tuple[str, str] | tuple[str, str, "Severity | None"]
Predicate = Callable[[UpgradeContext], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    """A breaking change: data plus a predicate returning the entities it hits."""

    id: str
    introduced_in: str
    severity: Severity
    title: str
    breaks: str
    action: str
    check: Predicate
    # default trigger: the upgrade crosses the boundary (x < introduced_in <= y)
    trigger: Callable[[Version, Version, str], bool] | None = None
    modes: tuple[str, ...] = ("dbless", "hybrid")

    def crossed(self, x: Version, y: Version, mode: str) -> bool:
        if mode not in self.modes:
            return False
        if self.trigger is not None:
            return self.trigger(x, y, mode)
        boundary = _v(self.introduced_in)
        return x < boundary <= y


# deck's IsPathRegexLike: a path with any character outside this set is treated as a regex
_PLAIN_PATH = re.compile(r"^[a-zA-Z0-9._~/%-]*$")
# what Rust's regex crate (atc-router, router_flavor traditional_compatible/expressions) refuses
_RUST_UNSUPPORTED = (
    (re.compile(r"\(\?<?[=!]"), "look-around ((?=, (?!, (?<=, (?<!)"),
    (re.compile(r"\\[1-9]|\\k<"), "a backreference"),
    (re.compile(r"\\/"), "the escape '\\/' (write '/')"),
)


def _route_paths(route: Mapping[str, Any]) -> list[str]:
    paths = route.get("paths") or []
    return [p for p in paths if isinstance(p, str)]


def _is_regex_like(path: str) -> bool:
    return not path.startswith("~") and not _PLAIN_PATH.match(path)


def _always(entity: str, detail: str = "") -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        return [(entity, detail)]
    return check


def _plugin_present(*names: str) -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        return [(f"plugins[{label!r}]", "") for label, _ in ctx.plugins_named(*names)]
    return check


def _plugin_field_set(name: str, field_name: str) -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        hits = []
        for label, plugin in ctx.plugins_named(name):
            config = plugin.get("config") or {}
            if config.get(field_name) not in (None, [], {}):
                hits.append((f"plugins[{label!r}].config.{field_name}", ""))
        return hits
    return check


def _plugin_field_unset(names: tuple[str, ...], field_name: str) -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        hits = []
        for label, plugin in ctx.plugins_named(*names):
            if (plugin.get("config") or {}).get(field_name) is None:
                hits.append((f"plugins[{label!r}].config.{field_name}", "it is not set in the config"))
        return hits
    return check


def _conf_unset(key: str) -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        if key in ctx.kong_conf:
            return []
        return [(f"kong.conf:{key}", "X does not set it")]
    return check


def _check_regex_without_tilde(ctx: UpgradeContext) -> Iterable[Hit]:
    old_format = ctx.format_version in ("1.1", "2.1")
    for label, route in ctx.routes:
        for path in _route_paths(route):
            if _is_regex_like(path):
                if old_format:
                    detail = (f"path {path!r} looks like a regex; Kong 3.x adds '~' when it loads this "
                              f"_format_version {ctx.format_version} file, but a file converted to '3.0' "
                              "by hand would make it a plain prefix")
                else:
                    detail = f"path {path!r} looks like a regex but has no '~': 3.x reads it as a prefix"
                # an old-format file is converted on load by Kong 3.x: still worth fixing, not fatal
                yield f"routes[{label!r}]", detail, "warning" if old_format else None


def _check_format_version(ctx: UpgradeContext) -> Iterable[Hit]:
    if ctx.format_version in (None, "1.1", "2.1"):
        yield "_format_version", f"X's config is format {ctx.format_version or '(none)'}; Y exports '3.0'"


def _check_rust_regex(ctx: UpgradeContext) -> Iterable[Hit]:
    if str(ctx.kong_conf.get("router_flavor", "")).strip() == "traditional":
        return
    for label, route in ctx.routes:
        for path in _route_paths(route):
            if not (path.startswith("~") or _is_regex_like(path)):
                continue
            for pattern, what in _RUST_UNSUPPORTED:
                if pattern.search(path):
                    yield f"routes[{label!r}]", f"path {path!r} uses {what}"
                    break


def _check_path_handling_v1(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, route in ctx.routes:
        if route.get("path_handling") == "v1":
            yield f"routes[{label!r}]", "path_handling is 'v1'"


def _check_pcre2(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, route in ctx.routes:
        regexes = [p for p in _route_paths(route) if p.startswith("~") or _is_regex_like(p)]
        if regexes:
            yield f"routes[{label!r}]", "regex path(s) " + ", ".join(repr(p) for p in regexes)


def _check_multi_path_priority(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, route in ctx.routes:
        paths = _route_paths(route)
        if len(paths) > 1 and any(p.startswith("~") for p in paths):
            yield f"routes[{label!r}]", f"{len(paths)} paths, some regex"


def _check_trace_method(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, route in ctx.routes:
        if "TRACE" in [str(m).upper() for m in route.get("methods") or []]:
            yield f"routes[{label!r}]", "methods include TRACE"


def _check_removed_conf(keys: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> Predicate:
    def check(ctx: UpgradeContext) -> Iterable[Hit]:
        for key in ctx.kong_conf:
            name = str(key).lower()
            if name in keys or any(name.startswith(p) and "upstream_keepalive" in name for p in prefixes):
                yield f"kong.conf:{name}", f"X sets {name}"
    return check


def _check_http_log_headers(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, plugin in ctx.plugins_named("http-log"):
        headers = (plugin.get("config") or {}).get("headers") or {}
        if isinstance(headers, Mapping) and any(isinstance(v, list) for v in headers.values()):
            yield f"plugins[{label!r}].config.headers", "header values are lists"


def _check_acl_lists(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, plugin in ctx.plugins_named("acl", "ip-restriction", "bot-detection", "canary"):
        config = plugin.get("config") or {}
        for old in ("blacklist", "whitelist"):
            if config.get(old) not in (None, []):
                yield f"plugins[{label!r}].config.{old}", f"uses '{old}'"


def _check_queue_fields(ctx: UpgradeContext) -> Iterable[Hit]:
    old_fields = ("retry_count", "queue_size", "flush_timeout", "batch_flush_delay")
    for label, plugin in ctx.plugins_named("http-log", "statsd", "opentelemetry", "datadog", "zipkin"):
        config = plugin.get("config") or {}
        used = [f for f in old_fields if config.get(f) is not None]
        if used:
            yield f"plugins[{label!r}]", "sets " + ", ".join(used)


def _check_weak_rsa(ctx: UpgradeContext) -> Iterable[Hit]:
    for label, cert in ctx.certificates:
        bits = _rsa_bits(cert.get("cert"))
        if bits is not None and bits < 2048:
            yield f"certificates[{label!r}]", f"RSA key of {bits} bits"


def _rsa_bits(pem: object) -> int | None:
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        return None
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    except Exception:
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def _minor_change_from_36(x: Version, y: Version, mode: str) -> bool:
    return y >= _v("3.6.0") and (x.major, x.minor) != (y.major, y.minor)


def _major_change(x: Version, y: Version, mode: str) -> bool:
    return x.major != y.major


def _transport_break(x: Version, y: Version, mode: str) -> bool:
    return (_wrpc_only(x) and _outlet_only(y)) or (_wrpc_only(y) and _outlet_only(x))


_AUTH_PLUGINS = ("key-auth", "basic-auth", "hmac-auth", "jwt", "ldap-auth", "oauth2")

RULES: tuple[Rule, ...] = (
    # ---- 2.x -> 3.0 -------------------------------------------------------------------------------
    Rule("regex-path-without-tilde", "3.0.0", "error", "Regex route paths need a '~' prefix",
         "a regex path without '~' is matched as a plain prefix by 3.x, so requests stop reaching the route",
         "convert the config with `deck file convert --from kong-gateway-2.x --to kong-gateway-3.x` "
         "(adds '~'), or add '~' yourself and set _format_version: \"3.0\"",
         _check_regex_without_tilde),
    Rule("format-version-3", "3.0.0", "warning", "_format_version becomes \"3.0\"",
         "Y's GET /config exports _format_version \"3.0\", which 2.8 rejects (expected one of: 1.1, 2.1), "
         "so a rollback cannot reload Y's export into X",
         "keep X's own backup (taken in the backup stage) for rollback; never load Y's export into 2.8",
         _check_format_version),
    Rule("router-rust-regex", "3.0.0", "error",
         "Rust regex syntax under router_flavor traditional_compatible",
         "3.x's default router (atc-router, Rust regex) rejects look-around, backreferences and some "
         "escapes; the route fails validation and the config does not load",
         "rewrite the regex without the unsupported construct, or set router_flavor = traditional on Y",
         _check_rust_regex),
    Rule("path-handling-v1-deprecated", "3.0.0", "warning", "path_handling v1 is deprecated",
         "path_handling 'v1' works only with router_flavor = traditional in 3.x",
         "switch the route to path_handling 'v0' (and check the upstream paths) or run Y with "
         "router_flavor = traditional", _check_path_handling_v1),
    Rule("plugin-priority-3.0", "3.0.0", "warning", "Plugin priorities changed",
         "the plugin's priority changed (key-auth 1003->1250, basic-auth 1001->1100, jwt 1005->1450, "
         "oauth2 1004->1400, hmac-auth 1000->1030, ldap-auth 1002->1200, acme 1007->1705, "
         "rate-limiting 901->910, pre-function +inf->1000000), so plugins may run in a different order",
         "check that plugins which depend on each other's order still behave (staging differential requests)",
         _plugin_present("key-auth", "basic-auth", "jwt", "oauth2", "hmac-auth", "ldap-auth", "acme",
                         "rate-limiting", "pre-function")),
    Rule("serverless-functions-removed", "3.0.0", "error", "pre-/post-function config.functions removed",
         "config.functions no longer exists; the config does not load on 3.x",
         "move the code to config.access (deck file convert --from 2.8 --to 3.4 does this)",
         lambda ctx: [*_plugin_field_set("pre-function", "functions")(ctx),
                      *_plugin_field_set("post-function", "functions")(ctx)]),
    Rule("aws-lambda-proxy-scheme-removed", "3.0.0", "error", "aws-lambda config.proxy_scheme removed",
         "config.proxy_scheme no longer exists; the config does not load on 3.x",
         "remove proxy_scheme from the plugin config", _plugin_field_set("aws-lambda", "proxy_scheme")),
    Rule("http-log-headers-single-string", "3.0.0", "error", "http-log headers take one string each",
         "http-log config.headers values must be single strings in 3.x",
         "join each header's values into one string", _check_http_log_headers),
    Rule("acl-deny-allow", "3.0.0", "error", "blacklist/whitelist renamed to deny/allow",
         "the old field names are gone in 3.x; the config does not load",
         "rename blacklist -> deny and whitelist -> allow (deck file convert does this)", _check_acl_lists),
    Rule("rate-limiting-policy-default", "3.0.0", "warning", "rate-limiting default policy is now 'local'",
         "without an explicit policy the counters become per node ('local') instead of 'cluster'",
         "set config.policy explicitly to the policy you mean",
         _plugin_field_unset(("rate-limiting", "response-ratelimiting"), "policy")),
    Rule("acme-auth-method-default", "3.0.0", "warning", "acme auth_method defaults to 'token'",
         "acme without an explicit auth_method now authenticates with 'token'",
         "set config.auth_method explicitly", _plugin_field_unset(("acme",), "auth_method")),
    Rule("syslog-facility-default", "3.0.0", "info", "syslog facility defaults to 'user'",
         "syslog without an explicit facility logs under 'user'", "set config.facility explicitly",
         _plugin_field_unset(("syslog",), "facility")),
    Rule("hmac-auth-old-signature", "3.0.0", "warning", "hmac-auth ngx.var.uri signature format removed",
         "clients that sign with the old request-line format are rejected",
         "check that every client signs the 3.x way before shifting traffic", _plugin_present("hmac-auth")),
    Rule("prometheus-statsd-metrics", "3.0.0", "warning", "Prometheus and statsd metrics reworked",
         "metric names changed and high-cardinality Prometheus metrics are off by default; dashboards and "
         "alerts keyed on old names go blank", "update dashboards/alerts; enable the per-consumer metrics "
         "you rely on", _plugin_present("prometheus", "statsd")),
    Rule("x-credential-username-removed", "3.0.0", "warning", "X-Credential-Username no longer sent upstream",
         "upstreams that read X-Credential-Username get nothing", "read X-Consumer-Username or "
         "X-Credential-Identifier instead", _plugin_present(*_AUTH_PLUGINS)),
    Rule("worker-consistency-default", "3.0.0", "warning", "worker_consistency defaults to 'eventual'",
         "config changes reach workers asynchronously (router rebuilt in the background)",
         "set worker_consistency = strict on Y if you relied on it", _conf_unset("worker_consistency")),
    Rule("lua-ssl-trusted-certificate-default", "3.0.0", "info",
         "lua_ssl_trusted_certificate defaults to 'system'",
         "Kong trusts the system CA store for outbound TLS by default", "set it explicitly if it must differ",
         _conf_unset("lua_ssl_trusted_certificate")),
    Rule("kong-conf-removed-keys", "3.0.0", "error", "kong.conf keys removed in 3.0",
         "3.x no longer knows upstream_keepalive, nginx_*_upstream_keepalive*, client_max_body_size, "
         "go_pluginserver_exe, go_plugins_dir", "drop or replace them (nginx_http_client_max_body_size, "
         "upstream_keepalive_pool_size, pluginserver_names)",
         _check_removed_conf(("upstream_keepalive", "client_max_body_size", "go_pluginserver_exe",
                              "go_plugins_dir"), ("nginx_",))),
    Rule("hybrid-major-mismatch", "3.0.0", "warning", "Hybrid mode rejects a major-version mismatch",
         "a 3.x CP rejects 2.x DPs (kong_version_incompatible) and a 2.x CP rejects 3.x DPs, so old and "
         "new nodes cannot share one cluster", "deploy Y as a complete new cluster (its own CP and DPs) "
         "and shift traffic; never point X's DPs at Y's CP", _always("cluster", ""),
         trigger=_major_change, modes=("hybrid",)),
    # ---- 3.x -> 3.y ------------------------------------------------------------------------------------
    Rule("hybrid-3.1-transport", "3.2.0", "warning", "OSS 3.1 hybrid speaks only wRPC",
         "3.1.x DPs cannot connect to a 3.2+ CP (and 3.2+ DPs not to a 3.1 CP): they are never listed",
         "upgrade CP and DPs past 3.1 together (enterprise: go through 3.1.1.3)", _always("cluster", ""),
         trigger=_transport_break, modes=("hybrid",)),
    Rule("trace-method-405", "3.1.0", "error", "TRACE answers 'Method not allowed'",
         "requests with method TRACE get 405 from 3.1 on", "drop TRACE from the route's methods",
         _check_trace_method),
    Rule("session-plugin-3.2", "3.2.0", "warning", "session plugin format changed",
         "sessions issued by X are not understood by Y: users shifted to Y are logged out",
         "plan for re-login or move all nodes to >= 3.2 at once", _plugin_present("session")),
    Rule("error-body-content-negotiation", "3.3.0", "warning", "Error bodies follow the Accept header",
         "Kong's own error responses (404 no route, 401, ...) are rendered per Accept and pretty-printed",
         "make clients parse the JSON instead of comparing bodies as strings", _always("proxy", "")),
    Rule("router-multi-path-priority", "3.3.0", "warning",
         "traditional_compatible gives each path its own priority",
         "a route with several paths (some regex) may now lose or win against other routes differently",
         "check the route with the staging differential requests", _check_multi_path_priority),
    Rule("plugin-queue-rework", "3.3.0", "warning", "Plugin queues reworked",
         "retry_count, queue_size, flush_timeout and batch_flush_delay are deprecated in favour of "
         "config.queue.*", "move the settings under config.queue", _check_queue_fields),
    Rule("status-database-field-removed", "3.4.0", "warning",
         "/status drops 'database' in DB-less and on DPs",
         "monitoring that reads /status database.reachable finds no field", "read /status/ready instead",
         _always("status API", "")),
    Rule("cassandra-removed", "3.4.0", "error", "Cassandra support removed",
         "database = cassandra is no longer accepted", "move to PostgreSQL before the upgrade",
         lambda ctx: [("kong.conf:database", "X uses cassandra")]
         if str(ctx.kong_conf.get("database", "")).lower() == "cassandra" else []),
    Rule("x-kong-request-id-header", "3.5.0", "info", "X-Kong-Request-Id on responses and upstream requests",
         "clients and upstreams see a new header (default `headers` and `headers_upstream` changed)",
         "nothing, unless a strict header allow-list downstream rejects unknown headers",
         _always("proxy", "")),
    Rule("request-id-in-error-bodies", "3.5.0", "warning", "request_id in every Kong error body",
         "Kong's error bodies gain a request_id field; clients comparing whole bodies see a change",
         "compare the message field only", _always("proxy", "")),
    Rule("status-listen-default", "3.6.0", "warning", "status_listen on by default at 127.0.0.1:8007",
         "Y opens the Status API on 127.0.0.1:8007 by default; a port clash on 8007 stops Kong starting",
         "set status_listen explicitly on Y (or off)", _conf_unset("status_listen")),
    Rule("auth-401-message-unauthorized", "3.6.0", "warning",
         "Invalid credentials answer 'Unauthorized'",
         "an invalid key gets 401 'Unauthorized' instead of 'Invalid authentication credentials'",
         "update clients and tests that match the old message", _plugin_present(*_AUTH_PLUGINS)),
    Rule("openssl-security-level-2", "3.6.0", "error", "RSA keys under 2048 bits rejected",
         "OpenSSL 3.2 at security level 2 refuses the certificate", "reissue the certificate with >= 2048 "
         "bits", _check_weak_rsa),
    Rule("lmdb-wipe-on-minor-change", "3.6.0", "error", "DP LMDB cache wiped on a minor change",
         "a DP upgraded in place across a minor version starts with no config (/status/ready 503 'empty "
         "configuration present') until it reaches the CP", "start Y's DPs fresh beside X (rolling "
         "upgrade) and keep the CP reachable, or give them a declarative_config",
         _always("data planes", ""), trigger=_minor_change_from_36, modes=("hybrid",)),
    Rule("key-auth-www-authenticate", "3.7.0", "warning", "key-auth sends WWW-Authenticate on every 401",
         "invalid-key 401s gain 'WWW-Authenticate: Key' and no-key 401s change from 'Key realm=\"kong\"' "
         "to 'Key' (or the configured realm)", "update clients and tests that read WWW-Authenticate",
         _plugin_present("key-auth")),
    Rule("pcre2", "3.7.0", "warning", "Regexes compiled by PCRE2 10.43",
         "a regex PCRE1 accepted may be rejected or match differently",
         "load the config into a Y node (the deploy stage does) and run the differential requests",
         _check_pcre2),
    Rule("ai-proxy-anthropic-path", "3.7.0", "info", "ai-proxy Anthropic upstream path changed",
         "the upstream path for Anthropic changed", "check the ai-proxy routes on Y",
         _plugin_present("ai-proxy")),
    Rule("via-header-format", "3.8.0", "warning", "Via header becomes '1.1 kong/x.y.z'",
         "proxied responses carry 'Via: 1.1 kong/<v>' (was 'kong/<v>'), Kong sends Via upstream, and sets "
         "'Server: kong/<v>' when the upstream sent none", "update anything that parses Via or Server",
         _always("proxy", "")),
    Rule("node-id-deprecated", "3.9.0", "info", "node_id in kong.conf deprecated",
         "the node_id setting is deprecated", "stop setting node_id",
         lambda ctx: [("kong.conf:node_id", "X sets node_id")] if "node_id" in ctx.kong_conf else []),
)

HYBRID_DP_VERSION = "hybrid-dp-version"
RULE_IDS: frozenset[str] = frozenset(rule.id for rule in RULES) | {HYBRID_DP_VERSION}


def check_hybrid_versions(cp: str | Version, dp: str | Version) -> Finding | None:
    """The hybrid rule for a planned CP and its DPs (KONG-FACTS §3.3): a finding when the CP would refuse them."""
    ok, status, message = hybrid_compatible(cp, dp)
    if ok:
        return None
    return Finding(
        HYBRID_DP_VERSION, "error", "node",
        f"{message}; the CP records the DP as {status} and sends it no configuration",
        "run every data plane at the control plane's major version and at its minor version or older",
        str(_v(cp)), "Data planes newer than (or a major apart from) their control plane",
    )


def _scope_label(plugin: Mapping[str, Any], parent: str | None = None) -> str:
    parts = []
    for key in ("service", "route", "consumer"):
        ref = plugin.get(key)
        if isinstance(ref, Mapping):
            ref = ref.get("name") or ref.get("username") or ref.get("id")
        if ref:
            parts.append(f"{key}:{ref}")
    if parent:
        parts.append(parent)
    return f"{plugin.get('name')}@{'+'.join(parts) or 'global'}"


def _walk(declarative: Mapping[str, Any]) -> tuple[list[tuple[str, Mapping[str, Any]]],
                                                  list[tuple[str, Mapping[str, Any]]],
                                                  list[tuple[str, Mapping[str, Any]]]]:
    """Routes, plugins and certificates of a nested or flat declarative config, with readable labels."""
    routes: list[tuple[str, Mapping[str, Any]]] = []
    plugins: list[tuple[str, Mapping[str, Any]]] = []

    def route_label(route: Mapping[str, Any], service: str | None, index: int) -> str:
        if route.get("name"):
            return str(route["name"])
        return f"{service or 'route'}#{index}"

    def add_plugins(items: object, scope: str | None) -> None:
        for plugin in items if isinstance(items, list) else []:
            if isinstance(plugin, Mapping):
                plugins.append((_scope_label(plugin, scope), plugin))

    for s_index, service in enumerate(_dicts(declarative.get("services"))):
        s_name = str(service.get("name") or f"service#{s_index}")
        for r_index, route in enumerate(_dicts(service.get("routes"))):
            label = route_label(route, s_name, r_index)
            routes.append((label, route))
            add_plugins(route.get("plugins"), f"route:{label}")
        add_plugins(service.get("plugins"), f"service:{s_name}")
    for r_index, route in enumerate(_dicts(declarative.get("routes"))):
        label = route_label(route, None, r_index)
        routes.append((label, route))
        add_plugins(route.get("plugins"), f"route:{label}")
    for c_index, consumer in enumerate(_dicts(declarative.get("consumers"))):
        name = consumer.get("username") or consumer.get("custom_id") or f"consumer#{c_index}"
        add_plugins(consumer.get("plugins"), f"consumer:{name}")
    add_plugins(declarative.get("plugins"), None)
    certificates = [(str(c.get("id") or f"certificate#{i}"), c)
                    for i, c in enumerate(_dicts(declarative.get("certificates")))]
    return routes, plugins, certificates


def _dicts(items: object) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def check_upgrade(
    x_version: str | Version,
    y_version: str | Version,
    declarative: Mapping[str, Any] | None = None,
    kong_conf: Mapping[str, Any] | None = None,
    *,
    mode: str = "dbless",
) -> list[Finding]:
    """Every breaking change the upgrade X -> Y meets in this config and kong.conf, errors first."""
    x, y = _v(x_version), _v(y_version)
    declarative = declarative or {}
    routes, plugins, certificates = _walk(declarative)
    fmt = declarative.get("_format_version")
    ctx = UpgradeContext(
        x=x, y=y, mode=mode, format_version=None if fmt is None else str(fmt),
        routes=tuple(routes), plugins=tuple(plugins), certificates=tuple(certificates),
        kong_conf={str(k).lower(): v for k, v in (kong_conf or {}).items()},
    )
    findings: list[Finding] = []
    for rule in RULES:
        if not rule.crossed(x, y, mode):
            continue
        for hit in rule.check(ctx):
            entity, detail = hit[0], hit[1]
            severity: Severity = (hit[2] if len(hit) > 2 else None) or rule.severity
            breaks = f"{rule.breaks} ({detail})" if detail else rule.breaks
            findings.append(Finding(rule.id, severity, entity, breaks, rule.action,
                                    rule.introduced_in, rule.title))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: (order[f.severity], _v(f.introduced_in), f.id, f.entity))


def explain(finding: Finding) -> str:
    """A finding as a few readable lines."""
    return (
        f"[{finding.severity.upper()}] {finding.id} (Kong {finding.introduced_in}): {finding.title}\n"
        f"  on:   {finding.entity}\n"
        f"  what: {finding.breaks}\n"
        f"  do:   {finding.action}"
    )
