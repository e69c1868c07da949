"""What a given Kong version answers, for the checks that compare X and Y behaviour.

Version knowledge of responses Kong itself generates (not the upstream's): key-auth 401s, the
no-route 404, and the headers whose format changed between versions. Sources: KONG-FACTS.md §4.3
(key-auth), §6.1 (no route), §6.3 (Via, Server, X-Kong-Request-Id). The emulator has its own
table; the two are never shared, so a wrong fact cannot pass both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


#: the response and upstream-request headers whose presence and form a version dictates (KONG-FACTS §6.3)
VERSION_HEADERS = ("via", "server", "x-kong-request-id", "x-kong-upstream-latency", "x-kong-proxy-latency",
                   "x-kong-response-latency")


def header_problems(version: str | Version, response: Mapping[str, str], upstream: Mapping[str, str] | None
                    ) -> list[str]:
    """What a node of ``version`` got wrong in the version-dependent headers of one answer (KONG-FACTS §6.3).

    ``response``: the answer's headers (lower-case names); ``upstream``: the headers the upstream received
    (None when Kong answered itself). Proxied answers carry ``Via`` in the version's form and the latency
    headers; Kong's own answers carry ``Server: kong/<version>`` and no ``Via``; from 3.5 both carry
    ``X-Kong-Request-Id`` (and the upstream gets it); from 3.8 the upstream also gets ``Via``.
    """
    v = _v(version)
    problems = []
    request_id = sends_request_id(v)
    if upstream is not None:
        via = response.get("via")
        if via is None or not via_pattern(v).search(via):
            problems.append(f"Via {via!r} is not {version}'s form ({via_pattern(v).pattern})")
        for name in ("x-kong-upstream-latency", "x-kong-proxy-latency"):
            if name not in response:
                problems.append(f"no {name} on a proxied answer")
        got_via = upstream.get("via")
        if sends_via_upstream(v) and (got_via is None or f"kong/{v}" not in got_via):
            problems.append(f"the upstream received Via {got_via!r}, {version} sends 'HTTP-version kong/{v}'")
        if not sends_via_upstream(v) and got_via is not None and "kong/" in got_via:
            problems.append(f"the upstream received Via {got_via!r}, which {version} does not send")
        if request_id != ("x-kong-request-id" in upstream):
            problems.append(f"X-Kong-Request-Id to the upstream {'missing' if request_id else 'sent'} "
                            f"({version} {'sends' if request_id else 'does not send'} it)")
    else:
        if response.get("server") != f"kong/{v}":
            problems.append(f"Server {response.get('server')!r} on Kong's own answer, expected 'kong/{v}'")
        if "via" in response:
            problems.append(f"Via {response['via']!r} on Kong's own answer, which carries none")
        if "x-kong-response-latency" not in response:
            problems.append("no x-kong-response-latency on Kong's own answer")
    if request_id != ("x-kong-request-id" in response):
        problems.append(f"X-Kong-Request-Id on the answer {'missing' if request_id else 'sent'} "
                        f"({version} {'sends' if request_id else 'does not send'} it)")
    return problems


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
