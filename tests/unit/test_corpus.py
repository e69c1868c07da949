"""The request corpus from a declarative config: requests per route, key-auth by scope, secrets, skips."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.config_capture import render_declarative
from harness.corpus import (
    PROBE_HOST,
    Corpus,
    KeyAuth,
    RouteClass,
    build_corpus,
    consumer_names,
    fingerprint,
    sample_path,
)
from harness.sampling import apportion, sample_corpus

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


# --- route classes ----------------------------------------------------------------------------------

def test_a_route_class_is_how_it_forwards_its_plugins_and_its_methods() -> None:
    cfg = config(svc_plugins=[key_auth(hide_credentials=True), {"name": "rate-limiting"}],
                 route={"methods": ["post", "GET"]})
    cfg["plugins"] = [{"name": "cors"}, {"name": "basic-auth", "consumer": "u"}]  # a consumer's: not on the route
    corpus = build_corpus(cfg)
    klass = corpus.requests[0].route_class
    assert klass == RouteClass("http", ("key-auth[hide_credentials]",), ("cors", "rate-limiting"), ("GET", "POST"))
    assert klass.render() == "http auth=key-auth[hide_credentials] plugins=cors,rate-limiting methods=GET,POST"
    assert {(r.route_class, r.upstream) for r in corpus.requests} == {(klass, "http://127.0.0.1:9")}, \
        "every variant of a route: one class, one upstream"


@pytest.mark.parametrize(
    ("service", "forwarding", "upstream"),
    [
        ({"url": "https://api.example.test/v1"}, "https+path", "https://api.example.test:443"),
        ({"url": "http://10.0.0.1:8080"}, "http", "http://10.0.0.1:8080"),
        ({"protocol": "grpcs", "host": "g.example.test"}, "grpcs", "grpcs://g.example.test:443"),
        ({"host": "h.example.test", "port": 81, "path": "/api"}, "http+path", "http://h.example.test:81"),
    ],
)
def test_the_class_names_how_a_route_reaches_its_service_and_the_request_its_upstream(
        service: dict[str, Any], forwarding: str, upstream: str) -> None:
    cfg = config()
    cfg["services"][0] = {**{k: v for k, v in cfg["services"][0].items() if k != "url"}, **service}
    req = build_corpus(cfg).requests[0]
    assert req.route_class is not None
    assert (req.route_class.service, req.route_class.auth, req.route_class.methods) == (forwarding, (), ("*",))
    assert req.upstream == upstream


@pytest.mark.parametrize(
    ("route", "forwarding"),
    [
        ({"strip_path": True, "preserve_host": False, "path_handling": "v0"}, "http"),   # Kong's defaults
        ({"strip_path": False}, "http strip_path=false"),
        ({"preserve_host": True, "path_handling": "v1"}, "http preserve_host path_handling=v1"),
        ({"paths": ["~/r/\\d+$"], "hosts": ["a.example.test"]}, "http regex hosts"),
        ({"headers": {"x-v": ["2"]}}, "http headers"),
    ],
)
def test_route_settings_that_change_forwarding_or_matching_split_classes(route: dict[str, Any],
                                                                          forwarding: str) -> None:
    klass = build_corpus(config(route=route)).requests[0].route_class
    assert klass is not None and klass.service == forwarding


def test_a_route_without_a_service_is_its_own_class() -> None:
    corpus = build_corpus({"routes": [{"name": "lone", "paths": ["/lone"]}]})
    assert (corpus.requests[0].route_class, corpus.requests[0].upstream) == (RouteClass("-"), "-")
    assert corpus.routes_total == 1


def test_within_a_class_the_sample_reaches_every_upstream_before_any_twice() -> None:
    cfg: dict[str, Any] = {"services": [
        {"name": f"s{i}", "url": f"http://backend-{i % 10}.internal:80{i % 10}",
         "routes": [{"name": f"r{i}", "paths": [f"/r{i}"]}]} for i in range(200)]}
    corpus = build_corpus(cfg)
    assert len(corpus.classes()) == 1
    chosen = sample_corpus(corpus, 10).requests
    assert len({r.upstream for r in chosen}) == 10


# --- a real-size config: 10,000 services, 20,000 routes, 10,000 consumers with keys -------------------

UPSTREAMS = ("http://127.0.0.1:9", "http://orders.internal:8080", "https://billing.internal", "http://cache:81")


def generated_config(services: int = 10_000) -> dict[str, Any]:
    """A flat config (as GET /config gives it) with many route classes of very different sizes.

    Services spread over four upstreams (service 0 alone on a fifth); two routes each: GET,POST and any
    method (every 7th service's second route DELETE only). key-auth on every 4th service (every 40th
    with hide_credentials), basic-auth on every 50th, rate-limiting on every 3rd; 10,000 consumers, each
    with a key-auth credential; a global cors. 10,000 + 20,000 + 20,000 + ~6,000 plugins: 56,000 entities.
    """
    out: dict[str, list[dict[str, Any]]] = {"services": [], "routes": [], "consumers": [],
                                            "keyauth_credentials": [], "plugins": [{"id": "p-cors", "name": "cors"}]}
    for i in range(services):
        url = "http://lonely.internal:82" if i == 0 else UPSTREAMS[i % len(UPSTREAMS)]
        out["services"].append({"id": f"s-{i}", "name": f"svc-{i:05d}", "url": url})
        for r in range(2):
            methods = ["GET", "POST"] if r == 0 else (["DELETE"] if i % 7 == 0 else None)
            out["routes"].append({"id": f"r-{i}-{r}", "name": f"route-{i:05d}-{r}", "paths": [f"/s{i}/r{r}"],
                                  "methods": methods, "service": {"id": f"s-{i}"}})
        out["consumers"].append({"id": f"c-{i}", "username": f"user-{i:05d}"})
        out["keyauth_credentials"].append({"id": f"k-{i}", "key": f"key-{i:05d}", "consumer": {"id": f"c-{i}"}})
        if i % 4 == 0:
            conf = {"key_names": ["apikey"], "hide_credentials": i % 40 == 0}
            out["plugins"].append({"id": f"ka-{i}", "name": "key-auth", "service": {"id": f"s-{i}"}, "config": conf})
        if i % 50 == 0:
            out["plugins"].append({"id": f"ba-{i}", "name": "basic-auth", "service": {"id": f"s-{i}"}})
        if i % 3 == 0:
            out["plugins"].append({"id": f"rl-{i}", "name": "rate-limiting", "service": {"id": f"s-{i}"}})
    return {"_format_version": "3.0", **out}


@pytest.fixture(scope="module")
def big() -> dict[str, Any]:
    return generated_config()


@pytest.fixture(scope="module")
def big_corpus(big: dict[str, Any]) -> Corpus:
    return build_corpus(big)


@pytest.fixture(scope="module")
def big_sample(big_corpus: Corpus) -> Corpus:
    return sample_corpus(big_corpus, 5000)


def test_the_generated_config_is_real_size(big: dict[str, Any], big_corpus: Corpus) -> None:
    assert sum(len(v) for v in big.values() if isinstance(v, list)) >= 55_000
    assert (len(big["routes"]), big_corpus.routes_total, big_corpus.skipped) == (20_000, 20_000, ())
    assert len(big_corpus.requests) > 20_000
    assert len(big_corpus.classes()) >= 40, "the config must have many classes for the sample to prove anything"


def test_a_budget_of_5000_keeps_every_class_and_stays_within_it(big_corpus: Corpus, big_sample: Corpus) -> None:
    assert len(big_sample.requests) == 5000
    everything, kept = big_corpus.classes(), big_sample.classes()
    assert set(kept) == set(everything)
    cov = big_sample.coverage
    assert cov is not None and cov.sampled and cov.over_budget == 0
    assert (cov.routes_total, cov.classes_total, cov.classes_covered) == (20_000, len(everything), len(everything))
    assert (cov.requests_total, cov.requests, cov.budget) == (len(big_corpus.requests), 5000, 5000)
    assert cov.routes_probed == len({r.route for r in big_sample.requests})
    # a route is sent twice only where its class has fewer routes than variants (each variant is kept)
    for klass, reqs in kept.items():
        n_routes = len({r.route for r in everything[klass]})
        if n_routes >= len({r.auth for r in everything[klass]}):
            assert len({r.route for r in reqs}) == len(reqs), klass
    assert big_sample.secrets == big_corpus.secrets and big_sample.skipped == big_corpus.skipped


def test_the_sample_is_proportional_to_each_class_and_keeps_each_variant(big_corpus: Corpus,
                                                                        big_sample: Corpus) -> None:
    routes = {c: len({r.route for r in reqs}) for c, reqs in big_corpus.classes().items()}
    kept = big_sample.classes()
    for klass, n_routes in routes.items():
        share = 5000 * n_routes / 20_000
        variants = {r.auth for r in big_corpus.classes()[klass]}
        assert {r.auth for r in kept[klass]} == variants, (klass, "every variant of the class is sent")
        assert len(kept[klass]) >= len(variants)
        assert abs(len(kept[klass]) - share) <= max(len(variants), 0.02 * share), (klass, len(kept[klass]), share)
    # the rare classes: service 0's routes (its own upstream) are kept although they are 2 of 20,000
    assert {r.route for r in big_sample.requests} >= {"route-00000-0", "route-00000-1"}
    # variants spread over a key-auth class's routes rather than all three of a few routes
    ka = next(reqs for c, reqs in kept.items() if c and c.auth == ("key-auth",) and len(reqs) > 30)
    counts = {auth: sum(r.auth == auth for r in ka) for auth in ("missing", "invalid", "good")}
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_the_sample_is_the_same_for_the_same_config_and_seed(big: dict[str, Any], big_corpus: Corpus,
                                                              big_sample: Corpus) -> None:
    again = sample_corpus(build_corpus(big), 5000)
    assert [r.name for r in again.requests] == [r.name for r in big_sample.requests]
    # a re-export that lists the entities in another order gives the same requests (routes are hashed by name)
    shuffled = {k: list(reversed(v)) if isinstance(v, list) else v for k, v in big.items()}
    assert {r.name for r in sample_corpus(build_corpus(shuffled), 5000).requests} == \
        {r.name for r in big_sample.requests}
    other = sample_corpus(big_corpus, 5000, seed=7)
    assert {r.name for r in other.requests} != {r.name for r in big_sample.requests}
    assert set(other.classes()) == set(big_corpus.classes()) and len(other.requests) == 5000


def test_a_budget_of_at_least_the_routes_probes_every_route(big_corpus: Corpus) -> None:
    # the routes, a class with fewer routes than variants counted as its variants (they are all kept)
    enough = sum(max(len({r.route for r in reqs}), len({r.auth for r in reqs}))
                 for reqs in big_corpus.classes().values())
    assert 20_000 < enough < 20_010
    chosen = sample_corpus(big_corpus, enough)
    assert chosen.coverage is not None and chosen.coverage.sampled
    assert chosen.coverage.routes_probed == 20_000 and len(chosen.requests) == enough
    assert sample_corpus(big_corpus, enough - 10).coverage.routes_probed < 20_000  # type: ignore[union-attr]


def test_a_small_config_is_covered_whole(sample: dict[str, Any]) -> None:
    corpus = build_corpus(sample)
    chosen = sample_corpus(corpus, 5000)
    assert chosen.requests == corpus.requests
    cov = chosen.coverage
    assert cov is not None and not cov.sampled
    assert (cov.routes_probed, cov.routes_total, cov.classes_covered) == (7, 7, cov.classes_total)
    assert cov.summary() == f"all 13 requests (budget 5000): 7 of 7 routes, {cov.classes_total} of " \
                            f"{cov.classes_total} route classes"


def test_more_classes_than_the_budget_keeps_one_request_per_class_and_says_so(sample: dict[str, Any]) -> None:
    corpus = build_corpus(sample)
    n_classes = len(corpus.classes())
    assert n_classes > 2
    chosen = sample_corpus(corpus, 2)
    cov = chosen.coverage
    assert cov is not None and len(chosen.requests) == n_classes == cov.classes_covered
    assert cov.over_budget == n_classes - 2
    assert f"{n_classes - 2} over the budget to keep one request per class" in cov.summary()
    with pytest.raises(ValueError, match="at least 1 request"):
        sample_corpus(corpus, 0)


@pytest.mark.parametrize(
    ("total", "weights", "caps", "floors", "expected"),
    [
        (10, [1, 1], [100, 100], [0, 0], [5, 5]),
        (10, [3, 1], [100, 100], [0, 0], [8, 2]),          # 7.5 / 2.5: the tie goes to the first
        (10, [9, 1], [100, 100], [0, 3], [7, 3]),          # a floor lifts a small stratum
        (10, [1, 1], [2, 100], [0, 0], [2, 8]),            # a cap passes the rest on
        (3, [1, 1, 1, 1], [5, 5, 5, 5], [1, 1, 1, 1], [1, 1, 1, 1]),  # floors win over the total
        (50, [1, 1], [3, 4], [0, 0], [3, 4]),              # caps below the total
    ],
)
def test_apportion(total: int, weights: list[int], caps: list[int], floors: list[int], expected: list[int]) -> None:
    assert apportion(total, weights, caps, floors) == expected


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(1, 50)), min_size=1, max_size=40), st.integers(1, 5000),
       st.booleans())
def test_apportion_gives_exactly_the_total_within_floors_and_caps(
        strata: list[tuple[int, int]], total: int, with_floors: bool) -> None:
    weights = [w for w, _ in strata]
    caps = [w + extra for w, extra in strata]
    floors = [min(3, c) if with_floors else 1 for c in caps]
    out = apportion(total, weights, caps, floors)
    assert all(f <= n <= c for n, f, c in zip(out, floors, caps, strict=True))
    assert sum(out) == max(sum(floors), min(total, sum(caps)))
