"""A node's configuration in and out: templates rendered for loading, configs captured from nodes.

:func:`render_declarative` fills the ``${UPSTREAM_URL}`` of a declarative template before it is loaded
onto a node; :func:`capture_declarative` reads a node's whole config as a flat declarative dict
(DB-less: ``GET /config``; CP or database mode: every kind of :data:`CAPTURE_KINDS` listed page by page),
and :func:`capture` the same in normal form (:func:`harness.config.normalise`). This is the only part of
the config modules that talks to nodes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from harness.config import NormalConfig, normalise
from harness.config_rules import FOREIGN_KEYS
from harness.deadline import Deadline
from harness.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_declarative(template_text: str, upstream_url: str | None) -> str:
    """Substitute ``${UPSTREAM_URL}`` in a declarative config template.

    Raises :class:`ConfigError` for any other placeholder, or when the template needs an upstream and
    none (or not an http(s) URL) was given.
    """
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template_text)} - {"UPSTREAM_URL"})
    if unknown:
        raise ConfigError(
            f"config template uses unknown placeholder(s) {', '.join('${' + u + '}' for u in unknown)}; "
            "only ${UPSTREAM_URL} is filled in",
            hint="replace them with literal values in the config file",
        )
    if "${UPSTREAM_URL}" in template_text:
        if not upstream_url or not re.match(r"^https?://[^/\s]+", upstream_url):
            raise ConfigError(
                f"config template needs ${{UPSTREAM_URL}} but the upstream URL is {upstream_url!r}; "
                "expected http://host:port",
                hint="set config.upstream: echo in the plan so the harness runs the echo upstream",
            )
        template_text = template_text.replace("${UPSTREAM_URL}", upstream_url.rstrip("/"))
    return template_text


class _Reader(Protocol):
    def root(self) -> Any: ...
    def config(self, *, deadline: Deadline | None = None) -> dict[str, Any]: ...
    def list(self, entity: str, *, deadline: Deadline | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]: ...


#: declarative kind -> Admin API entity name for listing
CAPTURE_KINDS: Mapping[str, str] = {
    "services": "services", "routes": "routes", "consumers": "consumers", "plugins": "plugins",
    "keyauth_credentials": "key-auths", "upstreams": "upstreams", "targets": "targets",
    "certificates": "certificates", "snis": "snis", "ca_certificates": "ca_certificates",
}

#: ``on_progress(kind, pages, entities)`` while a capture lists entities (totals for that kind so far)
CaptureProgress = Callable[[str, int, int], None]


def capture_declarative(client: _Reader, *, deadline: Deadline | None = None,
                        on_progress: CaptureProgress | None = None, info: Any = None) -> dict[str, Any]:
    """The node's whole config as a flat declarative dict (with ids, so it can be loaded elsewhere).

    DB-less nodes: ``GET /config`` (its YAML read with aliases and size limited). CP / database mode:
    every entity kind listed page by page, foreign keys written as id strings, ``_format_version`` "3.0"
    (2.x: "2.1"). ``deadline`` bounds the whole capture (each call also has its own size-scaled one);
    ``on_progress(kind, pages, entities)`` reports each page of a listing; ``info`` is the node's
    ``root()`` when the caller has it already.
    """
    info = client.root() if info is None else info
    if getattr(info, "database", None) == "off":
        return client.config(deadline=deadline)
    major = int(str(getattr(info, "version", "3")).split(".")[0] or 3)
    out: dict[str, Any] = {"_format_version": "3.0" if major >= 3 else "2.1", "_transform": False}
    for kind, entity in CAPTURE_KINDS.items():
        report = None if on_progress is None else functools.partial(on_progress, kind)
        items = []
        for item in client.list(entity, deadline=deadline, on_progress=report):
            item = dict(item)
            for f in FOREIGN_KEYS:
                if isinstance(item.get(f), Mapping) and "id" in item[f]:
                    item[f] = item[f]["id"]
            items.append(item)
        if items:
            out[kind] = items
    return out


def capture(client: _Reader, *, deadline: Deadline | None = None,
            on_progress: CaptureProgress | None = None) -> NormalConfig:
    """Capture a node's config in normal form (DB-less: ``GET /config``; otherwise entity listing)."""
    info = client.root()
    raw = capture_declarative(client, deadline=deadline, on_progress=on_progress, info=info)
    source = "GET /config" if getattr(info, "database", None) == "off" else "entity listing"
    return normalise(raw, source=source)
