"""The request corpus from a declarative config: requests per route, key-auth by scope, secrets, skips."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import render_declarative
from harness.corpus import PROBE_HOST, KeyAuth, build_corpus, consumer_names, fingerprint, sample_path

SAMPLE = Path(__file__).resolve().parents[2] / "plans" / "configs" / "sample.yaml"
ALICE, BOB = "fake-key-alice-0001", "fake-key-bob-0002"
NO_PATHS = "r: no paths (host/header-only routes are not probed)"


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return yaml.safe_load(render_declarative(SAMPLE.read_text(), "http://127.0.0.1:9"))


def names(config: dict[str, Any]) -> list[str]:
    return [r.name for r in build_corpus(config).requests]


# --- the sample config ------------------------------------------------------------------------------

def test_sample_gives_one_request_per_plain_route_and_three_per_key_auth_route(
        sample: dict[str, Any]) -> None:
    corpus = build_corpus(sample)
    assert [r.name for r in corpus.requests] == [
        "orders-list", "orders-by-id", "route#2(/orders-legacy)",
        "accounts-main/no-key", "accounts-main/wrong-key", "accounts-main/good-key",
        "accounts-private/no-key", "accounts-private/wrong-key", "accounts-private/good-key",
        "catalog-host/no-key", "catalog-host/wrong-key", "catalog-host/good-key",
        "health-check",
    ]
    assert corpus.skipped == ()
    assert [r.auth for r in corpus.requests[3:6]] == ["missing", "invalid", "good"]
    assert len(corpus.by_auth("good")) == 3


def test_sample_paths_methods_and_hosts(sample: dict[str, Any]) -> None:
    by_name = {r.name: r for r in build_corpus(sample).requests}
    assert by_name["orders-by-id"].path == "/orders/42"           # ~/orders/\d+$
    assert by_name["health-check"].path == "/health"               # optional group left out
    assert by_name["route#2(/orders-legacy)"].method == "GET"      # first of [GET, POST]
    assert by_name["catalog-host/no-key"].header_dict() == {"Host": "catalog.example.test"}
    assert by_name["orders-list"].header_dict() == {"Host": PROBE_HOST}


def test_sample_key_auth_scope_route_beats_service(sample: dict[str, Any]) -> None:
    by_name = {r.name: r for r in build_corpus(sample).requests}
    main = by_name["accounts-main/no-key"].key_auth
    private = by_name["accounts-private/no-key"].key_auth
    catalog = by_name["catalog-host/no-key"].key_auth
    assert main == KeyAuth(scope="service")
    assert private == KeyAuth(scope="route", hide_credentials=True)
    assert catalog is not None and (catalog.scope, catalog.anonymous) == ("service", "guest")
    assert by_name["orders-list"].key_auth is None


def test_sample_requests_carry_the_right_credentials(sample: dict[str, Any]) -> None:
    by_name = {r.name: r for r in build_corpus(sample).requests}
    assert "apikey" not in by_name["accounts-main/no-key"].header_dict()
    assert by_name["accounts-main/wrong-key"].header_dict()["apikey"] not in (ALICE, BOB)
    good = by_name["accounts-main/good-key"]
    assert good.header_dict()["apikey"] == ALICE
    assert good.consumer == "alice"
    assert good.credential_fingerprint == fingerprint(ALICE)


def test_sample_secrets_are_collected_and_never_shown(sample: dict[str, Any]) -> None:
    corpus = build_corpus(sample)
    assert corpus.secrets == frozenset({ALICE, BOB})
    shown = repr(corpus) + "".join(repr(r) + r.name + r.path for r in corpus.requests)
    for key in (ALICE, BOB):
        assert key not in shown
    assert re.fullmatch(r"sha256:[0-9a-f]{8}", fingerprint(ALICE))  # as the parity diff labels credentials


def test_consumer_names(sample: dict[str, Any]) -> None:
    assert list(consumer_names(sample)) == ["alice", "bob", "guest"]


# --- key-auth scopes on small configs ---------------------------------------------------------------

def config(*, plugins: list[dict[str, Any]] = (), svc_plugins: list[dict[str, Any]] = (),  # type: ignore[assignment]
           route_plugins: list[dict[str, Any]] = (), route: dict[str, Any] | None = None,  # type: ignore[assignment]
           keys: tuple[str, ...] = ("k-0001",)) -> dict[str, Any]:
    return {
        "_format_version": "3.0",
        "services": [{
            "name": "s", "url": "http://127.0.0.1:9", "plugins": list(svc_plugins),
            "routes": [{"name": "r", "paths": ["/r"], "plugins": list(route_plugins), **(route or {})}],
        }],
        "consumers": [{"username": "u", "keyauth_credentials": [{"key": k} for k in keys]}],
        "plugins": list(plugins),
    }


def key_auth(**conf: Any) -> dict[str, Any]:
    return {"name": "key-auth", "config": conf}


def first_key_auth(cfg: dict[str, Any]) -> KeyAuth | None:
    return build_corpus(cfg).requests[0].key_auth


def test_a_global_key_auth_applies_to_every_route() -> None:
    ka = first_key_auth(config(plugins=[key_auth(key_names=["x-api-key"], realm="r1")]))
    assert ka == KeyAuth(scope="global", key_names=("x-api-key",), realm="r1")


def test_service_scope_beats_global_and_route_scope_beats_both() -> None:
    both = config(plugins=[key_auth(key_names=["g"])], svc_plugins=[key_auth(key_names=["s"])])
    assert first_key_auth(both) == KeyAuth(scope="service", key_names=("s",))
    three = config(plugins=[key_auth(key_names=["g"])], svc_plugins=[key_auth(key_names=["s"])],
                   route_plugins=[key_auth(key_names=["r"])])
    assert first_key_auth(three) == KeyAuth(scope="route", key_names=("r",))


def test_disabled_and_consumer_scoped_plugins_do_not_apply() -> None:
    cfg = config(svc_plugins=[{**key_auth(key_names=["s"]), "enabled": False}])
    cfg["consumers"][0]["plugins"] = [key_auth(key_names=["c"])]
    assert first_key_auth(cfg) is None
    assert names(cfg) == ["r"]
    # a disabled route plugin leaves the service's in force
    cfg2 = config(svc_plugins=[key_auth(key_names=["s"])], route_plugins=[{**key_auth(), "enabled": False}])
    assert first_key_auth(cfg2) == KeyAuth(scope="service", key_names=("s",))


def test_plugins_of_other_routes_and_services_do_not_apply() -> None:
    cfg = config()
    cfg["services"].append({"name": "other", "url": "http://127.0.0.1:9", "plugins": [key_auth()],
                            "routes": [{"name": "o", "paths": ["/o"],
                                        "plugins": [key_auth(hide_credentials=True)]}]})
    corpus = build_corpus(cfg)
    assert [r.name for r in corpus.requests] == ["r", "o/no-key", "o/wrong-key", "o/good-key"]
    assert corpus.requests[1].key_auth == KeyAuth(scope="route", hide_credentials=True)


def test_flat_get_config_form_with_id_references() -> None:
    flat = {
        "_format_version": "3.0",
        "services": [{"id": "svc-1", "name": "s", "host": "127.0.0.1", "port": 9}],
        "routes": [
            {"id": "rt-1", "name": None, "paths": ["/a"], "service": {"id": "svc-1"}, "protocols": ["http"]},
            {"id": "rt-2", "name": "b", "paths": ["/b"], "service": "svc-1"},
        ],
        "plugins": [
            {"id": "p1", "name": "key-auth", "service": {"id": "svc-1"}, "route": None, "consumer": None,
             "config": {"key_names": ["apikey"], "key_in_header": True, "key_in_query": True,
                        "hide_credentials": False, "anonymous": None, "realm": None}},
            {"id": "p2", "name": "key-auth", "route": "rt-2", "service": None, "consumer": None,
             "config": {"key_names": ["k2"], "hide_credentials": True}},
        ],
        "consumers": [{"id": "c-1", "username": None, "custom_id": "cust-1"}],
        "keyauth_credentials": [{"id": "kc-1", "key": "flat-key-0001", "consumer": {"id": "c-1"}}],
    }
    corpus = build_corpus(flat)
    by_name = {r.name: r for r in corpus.requests}
    assert set(by_name) == {"route#0(/a)/no-key", "route#0(/a)/wrong-key", "route#0(/a)/good-key",
                            "b/no-key", "b/wrong-key", "b/good-key"}
    assert by_name["route#0(/a)/no-key"].key_auth == KeyAuth(scope="service")
    assert by_name["b/good-key"].key_auth == KeyAuth(scope="route", key_names=("k2",), hide_credentials=True)
    assert by_name["b/good-key"].header_dict()["k2"] == "flat-key-0001"
    assert by_name["b/good-key"].consumer == "cust-1"        # no username: the custom_id
    assert corpus.secrets == frozenset({"flat-key-0001"})


def test_without_any_credential_only_the_rejections_are_sent() -> None:
    cfg = config(svc_plugins=[key_auth()], keys=())
    corpus = build_corpus(cfg)
    assert [r.auth for r in corpus.requests] == ["missing", "invalid"]
    assert corpus.secrets == frozenset()


def test_the_wrong_key_goes_where_the_plugin_reads_keys() -> None:
    # key_in_header=false: Kong ignores a key header, so a wrong key there is a missing key
    # (another message); the wrong key must travel in the query to get the "invalid" answer
    corpus = build_corpus(config(svc_plugins=[key_auth(key_in_header=False)]))
    wrong = next(r for r in corpus.requests if r.auth == "invalid")
    assert "apikey" not in wrong.header_dict()
    assert wrong.path == "/r?apikey=kuh-not-a-real-key"
    # no good-key request: the key would travel in the URL, which is logged
    assert [r.auth for r in corpus.requests] == ["missing", "invalid"]
    assert corpus.secrets == frozenset({"k-0001"})
    # neither header nor query: keys only in the body, which the corpus does not send
    body_only = build_corpus(config(svc_plugins=[key_auth(key_in_header=False, key_in_query=False)]))
    assert [r.auth for r in body_only.requests] == ["missing"]


def test_route_headers_are_sent() -> None:
    cfg = config(route={"headers": {"x-version": ["v2", "v3"]}, "methods": ["POST"]})
    req = build_corpus(cfg).requests[0]
    assert req.method == "POST"
    assert req.header_dict() == {"Host": PROBE_HOST, "x-version": "v2"}


# --- routes no request is derived for ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ({"paths": None, "headers": {"x-tenant": ["a"]}}, NO_PATHS),
        ({"paths": [], "hosts": ["h.example.test"]}, NO_PATHS),
        ({"protocols": ["https"]}, "r: not reachable over plain http (protocols ['https'])"),
        ({"protocols": ["grpc", "grpcs"]}, "r: not reachable over plain http"),
        ({"paths": ["~/v[12]/x$"]}, "r: no sample request path could be derived from ['~/v[12]/x$']"),
    ],
)
def test_skipped_routes_say_why(route: dict[str, Any], reason: str) -> None:
    corpus = build_corpus(config(route=route))
    assert corpus.requests == ()
    assert len(corpus.skipped) == 1
    assert corpus.skipped[0].startswith(reason)


def test_the_first_usable_path_of_a_route_is_taken() -> None:
    req = build_corpus(config(route={"paths": ["~/v[12]/x$", "/plain"]})).requests[0]
    assert req.path == "/plain"


def test_an_empty_config_gives_an_empty_corpus() -> None:
    corpus = build_corpus({"_format_version": "3.0"})
    assert (corpus.requests, corpus.skipped, corpus.secrets) == ((), (), frozenset())


# --- sample_path ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "sample"),
    [
        ("/orders", "/orders"),
        ("/", "/"),
        ("~/orders/\\d+$", "/orders/42"),
        ("~/health(/live|/ready)?$", "/health"),
        ("~/users/(?<id>[0-9]+)/profile$", "/users/42/profile"),
        ("~/files/(?:a|b)/[^/]+$", "/files/a/item"),
        ("~/v1/\\w+", "/v1/abc"),
        ("~^/api/.*", "/api/"),
        ("~/v[12]/x$", None),
    ],
)
def test_sample_path(path: str, sample: str | None) -> None:
    assert sample_path(path) == sample


def test_every_sampled_regex_path_is_matched_by_its_regex() -> None:
    for path in ("~/a/(b|c)/\\d+$", "~/x(/y)?/[a-z]+$", "~/(?<tenant>[a-z0-9-]+)/orders$"):
        got = sample_path(path)
        assert got is not None
        assert re.match(re.sub(r"\(\?<(\w+)>", r"(?P<\1>", path[1:]), got), (path, got)
