"""Differential checks: observe() over a mock transport, compare() on hand-made observations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from harness.behaviour import key_auth_401
from harness.corpus import CorpusRequest, KeyAuth, fingerprint
from harness.differential import Difference, Observation, compare, expected_for, observe
from harness.errors import NodeUnreachable

SECRET = "fake-key-alice-0001"
KA = KeyAuth(scope="service")
PLAIN = CorpusRequest("orders-list", "orders-list", "GET", "/orders", (("Host", "kuh-probe.invalid"),))
NO_KEY = CorpusRequest("acc/no-key", "acc", "GET", "/accounts", (), "missing", KA)
WRONG = CorpusRequest("acc/wrong-key", "acc", "GET", "/accounts", (("apikey", "kuh-not-a-real-key"),),
                      "invalid", KA)
GOOD = CorpusRequest("acc/good-key", "acc", "GET", "/accounts", (("apikey", SECRET),), "good", KA,
                     fingerprint(SECRET), "alice")


def echo(**over: Any) -> dict[str, Any]:
    """What the echo upstream reports having received."""
    body: dict[str, Any] = {
        "method": "GET", "path": "/orders", "query": {}, "body": "",
        "headers": {"host": "127.0.0.1:9", "x-forwarded-for": "127.0.0.1", "via": "1.1 kong/3.8.1",
                    "x-kong-request-id": "abc", "user-agent": "python-httpx"},
    }
    for key, value in over.items():
        if key == "headers":
            body["headers"] = {**body["headers"], **value}
        else:
            body[key] = value
    return body


def proxied(upstream: dict[str, Any], status: int = 200) -> Observation:
    return Observation(status, None, None, upstream, json.dumps(upstream))


def generated(status: int, message: str | None, challenge: str | None = None) -> Observation:
    return Observation(status, message, challenge, None, json.dumps({"message": message}))


def rejected(version: str, case: str) -> Observation:
    exp = key_auth_401(version, case)  # type: ignore[arg-type]
    return generated(exp.status, exp.message, exp.www_authenticate)


# --- observe ----------------------------------------------------------------------------------------

def client_answering(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_observe_sends_the_corpus_request_and_reads_a_proxied_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=echo())

    with client_answering(handler) as client:
        obs = observe(client, "http://127.0.0.1:8000/", GOOD, where="y1")
    assert (str(seen[0].url), seen[0].method) == ("http://127.0.0.1:8000/accounts", "GET")
    assert seen[0].headers["apikey"] == SECRET
    assert obs.status == 200 and obs.message is None
    assert obs.upstream is not None and obs.upstream["path"] == "/orders"


def test_observe_reads_kongs_own_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Unauthorized", "request_id": "r1"},
                              headers={"WWW-Authenticate": "Key"})

    with client_answering(handler) as client:
        obs = observe(client, "http://127.0.0.1:8000", WRONG, where="y1")
    assert (obs.status, obs.message, obs.www_authenticate, obs.upstream) == (401, "Unauthorized", "Key", None)


def test_observe_takes_a_non_json_body_as_text() -> None:
    with client_answering(lambda r: httpx.Response(502, text="<html>bad gateway</html>")) as client:
        obs = observe(client, "http://127.0.0.1:8000", PLAIN, where="x1")
    assert (obs.status, obs.message, obs.upstream) == (502, None, None)
    assert obs.body_text == "<html>bad gateway</html>"


def test_observe_names_the_node_and_request_when_nothing_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_answering(handler) as client, pytest.raises(NodeUnreachable) as info:
        observe(client, "http://127.0.0.1:8000", GOOD, where="y2[emulator://3.8.1]")
    text = str(info.value)
    assert "y2[emulator://3.8.1]" in text and "acc/good-key" in text and "ConnectError" in text
    assert SECRET not in text


# --- compare: statuses and Kong-generated answers ---------------------------------------------------

def test_identical_proxied_answers_have_no_difference() -> None:
    assert compare(PLAIN, proxied(echo()), proxied(echo()), x_version="3.4.2", y_version="3.8.1") == []


def test_a_status_difference_is_reported_alone() -> None:
    diffs = compare(GOOD, proxied(echo()), generated(401, "Unauthorized"),
                    x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("acc/good-key", "status", "200", "401")]
    assert diffs[0].render() == "acc/good-key: status: X=200 | Y=401"


@pytest.mark.parametrize("req", [NO_KEY, WRONG], ids=["no-key", "wrong-key"])
@pytest.mark.parametrize(("x_version", "y_version"), [("2.8.5", "3.4.2"), ("3.4.2", "3.6.1"),
                                                      ("3.4.2", "3.8.1"), ("3.6.0", "3.9.3")])
def test_key_auth_answers_that_changed_by_design_are_no_difference(
        req: CorpusRequest, x_version: str, y_version: str) -> None:
    case = "missing" if req.auth == "missing" else "invalid"
    x, y = rejected(x_version, case), rejected(y_version, case)
    assert compare(req, x, y, x_version=x_version, y_version=y_version) == []


def test_the_same_answer_from_both_is_a_difference_when_y_should_have_changed() -> None:
    # Y at 3.8 answering like 3.4 ("Invalid authentication credentials", no challenge) is a regression
    old = rejected("3.4.2", "invalid")
    diffs = compare(WRONG, old, old, x_version="3.4.2", y_version="3.8.1")
    assert len(diffs) == 1
    d = diffs[0]
    assert d.field == "Y key-auth answer"
    assert d.y == "Invalid authentication credentials"
    assert "Y (3.8.1) should send message 'Unauthorized' and WWW-Authenticate 'Key'" in d.note


def test_each_side_is_judged_against_its_own_version() -> None:
    x_wrong = generated(401, "Unauthorized", None)    # X at 3.4 must say "Invalid authentication credentials"
    diffs = compare(WRONG, x_wrong, rejected("3.8.1", "invalid"), x_version="3.4.2", y_version="3.8.1")
    assert [d.field for d in diffs] == ["X key-auth answer"]
    assert diffs[0].x == "Unauthorized"


def test_a_key_auth_route_with_anonymous_is_compared_as_proxied() -> None:
    anon = CorpusRequest("cat/no-key", "cat", "GET", "/catalog", (), "missing",
                         KeyAuth("service", anonymous="guest"))
    assert expected_for(anon, "3.8.1") is None
    x = proxied(echo(headers={"x-anonymous-consumer": "true"}))
    y = proxied(echo())
    diffs = compare(anon, x, y, x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("cat/no-key", "upstream header x-anonymous-consumer", "true", "null")]


def test_expected_for_only_judges_rejections() -> None:
    assert expected_for(PLAIN, "3.8.1") is None
    assert expected_for(GOOD, "3.8.1") is None
    assert expected_for(NO_KEY, "3.8.1") == key_auth_401("3.8.1", "missing")
    realm = CorpusRequest("r/wrong-key", "r", "GET", "/", (), "invalid", KeyAuth("route", realm="test-realm"))
    exp = expected_for(realm, "3.9.3")
    assert exp is not None and exp.www_authenticate == 'Key realm="test-realm"'


def test_generated_messages_are_compared_when_no_version_rule_applies() -> None:
    x, y = generated(404, "no Route matched with those values"), generated(404, "Not found")
    assert compare(PLAIN, x, y, x_version="3.4.2", y_version="3.8.1") == [
        Difference("orders-list", "message", "no Route matched with those values", "Not found")]


# --- compare: what the upstream received -------------------------------------------------------------

def test_one_side_proxied_and_the_other_not_is_a_difference() -> None:
    diffs = compare(PLAIN, proxied(echo()), generated(200, "ok"), x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("orders-list", "proxied", "True", "False")]


@pytest.mark.parametrize(
    ("field", "y_over"),
    [("method", {"method": "POST"}), ("path", {"path": "/orders/"}), ("query", {"query": {"a": "1"}}),
     ("body", {"body": "x"})],
)
def test_upstream_request_differences(field: str, y_over: dict[str, Any]) -> None:
    diffs = compare(PLAIN, proxied(echo()), proxied(echo(**y_over)), x_version="3.4.2", y_version="3.8.1")
    assert [d.field for d in diffs] == [f"upstream {field}"]


def test_volatile_upstream_headers_are_ignored_and_names_are_case_insensitive() -> None:
    x = echo(headers={"X-Forwarded-For": "10.0.0.1", "Via": "kong/3.4.2", "X-Consumer-Username": "alice"})
    y = echo(headers={"x-forwarded-for": "172.17.0.1", "x-kong-request-id": "other",
                      "x-forwarded-port": "8443", "connection": "close", "content-length": "0",
                      "x-consumer-username": "alice"})
    y["headers"].pop("user-agent")
    x["headers"]["X-Kong-Request-Id"] = "zzz"
    x["headers"].pop("x-kong-request-id")
    x["headers"].pop("via")
    assert compare(PLAIN, proxied(x), proxied(y), x_version="3.4.2", y_version="3.8.1") == []


def test_a_header_missing_upstream_on_y_is_a_difference() -> None:
    x = proxied(echo(headers={"x-consumer-username": "alice", "x-credential-identifier": "cred-1"}))
    y = proxied(echo(headers={"x-consumer-username": "alice"}))
    diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("acc/good-key", "upstream header x-credential-identifier", "cred-1", "null")]


# --- secrets ------------------------------------------------------------------------------------------

def test_secrets_never_appear_in_rendered_upstream_differences() -> None:
    # hide_credentials lost on Y: the key reaches Y's upstream in a header and in the query
    x = proxied(echo())
    y = proxied(echo(headers={"apikey": SECRET}, query={"apikey": SECRET}))
    diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1", secrets={SECRET, "fake-key-bob-0002"})
    assert [d.field for d in diffs] == ["upstream query", "upstream header apikey"]
    for d in diffs:
        assert SECRET not in d.render()
    assert f"<{fingerprint(SECRET)}>" in diffs[1].render()


def test_a_secret_inside_another_secret_leaves_no_part_behind() -> None:
    short, long = "fake-key-0001", "fake-key-0001-rotated"
    x = proxied(echo(headers={"apikey": long}))
    y = proxied(echo())
    for _ in range(5):  # set order varies between runs: both orders must redact fully
        for secrets in ([short, long], [long, short]):
            diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1", secrets=secrets)
            assert "rotated" not in diffs[0].render()


def test_secrets_never_appear_in_rendered_key_auth_differences() -> None:
    leaky = generated(401, f"invalid key {SECRET}", None)   # a broken Y echoing a key in its message
    diffs = compare(WRONG, rejected("3.4.2", "invalid"), leaky, x_version="3.4.2", y_version="3.8.1",
                    secrets={SECRET})
    assert [d.field for d in diffs] == ["Y key-auth answer"]
    assert SECRET not in diffs[0].render()


def test_secrets_never_appear_in_rendered_message_differences() -> None:
    diffs = compare(PLAIN, generated(404, "Not found"), generated(404, f"no route for {SECRET}"),
                    x_version="3.4.2", y_version="3.8.1", secrets=[SECRET])
    assert len(diffs) == 1 and SECRET not in diffs[0].render()


def test_long_values_are_cut_after_redaction() -> None:
    x = proxied(echo(body="a" * 1000 + SECRET))
    diffs = compare(PLAIN, x, proxied(echo()), x_version="3.4.2", y_version="3.8.1", secrets=[SECRET])
    assert len(diffs[0].x) == 300
    assert "fake-key" not in diffs[0].render()
