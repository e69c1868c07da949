"""What a given Kong version answers, for the checks that compare X and Y behaviour.

Version knowledge of responses Kong itself generates (not the upstream's): key-auth 401s, the
no-route 404, and the headers whose format changed between versions. Sources: KONG-FACTS.md §4.3
(key-auth), §6.1 (no route), §6.3 (Via, Server, X-Kong-Request-Id). The emulator has its own
table; the two are never shared, so a wrong fact cannot pass both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.compat import Version

KeyAuthCase = Literal["missing", "invalid", "duplicate"]


@dataclass(frozen=True)
class ExpectedError:
    """A Kong-generated error response: status, the JSON ``message``, and the auth challenge."""

    status: int
    message: str
    www_authenticate: str | None
    request_id_in_body: bool


def _v(version: str | Version) -> Version:
    return version if isinstance(version, Version) else Version.parse(version)


def _at_least(version: Version, major: int, minor: int) -> bool:
    return (version.major, version.minor) >= (major, minor)


def key_auth_401(version: str | Version, case: KeyAuthCase, realm: str | None = None) -> ExpectedError:
    """The key-auth rejection a Kong version sends (KONG-FACTS §4.3 table)."""
    v = _v(version)
    challenge_37 = f'Key realm="{realm}"' if realm else "Key"
    challenge: str | None
    if case == "missing":
        message = "No API key found in request"
        challenge = challenge_37 if _at_least(v, 3, 7) else 'Key realm="kong"'
    elif case == "invalid":
        message = "Unauthorized" if _at_least(v, 3, 6) else "Invalid authentication credentials"
        challenge = challenge_37 if _at_least(v, 3, 7) else None
    else:
        message = "Duplicate API key found"
        challenge = challenge_37 if _at_least(v, 3, 7) else None
    return ExpectedError(401, message, challenge, _at_least(v, 3, 5))


def no_route_404(version: str | Version) -> ExpectedError:
    """The 404 for a request no route matches (KONG-FACTS §6.1)."""
    return ExpectedError(404, "no Route matched with those values", None, _at_least(_v(version), 3, 5))


def via_pattern(version: str | Version) -> re.Pattern[str]:
    """The ``Via`` Kong adds to proxied responses: ``kong/x.y.z`` up to 3.7, ``1.1 kong/x.y.z`` from 3.8."""
    v = _v(version)
    ver = re.escape(str(v)) + r"(?![\w.-])"  # 3.7.1 is not 3.7.10, 3.4.3.1 is not 3.4.3.12
    if _at_least(v, 3, 8):
        return re.compile(rf"(?:^|,\s*)(?:1\.1|2|1\.0) kong/{ver}")
    return re.compile(rf"^kong/{ver}")


def sends_request_id(version: str | Version) -> bool:
    """``X-Kong-Request-Id`` on responses and upstream requests from 3.5 (KONG-FACTS §6.3)."""
    return _at_least(_v(version), 3, 5)


def sends_via_upstream(version: str | Version) -> bool:
    """3.8+ also sends ``Via`` to the upstream (KONG-FACTS §6.3)."""
    return _at_least(_v(version), 3, 8)


# Headers whose value legitimately differs between two nodes or two versions; the differential
# check compares everything else the upstream received. Data, not branches (STYLE.md #12).
VOLATILE_UPSTREAM_HEADERS = frozenset(
    {
        "x-forwarded-for",      # the client address each node sees (host vs container network)
        "x-real-ip",
        "x-forwarded-port",     # the port the client dialled: X's and Y's listeners differ
        "x-kong-request-id",    # unique per request, and only from 3.5
        "via",                  # only from 3.8, and carries the version
        "connection",
        "keep-alive",
        "content-length",
        "user-agent",
        "accept-encoding",
    }
)
VOLATILE_RESPONSE_HEADERS = frozenset(
    {
        "date", "via", "server", "x-kong-request-id", "x-kong-upstream-latency",
        "x-kong-proxy-latency", "x-kong-response-latency", "content-length", "connection",
        "keep-alive", "x-kuh-upstream", "x-kuh-side",
    }
)
