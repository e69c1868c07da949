"""The corpus at real sizes: at most a budget of requests, every route class kept, the same every time.

20,000 routes give about 25,000 requests, too many to send to every node at each stage. :func:`sample_corpus`
chooses all of them when they fit the budget; beyond it a stratified sample over route classes
(:class:`harness.corpus.RouteClass`) that keeps at least one request of every class, fills the rest in
proportion to each class's routes (spread over the upstreams they reach), and is the same for the same
corpus, budget and seed, so a resumed run sends the same requests. The differential (staging), the scale
smoke and the probe's mix all sample this way.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from harness.corpus import SEED, Corpus, Coverage, RouteClass


def _rank(seed: int, route: str) -> bytes:
    """A route's place in its class's shuffled order: a hash of the seed and the route, the same in every
    process (Python's own ``hash`` of a string changes between processes)."""
    return hashlib.blake2b(f"{seed}\0{route}".encode(), digest_size=8).digest()


def apportion(total: int, weights: Sequence[int], caps: Sequence[int], floors: Sequence[int]) -> list[int]:
    """Split ``total`` over strata in proportion to ``weights``, each between its floor and its cap.

    The real-valued shares ``clamp(l * weight, floor, cap)`` are found for the ``l`` at which they sum to
    ``total``, then rounded by largest remainder (ties to the earlier stratum). When the floors alone
    exceed ``total`` the floors are returned (coverage wins over the budget); when the caps do not reach
    it, the caps.
    """
    floors = [min(f, c) for f, c in zip(floors, caps, strict=True)]
    if sum(floors) >= total:
        return floors
    if sum(caps) <= total:
        return list(caps)

    def shares(scale: float) -> list[float]:
        return [min(c, max(f, scale * w)) for w, c, f in zip(weights, caps, floors, strict=True)]

    low, high = 0.0, float(max(c / w for w, c in zip(weights, caps, strict=True) if w > 0) if any(weights) else 1)
    for _ in range(100):
        mid = (low + high) / 2
        if sum(shares(mid)) < total:
            low = mid
        else:
            high = mid
    real = shares(high)
    out = [min(c, max(f, math.floor(x + 1e-9))) for x, c, f in zip(real, caps, floors, strict=True)]
    order = sorted(range(len(out)), key=lambda i: (-(real[i] - out[i]), i))
    given = sum(out)
    while given < total:
        before = given
        for i in order:
            if given >= total:
                break
            if out[i] < caps[i]:
                out[i] += 1
                given += 1
        if given == before:
            break
    return out


def _spread(routes: Mapping[str, list[tuple[int, str]]], upstream_of: Callable[[str], str], seed: int
            ) -> list[list[tuple[int, str]]]:
    """A class's routes in the order the sample takes them: round robin over the upstreams they reach (in a
    seeded order), each upstream's routes in a seeded order; so a sample of a class reaches as many
    upstreams as it can before any upstream twice."""
    groups: dict[str, list[str]] = defaultdict(list)
    for route in routes:
        groups[upstream_of(route)].append(route)
    keyed = []
    for upstream, members in groups.items():
        members.sort(key=lambda route: (_rank(seed, route), route))
        keyed += [((turn, _rank(seed, upstream), upstream), route) for turn, route in enumerate(members)]
    return [routes[route] for _, route in sorted(keyed)]


def _pick(routes: Sequence[Sequence[tuple[int, str]]], count: int) -> list[int]:
    """``count`` request indices from a class's routes (in shuffled order, each with its requests as
    ``(index, variant)``): every route once before any route twice, and at each pick the variant (no key,
    a wrong key, a good key) sent least so far in the class, so variants spread evenly over the routes and
    ``count`` at least the number of variants sends each of them."""
    chosen: list[int] = []
    sent: Counter[str] = Counter()
    left = [list(reqs) for reqs in routes]
    while len(chosen) < count and any(left):
        for i, reqs in enumerate(left):
            if len(chosen) >= count:
                break
            if not reqs:
                continue
            j = min(range(len(reqs)), key=lambda k: (sent[reqs[k][1]], (k - i) % len(reqs)))
            index, variant = reqs.pop(j)
            sent[variant] += 1
            chosen.append(index)
    return chosen


def sample_corpus(corpus: Corpus, budget: int, *, seed: int = SEED) -> Corpus:
    """At most ``budget`` of the corpus's requests (all when they fit), with the :class:`Coverage` they give.

    Beyond the budget, a stratified sample by :class:`RouteClass`: every class keeps one request (each of
    its variants when the budget allows: no key, a wrong key, a good key); the rest of the budget goes to
    the classes in proportion to their routes, and within a class to routes in a seeded order that visits
    every upstream before any twice, every route once before any route twice. So a budget of at least the
    routes (counting a class with fewer routes than variants as its variants) probes every route. The same
    corpus, budget and seed give the same requests, in corpus order. Should the classes outnumber the
    budget, one request per class is still chosen, and the coverage says how far over the budget that is.
    """
    if budget < 1:
        raise ValueError(f"a corpus budget needs at least 1 request, got {budget}")
    requests = corpus.requests
    by_class: dict[RouteClass | None, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    by_class_first: dict[str, int] = {}
    for i, req in enumerate(requests):
        by_class[req.route_class][req.route].append((i, req.auth))
        by_class_first.setdefault(req.route, i)
    classes = sorted(by_class, key=lambda c: (c is not None, c or RouteClass("")))
    if len(requests) <= budget:
        chosen = list(range(len(requests)))
    else:
        ordered = [_spread(by_class[c], lambda route: requests[by_class_first[route]].upstream, seed)
                   for c in classes]
        variants = [max(len(r) for r in routes) for routes in ordered]
        floors = variants if sum(variants) <= budget else [1] * len(classes)
        counts = apportion(budget, [len(routes) for routes in ordered],
                           [sum(len(r) for r in routes) for routes in ordered], floors)
        chosen = sorted(i for routes, n in zip(ordered, counts, strict=True) for i in _pick(routes, n))
    picked = tuple(requests[i] for i in chosen)
    coverage = Coverage(
        routes_total=max(corpus.routes_total, len({r.route for r in requests})),
        routes_probed=len({r.route for r in picked}),
        classes_total=len(classes),
        classes_covered=len({r.route_class for r in picked}),
        requests_total=len(requests),
        requests=len(picked),
        budget=budget,
        seed=seed,
    )
    return replace(corpus, requests=picked, coverage=coverage)
