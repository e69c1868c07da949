"""The Kong version a node behaves as, and the behaviour switches that hang on it (KONG-FACTS.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class UnsupportedVersion(ValueError):
    """The requested Kong version is not one the emulator can behave as."""


@dataclass(frozen=True)
class KongVersion:
    """A Kong version with the feature switches the emulator needs, each citing KONG-FACTS.md."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> KongVersion:
        match = _VERSION_RE.match(text.strip())
        if match is None:
            raise UnsupportedVersion(
                f"KONG_EMULATOR_VERSION={text!r} is not a version: expected MAJOR.MINOR.PATCH such as 3.9.3"
            )
        version = cls(*(int(part) for part in match.groups()))
        if not ((version.major == 2 and version.minor == 8) or (version.major == 3 and version.minor <= 9)):
            raise UnsupportedVersion(
                f"KONG_EMULATOR_VERSION={text!r} is not emulated: expected 2.8.x or 3.0.x to 3.9.x"
            )
        return version

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    @property
    def number(self) -> int:
        """Kong's comparable version number (section 3.3: major*1e9 + minor*1e6 + patch*1e3)."""
        return self.major * 1_000_000_000 + self.minor * 1_000_000 + self.patch * 1_000

    # --- Admin API (section 1) ---
    @property
    def plugin_metadata_on_root(self) -> bool:  # 1.1: available_on_server values are maps from 3.0
        return self.major >= 3

    @property
    def has_edition(self) -> bool:  # 1.1: `edition` from 3.6.0
        return self.at_least(3, 6)

    @property
    def dbless_status_has_database(self) -> bool:  # 1.2: removed in DB-less/DP from 3.4.0
        return not self.at_least(3, 4)

    @property
    def has_flatten_errors(self) -> bool:  # 1.3: from 3.2.0
        return self.at_least(3, 2)

    @property
    def export_format_version(self) -> str:  # 1.3 / 5: "2.1" in 2.8, "3.0" in 3.x
        return "3.0" if self.major >= 3 else "2.1"

    @property
    def accepted_format_versions(self) -> tuple[str, ...]:  # 5: 2.8 -> 1.1, 2.1; 3.x adds 3.0
        return ("1.1", "2.1", "3.0") if self.major >= 3 else ("1.1", "2.1")

    @property
    def has_updated_at_everywhere(self) -> bool:  # 1.3: updated_at on more entities from 3.3.0
        return self.at_least(3, 3)

    @property
    def has_instance_name(self) -> bool:  # 1.3: plugins.instance_name from 3.2.0
        return self.at_least(3, 2)

    # --- Status API (section 2) ---
    @property
    def has_ready_endpoint(self) -> bool:  # 2: /status/ready from 3.3.0
        return self.at_least(3, 3)

    @property
    def has_draining(self) -> bool:  # 2: POST /status/ready draining from 3.9.0
        return self.at_least(3, 9)

    @property
    def default_status_listen(self) -> str:  # 2: on by default from 3.6.0
        return "127.0.0.1:8007" if self.at_least(3, 6) else "off"

    # --- Proxy (section 6) ---
    @property
    def has_request_id(self) -> bool:  # 6.3: X-Kong-Request-Id and request_id in bodies from 3.5.0
        return self.at_least(3, 5)

    @property
    def via_with_protocol(self) -> bool:  # 6.3: `1.1 kong/x` and upstream Via from 3.8.0
        return self.at_least(3, 8)

    @property
    def error_template(self) -> bool:  # 6.1: no-route 404 uses the template from 3.3.0
        return self.at_least(3, 3)

    @property
    def upstream_error_template(self) -> bool:  # 6.2: 3.x uses kong.response.error, 2.8 exit
        return self.major >= 3

    @property
    def regex_needs_tilde(self) -> bool:  # 6.4: `~` prefix from 3.0
        return self.major >= 3

    # --- key-auth (section 4) ---
    @property
    def keyauth_version(self) -> str:  # 4.1: "2.4.0" in 2.8, the Kong version in 3.x
        return str(self) if self.major >= 3 else "2.4.0"

    @property
    def keyauth_invalid_message(self) -> str:  # 4.3: "Unauthorized" from 3.6.0
        return "Unauthorized" if self.at_least(3, 6) else "Invalid authentication credentials"

    @property
    def keyauth_has_realm(self) -> bool:  # 4.1/4.3: realm and WWW-Authenticate on all 401s from 3.7.0
        return self.at_least(3, 7)

    # --- hybrid (section 3) ---
    @property
    def cluster_paths(self) -> tuple[str, ...]:
        """Paths a CP of this version serves for DPs (3.1 table: 3.1 OSS speaks wRPC only)."""
        if (self.major, self.minor) == (3, 0):
            return ("/v1/outlet", "/v1/wrpc")
        if (self.major, self.minor) == (3, 1):
            return ("/v1/wrpc",)
        return ("/v1/outlet",)

    @property
    def dp_paths(self) -> tuple[str, ...]:
        """Paths a DP of this version tries, in order (3.1 table)."""
        if (self.major, self.minor) == (3, 0):
            return ("/v1/wrpc", "/v1/outlet")
        if (self.major, self.minor) == (3, 1):
            return ("/v1/wrpc",)
        return ("/v1/outlet",)

    @property
    def default_cluster_max_payload(self) -> int:
        """9.2: 4 MiB until 3.3, 16 MiB from 3.4.0 (Kong/kong PR 11090; kong/templates/kong_defaults.lua
        @ 3.3.1 `cluster_max_payload = 4194304`, @ 3.4.0 `16777216`)."""
        return 16 * 1024 * 1024 if self.at_least(3, 4) else 4 * 1024 * 1024

    @property
    def dp_sends_labels(self) -> bool:  # 3.1: labels sent from 3.3
        return self.at_least(3, 3)

    @property
    def cp_stores_labels(self) -> bool:  # 1.6: labels on data-planes from 3.5
        return self.at_least(3, 5)

    @property
    def dp_row_has_cert_details(self) -> bool:  # 1.6: 3.6+
        return self.at_least(3, 6)

    @property
    def dp_row_has_rpc_capabilities(self) -> bool:  # 1.6: 3.7+
        return self.at_least(3, 7)


def dp_compatibility(cp: KongVersion, dp_text: str) -> str | None:
    """Kong's handshake version rule (section 3.3). None when compatible, else the log message."""
    match = re.match(r"^(\d+)\.(\d+)\.\d+", dp_text or "")
    if match is None:
        return f"data plane version {dp_text} is incompatible with control plane version {cp}"
    major, minor = int(match.group(1)), int(match.group(2))
    if major != cp.major:
        return (
            f"data plane version {dp_text} is incompatible with control plane version {cp} "
            f"({cp.major}.x.y are accepted)"
        )
    if minor > cp.minor:
        return f"data plane version {dp_text} is incompatible with older control plane version {cp}"
    return None
