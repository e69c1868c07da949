"""Listing a Kong collection across its pages, bounded (the listing methods of harness.admin's clients).

Kong's Admin API answers a collection a page at a time (``data`` and a ``next`` path carrying the offset).
A listing has one total deadline (:data:`LIST_SECONDS` unless told otherwise) over all its pages, each page's
call also within its own budget (harness.transport), and is stopped, with how far it got, when a node
repeats a page or an entity, answers page after page without an entity, points its ``next`` off the node
(which would carry the admin token elsewhere), or passes the page cap. It reports its progress to a callback
and, every few seconds, to the log.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from urllib.parse import quote

import httpx

from harness.api_errors import preview
from harness.deadline import Deadline
from harness.errors import BadResponse, NodeTooSlow
from harness.transport import Http

log = logging.getLogger(__name__)

#: entity name (as the harness says it) -> Admin API collection path
ENTITY_PATHS: Mapping[str, str] = {
    "services": "/services",
    "routes": "/routes",
    "consumers": "/consumers",
    "plugins": "/plugins",
    "key-auths": "/key-auths",
    "keyauth_credentials": "/key-auths",
    "upstreams": "/upstreams",
    "targets": "/upstreams/{upstream}/targets",   # nested only: listed per upstream
    "certificates": "/certificates",
    "snis": "/snis",
    "ca_certificates": "/ca_certificates",
}

#: a listing of one collection (all its pages) may take this long in total unless told otherwise: the
#: emulator listed 10,000 services (100 pages) in 0.4-0.5 s; two minutes is room for 20,000 routes on a CP
#: whose database is slower and busy, and stops an endless listing in two minutes with a message
LIST_SECONDS = 120.0

#: pages in a row without one entity, each pointing to a next page, before a listing is called endless
#: (Kong fills every page but the last; a tag-filtered page may come back short, never ten times empty)
MAX_EMPTY_PAGES = 10

_LIST_HINT = ("the node pages slowly or without end: check its load and its error log; a very large collection "
              "may need a longer listing deadline (list(..., deadline=...))")
_MAX_PAGES = 10_000
_PROGRESS_EVERY = 5.0        # seconds between progress lines in the log while listing

#: ``on_progress(pages, entities)``: called after every page of a listing with the totals so far
Progress = Callable[[int, int], None]


class CollectionReads:
    """The listing methods of the Admin clients (harness.admin), over the node's bounded :class:`Http`."""

    _http: Http

    def pages(self, path: str, *, size: int | None = None, deadline: Deadline | None = None,
              on_progress: Progress | None = None) -> Iterator[dict[str, object]]:
        """Every item of a collection, following ``next`` page by page.

        The whole listing has one total ``deadline`` (default :data:`LIST_SECONDS`; each page's call
        also within its own budget). A listing that repeats a page or an entity, comes back empty page
        after page, points off this node, or passes the page cap or its deadline is stopped with an error
        that says how far it got. ``on_progress(pages, entities)`` is called after every page, and a
        progress line is logged every few seconds.
        """
        http = self._http
        listing = deadline if deadline is not None else Deadline.start(
            LIST_SECONDS, what=f"listing {path}", where=f"{http.what} at {http.base_url}", clock=http._clock)
        if listing.hint is None:
            listing = replace(listing, hint=_LIST_HINT)
        params: dict[str, int] | None = {"size": size} if size else None
        next_path = path
        seen_next: set[str] = set()
        seen_ids: set[str] = set()
        pages = entities = empty = 0
        last_log = listing.clock()

        def stopped(reason: str) -> str:
            return (f"listing {http.url(path)} stopped after {pages:,} pages and {entities:,} entities "
                    f"({listing.elapsed():.1f}s): {reason}")

        while True:
            if pages >= _MAX_PAGES:
                raise BadResponse(stopped(f"more than {_MAX_PAGES:,} pages; the node's pagination looks "
                                          f"endless (last next: {next_path[:120]!r})"),
                                  hint="check the node's pagination; Kong's pages hold up to 1,000 entities")
            if listing.expired:
                raise listing.error(stopped(f"last next: {next_path[:120]!r}"), cls=NodeTooSlow)
            try:
                response = http.request("GET", next_path, params=params, within=listing)
            except NodeTooSlow as exc:
                if listing.expired:
                    raise listing.error(stopped(f"its deadline passed during GET {next_path[:120]}"),
                                        cls=NodeTooSlow) from None
                raise NodeTooSlow(f"{stopped(f'page {pages + 1} did not come in time')}; {exc.message}",
                                  hint=exc.hint, what=exc.what, where=exc.where, seconds=exc.seconds,
                                  elapsed=exc.elapsed) from None
            body = http.json(response)
            data = body.get("data")
            if not isinstance(data, list):
                raise BadResponse(f"GET {http.url(next_path)} is not a Kong collection (no 'data' list): "
                                  f"{preview(response)}")
            pages += 1
            for item in data:
                if not isinstance(item, dict):
                    raise BadResponse(stopped(f"an item of page {pages} is {type(item).__name__}, not an "
                                              "entity object"))
                item_id = item.get("id")
                if isinstance(item_id, str):
                    if item_id in seen_ids:
                        raise BadResponse(stopped(f"page {pages} repeats entity {item_id[:64]!r}: the node's "
                                                  "pagination loops"),
                                          hint="is the collection being written to during the listing?")
                    seen_ids.add(item_id)
            entities += len(data)
            empty = 0 if data else empty + 1
            if on_progress is not None:
                on_progress(pages, entities)
            now = listing.clock()
            if now - last_log >= _PROGRESS_EVERY:
                log.info("listing %s: %d pages, %d entities so far (%.0fs)", http.url(path), pages, entities,
                         listing.elapsed())
                last_log = now
            yield from data
            nxt = body.get("next")
            if nxt is None or nxt == "":
                return
            if not isinstance(nxt, str) or nxt in seen_next:
                raise BadResponse(stopped(f"GET {http.url(next_path)} gave a bad or repeated next page "
                                          f"{_short(nxt)}"))
            if empty >= MAX_EMPTY_PAGES:
                raise BadResponse(stopped(f"{empty} pages in a row without an entity, each with a next page: "
                                          "the node's pagination looks endless"))
            same = http.same_node(nxt)
            if same is not None:
                try:
                    httpx.URL(http.url(same))
                except (httpx.InvalidURL, ValueError):
                    raise BadResponse(stopped(f"the next page {_short(nxt)} is not a valid URL")) from None
            if same is None:
                raise BadResponse(stopped(f"the next page {nxt[:120]!r} is not on this node; the harness "
                                          "never follows a node elsewhere (it would carry the admin token)"),
                                  hint="point the plan at the node's own admin_listen address")
            seen_next.add(nxt)
            next_path, params = same, None        # Kong's next already carries offset (and size)

    def list(self, entity: str, *, size: int | None = None, deadline: Deadline | None = None,
             on_progress: Progress | None = None) -> list[dict[str, object]]:
        """All entities of one kind, across pages. ``targets`` are listed per upstream.

        ``deadline`` bounds the whole listing (default: :data:`LIST_SECONDS` per collection);
        ``on_progress(pages, entities)`` reports each page (totals for this call).
        """
        if entity not in ENTITY_PATHS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(sorted(ENTITY_PATHS))}")
        http = self._http
        total = deadline if deadline is not None else Deadline.start(
            LIST_SECONDS, what=f"listing {entity}", where=f"{http.what} at {http.base_url}", clock=http._clock,
            hint=_LIST_HINT)
        if entity == "targets":
            tally = _Tally(on_progress)
            upstreams = list(self.pages("/upstreams", size=size, deadline=total, on_progress=tally.page))
            out: list[dict[str, object]] = []
            for upstream in upstreams:
                upstream_id = upstream.get("id")
                if not isinstance(upstream_id, str) or not upstream_id:
                    raise BadResponse(f"GET {http.url('/upstreams')} listed an upstream without an id: "
                                      f"{_short(upstream)}", hint="is this URL a Kong Admin API?")
                tally.next_listing()
                out.extend(self.pages(f"/upstreams/{quote(upstream_id, safe='')}/targets", size=size,
                                      deadline=total, on_progress=tally.page))
            return out
        return list(self.pages(ENTITY_PATHS[entity], size=size, deadline=total, on_progress=on_progress))


class _Tally:
    """Progress over several listings as one: pages and entities summed across them."""

    def __init__(self, report: Progress | None) -> None:
        self._report = report
        self._base = (0, 0)
        self.pages = self.entities = 0

    def page(self, pages: int, entities: int) -> None:
        self.pages, self.entities = self._base[0] + pages, self._base[1] + entities
        if self._report is not None:
            self._report(self.pages, self.entities)

    def next_listing(self) -> None:
        self._base = (self.pages, self.entities)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120


def _short(value: object) -> str:
    """A short, bounded repr of any value from an answer (safe for deep nesting)."""
    return _REPR.repr(value)
