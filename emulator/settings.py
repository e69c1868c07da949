"""Node settings from Kong's KONG_* variables plus KONG_EMULATOR_* (ARCHITECTURE.md contract)."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from emulator.versions import KongVersion, UnsupportedVersion

ROLES = ("traditional", "control_plane", "data_plane")
DATABASES = ("off", "postgres")
KEYAUTH_FAULTS = ("off", "accept_any", "reject_valid")


class SettingsError(ValueError):
    """A start-up error; the message is printed on stderr like Kong's `Error: ...` lines."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Faults:
    """Injected faults (KONG_EMULATOR_FAULT_*), all off by default."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    keyauth: str = "off"
    drop_routes: frozenset[str] = frozenset()
    crash_after_requests: int | None = None
    crash_after_seconds: float | None = None
    refuse_cp: bool = False
    config_drift_after_seconds: float | None = None
    after_requests: int = 0  # error-rate and latency faults start after this many proxied requests


@dataclass(frozen=True)
class Settings:
    version: KongVersion
    role: str = "traditional"
    database: str = "off"
    proxy_listen: Listen | None = None
    admin_listen: Listen | None = None
    status_listen: Listen | None = None
    cluster_listen: Listen | None = None
    cluster_control_plane: Listen | None = None
    cluster_cert: str | None = None        # file path (inline PEM is written to a private temp file)
    cluster_cert_key: str | None = None
    declarative_config: str | None = None
    dp_labels: Mapping[str, str] = field(default_factory=dict)
    node_id: str = ""
    plugins: tuple[str, ...] = ("bundled",)
    echo_listen: Listen | None = None
    ping_interval: float = 30.0
    reconnect_delay: tuple[float, float] = (5.0, 10.0)
    faults: Faults = Faults()
    # nginx_admin_client_max_body_size (bytes; None = nginx's 0, no limit), KONG-FACTS 9.1
    admin_body_limit: int | None = 10 * 1024 * 1024
    # nginx_http_client_max_body_size for the proxy (Kong's default 0: no limit)
    proxy_body_limit: int | None = None
    # cluster_max_payload in bytes, KONG-FACTS 9.2; 0 means the version's default
    cluster_max_payload: int = 0
    # admin_access_log: a file the Admin API appends one line per request to (nginx's combined format);
    # Kong's default is logs/admin_access.log under its prefix, the emulator's is none
    admin_access_log: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def dbless(self) -> bool:
        return self.database == "off"

    @property
    def hybrid(self) -> bool:
        return self.role != "traditional"

    @property
    def max_payload(self) -> int:
        """cluster_max_payload in effect: the setting, else the version's default (KONG-FACTS 9.2)."""
        return self.cluster_max_payload or self.version.default_cluster_max_payload


def _access_log(value: str) -> str | None:
    """KONG_ADMIN_ACCESS_LOG: a path, or off; /dev/stdout and /dev/stderr as Kong's images set it."""
    value = value.strip()
    return None if not value or value.lower() == "off" else value


def parse_listen(name: str, value: str) -> Listen | None:
    """Kong list syntax: `0.0.0.0:8000 reuseport, 0.0.0.0:8443 ssl`; the first plain entry is used."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries or entries[0].lower() == "off":
        return None
    for entry in entries:
        words = entry.split()
        if "ssl" in words[1:] or "http2" in words[1:]:
            continue
        host, sep, port = words[0].rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise SettingsError(f"{name}={value!r}: expected host:port (for example 127.0.0.1:8001)")
        return Listen(host.strip("[]"), int(port))
    raise SettingsError(f"{name}={value!r}: no plain (non-ssl) entry; the emulator serves plain HTTP only")


def _pem_or_path(name: str, value: str | None) -> str | None:
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        handle, path = tempfile.mkstemp(prefix="kong-emulator-", suffix=".pem")
        with os.fdopen(handle, "w") as out:
            out.write(value)
        return path
    if not os.path.isfile(value):
        raise SettingsError(f"{name}: file {value!r} does not exist; give a readable path or inline PEM")
    return value


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    text = env.get(name, "").strip()
    if not text or text.lower() == "off":
        return default
    try:
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    if number < 0:
        raise SettingsError(f"{name}={text!r} must not be negative")
    return number


def parse_faults(env: Mapping[str, str]) -> Faults:
    prefix = "KONG_EMULATOR_FAULT_"
    error_rate = _float(env, prefix + "ERROR_RATE", 0.0) or 0.0
    if error_rate > 1:
        raise SettingsError(f"{prefix}ERROR_RATE={error_rate} must be a fraction between 0 and 1")
    keyauth = env.get(prefix + "KEYAUTH", "off").strip().lower() or "off"
    if keyauth not in KEYAUTH_FAULTS:
        raise SettingsError(f"{prefix}KEYAUTH={keyauth!r}: expected one of {', '.join(KEYAUTH_FAULTS)}")
    crash_requests = _float(env, prefix + "CRASH_AFTER_REQUESTS", None)
    after = _float(env, prefix + "AFTER_REQUESTS", 0.0) or 0.0
    return Faults(
        after_requests=int(after),
        error_rate=error_rate,
        latency_ms=_float(env, prefix + "LATENCY_MS", 0.0) or 0.0,
        latency_jitter_ms=_float(env, prefix + "LATENCY_JITTER_MS", 0.0) or 0.0,
        keyauth=keyauth,
        drop_routes=frozenset(
            name.strip() for name in env.get(prefix + "DROP_ROUTES", "").split(",") if name.strip()
        ),
        crash_after_requests=int(crash_requests) if crash_requests is not None else None,
        crash_after_seconds=_float(env, prefix + "CRASH_AFTER_SECONDS", None),
        refuse_cp=env.get(prefix + "REFUSE_CP", "off").strip().lower() in ("1", "on", "true", "yes"),
        config_drift_after_seconds=_float(env, prefix + "CONFIG_DRIFT_AFTER_SECONDS", None),
    )


def parse_size(name: str, value: str, directive: str) -> int | None:
    """nginx size syntax (ngx_parse_offset): bytes, or a number with k/K, m/M, g/G. 0 means no limit."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", value)
    if match is None:
        raise SettingsError(f'{name}={value!r}: nginx: [emerg] "{directive}" directive invalid value '
                            "(expected bytes or a size such as 512k, 10m, 1g)")
    number = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return number or None


def _cluster_max_payload(env: Mapping[str, str]) -> int:
    """Kong's conf loader refuses values under 4 MiB (kong/conf_loader/init.lua @ 2.8.5 and 3.4.2)."""
    text = env.get("KONG_CLUSTER_MAX_PAYLOAD", "").strip()
    if not text:
        return 0
    try:
        number = int(float(text))
    except ValueError:
        raise SettingsError(f"cluster_max_payload is not a number: '{text}'") from None
    if number < 4194304:
        raise SettingsError("cluster_max_payload must be 4194304 (4MB) or greater")
    return number


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition(":")
        if not sep:
            raise SettingsError(f"KONG_CLUSTER_DP_LABELS entry {pair!r}: expected key:value")
        labels[key.strip()] = value.strip()
    return labels


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; raise SettingsError with Kong's wording."""
    version_text = env.get("KONG_EMULATOR_VERSION", "").strip()
    if not version_text:
        raise SettingsError("KONG_EMULATOR_VERSION is required: the Kong version to behave as, e.g. 3.9.3")
    try:
        version = KongVersion.parse(version_text)
    except UnsupportedVersion as exc:
        raise SettingsError(str(exc)) from None
    role = env.get("KONG_ROLE", "traditional").strip() or "traditional"
    if role not in ROLES:
        raise SettingsError(f"role has an invalid value: '{role}' (expected one of {', '.join(ROLES)})")
    database = env.get("KONG_DATABASE", "off").strip().lower() or "off"
    if database not in DATABASES:
        raise SettingsError(f"database has an invalid value: '{database}' (expected 'off' or 'postgres')")
    if role == "data_plane" and database != "off":
        raise SettingsError('only in-memory storage can be used when role = "data_plane"')
    if role == "control_plane" and database == "off":
        raise SettingsError('in-memory storage can not be used when role = "control_plane"')
    cert = env.get("KONG_CLUSTER_CERT", "").strip() or None
    key = env.get("KONG_CLUSTER_CERT_KEY", "").strip() or None
    if role != "traditional" and not (cert and key):
        raise SettingsError("cluster certificate and key must be provided to use Hybrid mode")
    status_text = env.get("KONG_STATUS_LISTEN", version.default_status_listen)
    low, _, high = env.get("KONG_EMULATOR_RECONNECT_DELAY", "5-10").partition("-")
    try:
        delay = (float(low), float(high or low))
    except ValueError:
        raise SettingsError("KONG_EMULATOR_RECONNECT_DELAY: expected seconds, or a range like 5-10") from None
    ping = _float(env, "KONG_EMULATOR_PING_INTERVAL", 30.0) or 30.0
    echo = env.get("KONG_EMULATOR_ECHO_LISTEN", "off")
    return Settings(
        version=version,
        role=role,
        database=database,
        proxy_listen=parse_listen("KONG_PROXY_LISTEN", env.get("KONG_PROXY_LISTEN", "0.0.0.0:8000")),
        admin_listen=parse_listen("KONG_ADMIN_LISTEN", env.get("KONG_ADMIN_LISTEN", "127.0.0.1:8001")),
        status_listen=parse_listen("KONG_STATUS_LISTEN", status_text),
        cluster_listen=parse_listen("KONG_CLUSTER_LISTEN", env.get("KONG_CLUSTER_LISTEN", "0.0.0.0:8005")),
        cluster_control_plane=parse_listen(
            "KONG_CLUSTER_CONTROL_PLANE", env.get("KONG_CLUSTER_CONTROL_PLANE", "127.0.0.1:8005")
        ),
        cluster_cert=_pem_or_path("KONG_CLUSTER_CERT", cert),
        cluster_cert_key=_pem_or_path("KONG_CLUSTER_CERT_KEY", key),
        declarative_config=env.get("KONG_DECLARATIVE_CONFIG", "").strip() or None,
        dp_labels=_labels(env.get("KONG_CLUSTER_DP_LABELS", "")),
        node_id=env.get("KONG_NODE_ID", "").strip() or str(uuid.uuid4()),
        plugins=tuple(p.strip() for p in env.get("KONG_PLUGINS", "bundled").split(",") if p.strip()),
        echo_listen=parse_listen("KONG_EMULATOR_ECHO_LISTEN", echo),
        ping_interval=ping,
        reconnect_delay=delay,
        faults=parse_faults(env),
        admin_body_limit=parse_size("KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE",
                                    env.get("KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE", "10m"), "client_max_body_size"),
        proxy_body_limit=parse_size("KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE",
                                    env.get("KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE", "0"), "client_max_body_size"),
        cluster_max_payload=_cluster_max_payload(env),
        admin_access_log=_access_log(env.get("KONG_ADMIN_ACCESS_LOG", "")),
        raw={k: v for k, v in env.items() if k.startswith("KONG_")},
    )
