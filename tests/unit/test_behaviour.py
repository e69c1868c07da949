"""Version knowledge of Kong-generated answers, case by case against KONG-FACTS §4.3, §6.1 and §6.3."""

from __future__ import annotations

import pytest

from harness.behaviour import (
    VOLATILE_RESPONSE_HEADERS,
    VOLATILE_UPSTREAM_HEADERS,
    ExpectedError,
    header_problems,
    key_auth_401,
    no_route_404,
    sends_request_id,
    sends_via_upstream,
    via_pattern,
)
from harness.compat import Version
from harness.errors import HarnessError

MISSING = "No API key found in request"
OLD_INVALID = "Invalid authentication credentials"
KONG_REALM = 'Key realm="kong"'


# KONG-FACTS §4.3 table: (a) no key, (b) invalid key, by version; request_id in the body from 3.5
@pytest.mark.parametrize(
    ("version", "missing", "invalid", "request_id"),
    [
        ("2.8.5", (MISSING, KONG_REALM), (OLD_INVALID, None), False),
        ("3.4.2", (MISSING, KONG_REALM), (OLD_INVALID, None), False),
        ("3.5.0", (MISSING, KONG_REALM), (OLD_INVALID, None), True),
        ("3.6.1", (MISSING, KONG_REALM), ("Unauthorized", None), True),
        ("3.7.0", (MISSING, "Key"), ("Unauthorized", "Key"), True),
        ("3.9.3", (MISSING, "Key"), ("Unauthorized", "Key"), True),
    ],
)
def test_key_auth_401_without_a_realm(version: str, missing: tuple[str, str | None],
                                      invalid: tuple[str, str | None], request_id: bool) -> None:
    assert key_auth_401(version, "missing") == ExpectedError(401, *missing, request_id)
    assert key_auth_401(version, "invalid") == ExpectedError(401, *invalid, request_id)


@pytest.mark.parametrize(
    ("version", "missing_challenge", "invalid_challenge"),
    [
        # realm exists from 3.7; before it, the missing-key challenge is always realm "kong"
        ("2.8.5", KONG_REALM, None),
        ("3.4.2", KONG_REALM, None),
        ("3.6.0", KONG_REALM, None),
        ("3.7.1", 'Key realm="test-realm"', 'Key realm="test-realm"'),
        ("3.9.3", 'Key realm="test-realm"', 'Key realm="test-realm"'),
    ],
)
def test_key_auth_401_with_a_realm(version: str, missing_challenge: str,
                                   invalid_challenge: str | None) -> None:
    assert key_auth_401(version, "missing", "test-realm").www_authenticate == missing_challenge
    assert key_auth_401(version, "invalid", "test-realm").www_authenticate == invalid_challenge


def test_an_empty_realm_is_no_realm() -> None:
    assert key_auth_401("3.9.3", "missing", "").www_authenticate == "Key"


@pytest.mark.parametrize(("version", "challenge"), [("2.8.5", None), ("3.6.1", None), ("3.7.0", "Key")])
def test_duplicate_key_gets_the_header_from_3_7(version: str, challenge: str | None) -> None:
    got = key_auth_401(version, "duplicate")
    assert (got.status, got.message, got.www_authenticate) == (401, "Duplicate API key found", challenge)


def test_versions_are_read_in_every_accepted_form() -> None:
    assert key_auth_401(Version.parse("3.6.0"), "invalid").message == "Unauthorized"
    assert key_auth_401("3.4.3.12", "invalid").message == OLD_INVALID           # enterprise, four parts
    assert key_auth_401("3.7.1-enterprise-edition", "missing").www_authenticate == "Key"
    with pytest.raises(HarnessError, match="not a Kong version"):
        key_auth_401("latest", "missing")


@pytest.mark.parametrize(("version", "request_id"), [("2.8.5", False), ("3.4.2", False), ("3.5.0", True),
                                                     ("3.9.3", True)])
def test_no_route_404(version: str, request_id: bool) -> None:
    assert no_route_404(version) == ExpectedError(404, "no Route matched with those values", None, request_id)


def test_via_before_3_8_is_the_bare_product_token() -> None:
    pattern = via_pattern("3.7.1")
    assert pattern.search("kong/3.7.1")
    assert not pattern.search("1.1 kong/3.7.1")
    assert not pattern.search("kong/3.7.0")
    assert not pattern.search("kong/3.7.10"), "3.7.1 must not match a longer version"


def test_via_from_3_8_carries_the_protocol_and_may_follow_the_upstreams_via() -> None:
    pattern = via_pattern("3.8.0")
    assert pattern.search("1.1 kong/3.8.0")
    assert pattern.search("2 kong/3.8.0")
    assert pattern.search("1.0 proxy-a, 1.1 kong/3.8.0")
    assert not pattern.search("kong/3.8.0")
    assert not pattern.search("1.1 kong/3.9.0")


def test_via_of_an_enterprise_version_does_not_match_a_later_build() -> None:
    assert via_pattern("3.4.3.1").search("kong/3.4.3.1")
    assert not via_pattern("3.4.3.1").search("kong/3.4.3.12")
    assert not via_pattern("3.8.1").search("1.1 kong/3.8.10")


def test_request_id_and_upstream_via_by_version() -> None:
    assert [sends_request_id(v) for v in ("2.8.5", "3.4.2", "3.5.0", "3.9.3")] == [False, False, True, True]
    assert [sends_via_upstream(v) for v in ("3.7.1", "3.8.0", "3.9.3")] == [False, True, True]


def test_volatile_headers_are_lower_case_and_keep_what_must_be_compared() -> None:
    for names in (VOLATILE_UPSTREAM_HEADERS, VOLATILE_RESPONSE_HEADERS):
        assert all(n == n.lower() for n in names)
    assert {"via", "x-kong-request-id", "x-forwarded-for"} <= VOLATILE_UPSTREAM_HEADERS
    # what key-auth sets upstream, and the credential itself, are compared between X and Y
    for kept in ("x-consumer-username", "x-consumer-id", "x-credential-identifier", "apikey", "host",
                 "x-forwarded-host", "x-forwarded-proto", "x-forwarded-path"):
        assert kept not in VOLATILE_UPSTREAM_HEADERS


# --- version-dependent headers (KONG-FACTS §6.3) --------------------------------------------------------

PROXIED_38 = {"via": "1.1 kong/3.8.0", "x-kong-upstream-latency": "1", "x-kong-proxy-latency": "0",
              "x-kong-request-id": "a" * 32}
UPSTREAM_38 = {"via": "1.1 kong/3.8.0", "x-kong-request-id": "a" * 32}


def test_a_38_node_that_answers_as_38_has_no_header_problem() -> None:
    assert header_problems("3.8.0", PROXIED_38, UPSTREAM_38) == []
    own = {"server": "kong/3.8.0", "x-kong-response-latency": "0", "x-kong-request-id": "a" * 32}
    assert header_problems("3.8.0", own, None) == []


@pytest.mark.parametrize(("change", "problem"), [
    ({"via": None}, "Via None is not 3.8.0's form"),
    ({"via": "kong/3.8.0"}, "Via 'kong/3.8.0' is not 3.8.0's form"),
    ({"x-kong-request-id": None}, "X-Kong-Request-Id on the answer missing"),
    ({"x-kong-proxy-latency": None}, "no x-kong-proxy-latency on a proxied answer"),
])
def test_a_38_node_that_drops_or_changes_a_version_header_is_named(change: dict[str, str | None],
                                                                   problem: str) -> None:
    headers = {k: v for k, v in {**PROXIED_38, **change}.items() if v is not None}
    assert any(p.startswith(problem) for p in header_problems("3.8.0", headers, UPSTREAM_38)), problem


def test_via_to_the_upstream_only_from_38_and_the_request_id_only_from_35() -> None:
    assert any("the upstream received Via None" in p
               for p in header_problems("3.8.0", PROXIED_38, {"x-kong-request-id": "a" * 32}))
    old = {"via": "kong/3.4.2", "x-kong-upstream-latency": "1", "x-kong-proxy-latency": "0"}
    assert header_problems("3.4.2", old, {}) == []
    assert any("X-Kong-Request-Id on the answer sent" in p
               for p in header_problems("3.4.2", {**old, "x-kong-request-id": "b" * 32}, {}))
    assert any("which 3.4.2 does not send" in p for p in header_problems("3.4.2", old, {"via": "1.1 kong/3.4.2"}))
