"""A configuration diff as ``deck gateway diff`` prints one: per entity, per field, then a summary.

decK prints ``creating service orders``, ``updating route health-check`` with the changed fields,
``deleting consumer bob``, and ends with ``Summary:`` and the Created / Updated / Deleted counts
(Kong/deck: cmd/gateway_diff.go, diff/diff.go). Here the same shape is made from a
:class:`harness.config_diff.ConfigDiff`: ``added`` entities are created, ``removed`` ones deleted, and
``changed`` paths are grouped by the entity they belong to, ``field: old -> new`` each. Values are
shown redacted (``harness.config_redact.redact``) and cut at 80 characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config_diff import Change, ConfigDiff

_ENTITY = re.compile(r"^(?P<kind>[a-z_]+)\[(?P<key>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\](?P<rest>.*)$")
_SINGULAR = {"services": "service", "routes": "route", "consumers": "consumer", "plugins": "plugin",
             "upstreams": "upstream", "targets": "target", "certificates": "certificate", "snis": "sni",
             "ca_certificates": "ca_certificate", "vaults": "vault", "keys": "key", "key_sets": "key_set",
             "consumer_groups": "consumer_group"}


def entity_words(kind: str, key: str) -> str:
    """``routes['orders']`` -> ``route orders``; a plugin ``key-auth@route:orders`` -> ``plugin key-auth on
    route orders``."""
    singular = _SINGULAR.get(kind, kind.rstrip("s"))
    if singular == "plugin" and "@" in key:
        name, scope = key.split("@", 1)
        return f"plugin {name} ({scope_words(scope)})"
    return f"{singular} {key}"


def scope_words(scope: str) -> str:
    """``route:orders+consumer:alice`` -> ``on route orders, consumer alice``; ``global`` -> ``global``."""
    if scope in ("", "global"):
        return "global"
    parts = []
    for part in scope.split("+"):
        kind, _, name = part.partition(":")
        parts.append(f"{kind} {name}" if name else part)
    return "on " + ", ".join(parts)


def split_path(path: str) -> tuple[str, str, str]:
    """``services['orders'].retries`` -> (``services``, ``orders``, ``retries``); unknown shapes whole."""
    match = _ENTITY.match(path)
    if match is None:
        return "", path, ""
    key = match.group("key")
    try:
        key = str(json.loads('"' + key[1:-1].replace('"', '\\"') + '"'))
    except ValueError:
        key = key[1:-1]
    return match.group("kind"), key, match.group("rest").lstrip(".")


def _show(value: object) -> str:
    from harness.config_diff import ABSENT as _ABSENT
    from harness.config_redact import redact

    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(redact(value), sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _group(changes: Iterable[Change]) -> dict[tuple[str, str], list[Change]]:
    out: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        kind, key, _ = split_path(change.path)
        out.setdefault((kind, key), []).append(change)
    return out


def deck_lines(result: ConfigDiff, *, limit: int = 40) -> tuple[str, ...]:
    """The diff as decK prints it, at most ``limit`` entities, then the ``Summary:`` line (always)."""
    lines: list[str] = []
    created = _group(result.added)
    deleted = _group(result.removed)
    updated = _group(result.changed)
    shown = 0
    for verb, groups in (("creating", created), ("updating", updated), ("deleting", deleted)):
        for (kind, key), changes in sorted(groups.items()):
            shown += 1
            if shown > limit:
                continue
            lines.append(f"{verb} {entity_words(kind, key)}")
            if verb == "updating":
                for change in changes:
                    field = split_path(change.path)[2] or "(whole entity)"
                    lines.append(f"  {field}: {_show(change.before)} -> {_show(change.after)}")
    if shown > limit:
        lines.append(f"... and {shown - limit} more entities (the full diff is in evidence/)")
    for change in result.allowed[:10]:
        kind, key, field = split_path(change.path)
        lines.append(f"allowed by the plan: {entity_words(kind, key)} {field} ({change.reason})".replace("  ", " "))
    lines.append(f"Summary: Created {len(created)} Updated {len(updated)} Deleted {len(deleted)}")
    return tuple(lines)
