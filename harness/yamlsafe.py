"""One safe YAML reader for plans, the config files they name, and the answers of nodes.

:func:`load_yaml` gives what ``yaml.safe_load`` gives for ordinary documents, and refuses with
:class:`YamlRefused` (what, where as line and column, the limit; never a line's content) instead
of hanging, exhausting memory or overflowing the stack:

- text over ``max_bytes``, and bytes that are not UTF-8;
- nesting deeper than ``max_depth`` (checked per event, so no recursion and no ``RecursionError``);
- an alias bomb: more than ``max_aliases`` alias uses, or aliases whose expansion would add more than
  ``max_alias_nodes`` nodes (a "billion laughs" document of a few hundred bytes expands to 10**9);
- recursive aliases (an alias inside the collection its anchor names);
- duplicate mapping keys (``yaml.safe_load`` keeps the last one silently), naming the key and both lines;
- more than one document, tags outside YAML's core schema, and anything PyYAML cannot parse.

How: libyaml's event parser (``CParser``; the pure-Python parser when libyaml is missing) feeds a
small iterative builder that keeps one frame per open collection. Scalars are resolved with
PyYAML's own implicit resolvers and constructors (the ``SafeLoader`` rules: ints, floats, booleans,
null, timestamps, ``<<`` merge keys), cached per distinct plain value, so a 55,000-entity Kong config
parses faster than ``yaml.load(..., Loader=CSafeLoader)`` (see the report in ``benchmarks/``).
"""

from __future__ import annotations

from typing import Any, cast

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: plans are small, reviewed files
PLAN_MAX_BYTES = 1_000_000
#: a node's ``GET /config`` of 55,000 entities is about 20 MB of block YAML; room for three times that
NODE_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ALIASES = 10_000
DEFAULT_MAX_ALIAS_NODES = 1_000_000

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_NON_SPECIFIC = (None, "!")


class YamlRefused(ValueError):
    """YAML text that :func:`load_yaml` will not load: what was wrong, where, and the limit.

    ``line`` and ``column`` are 1-based (None when the problem has no single place); the message
    never quotes the text itself, so a secret on the offending line cannot leak into a report.
    """

    def __init__(self, source: str, what: str, *, line: int | None = None, column: int | None = None,
                 limit: str | None = None, detail: str | None = None) -> None:
        self.source = source
        self.what = what
        self.line = line
        self.column = column
        self.limit = limit
        where = f" at line {line}, column {column}" if line is not None and column is not None else ""
        more = f"; {detail}" if detail else ""
        bound = f" (limit: {limit})" if limit else ""
        super().__init__(f"{source}: {what}{where}{more}{bound}")


class _Frame:
    """One open collection: what is built so far, its size in nodes once expanded, its anchor."""

    __slots__ = ("anchor", "have_key", "is_map", "key", "key_is_merge", "key_lines", "key_mark", "merged", "nodes",
                 "value")

    def __init__(self, value: Any, anchor: str | None, *, is_map: bool) -> None:
        self.value = value
        self.anchor = anchor
        self.is_map = is_map
        self.nodes = 1
        self.key: Any = None
        self.have_key = False
        self.key_is_merge = False
        self.key_mark: Any = None
        self.key_lines: dict[Any, int] = {}
        self.merged: list[dict[Any, Any]] = []


def load_yaml(
    data: str | bytes,
    *,
    source: str,
    max_bytes: int,
    max_aliases: int = DEFAULT_MAX_ALIASES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES,
) -> object:
    """Parse one YAML document safely; ``source`` names it in messages (a path, or ``GET /config``)."""
    text = _text(data, source=source, max_bytes=max_bytes)
    return _Builder(text, source, max_aliases=max_aliases, max_depth=max_depth,
                    max_alias_nodes=max_alias_nodes).build()


def _text(data: str | bytes, *, source: str, max_bytes: int) -> str:
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            line, column = _position(data[: exc.start])
            raise YamlRefused(source, "text holds a character that is not valid UTF-8 (a lone surrogate)",
                              line=line, column=column) from None
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        raise TypeError(f"load_yaml takes str or bytes, not {type(data).__name__}")
    if len(raw) > max_bytes:
        raise YamlRefused(source, f"{len(raw):,} bytes is too large", limit=f"{max_bytes:,} bytes")
    if isinstance(data, str):
        return data
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw[: exc.start].decode("utf-8", errors="replace"))
        raise YamlRefused(source, f"byte 0x{raw[exc.start]:02x} is not UTF-8 (is this a binary file?)",
                          line=line, column=column) from None


def _position(before: str) -> tuple[int, int]:
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


class _Builder:
    def __init__(self, text: str, source: str, *, max_aliases: int, max_depth: int, max_alias_nodes: int) -> None:
        self.text = text
        self.source = source
        self.max_aliases = max_aliases
        self.max_depth = max_depth
        self.max_alias_nodes = max_alias_nodes
        self.loader = _Loader(text)
        self.anchors: dict[str, tuple[Any, int]] = {}   # anchor -> (value, expanded node count)
        self.open_anchors: set[str] = set()
        self.aliases = 0
        self.alias_nodes = 0
        self.scalars: dict[tuple[str, str | None, bool], Any] = {}   # (value, tag, plain) -> value

    def refuse(self, what: str, mark: Any = None, limit: str | None = None, detail: str | None = None) -> YamlRefused:
        if mark is None:
            return YamlRefused(self.source, what, limit=limit, detail=detail)
        return YamlRefused(self.source, what, line=mark.line + 1, column=mark.column + 1, limit=limit,
                           detail=detail)

    def build(self) -> object:
        try:
            return self._build()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "not valid YAML"
            raise self.refuse("not valid YAML", mark, detail=problem) from None
        except yaml.reader.ReaderError as exc:
            line, column = _position(self.text.encode("utf-8")[: exc.position].decode("utf-8", errors="replace"))
            raise YamlRefused(self.source, "not valid YAML", line=line, column=column,
                              detail=f"character #x{exc.character:04x} is not allowed") from None
        except yaml.YAMLError as exc:   # libyaml's own errors carry no mark
            raise self.refuse("not valid YAML", detail=str(exc).splitlines()[0][:120]) from None
        finally:
            self.loader.dispose()

    def _build(self) -> object:
        get_event = self.loader.get_event
        stack: list[_Frame] = []
        documents = 0
        result: Any = None
        while True:
            event: Any = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                if event.anchor is not None:
                    self.open_anchors.discard(event.anchor)
                value = self._scalar(event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                self._add(stack, value, 1, event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                is_map = kind is MappingStartEvent
                if event.tag not in _NON_SPECIFIC and event.tag != (_MAP if is_map else _SEQ):
                    raise self.refuse(f"tag {event.tag!r} is not supported (plain mappings and lists only)",
                                      event.start_mark)
                if len(stack) >= self.max_depth:
                    raise self.refuse(f"nesting deeper than {self.max_depth} levels", event.start_mark,
                                      limit=f"{self.max_depth} levels")
                if event.anchor is not None:
                    self.open_anchors.add(event.anchor)
                    self.anchors.pop(event.anchor, None)
                stack.append(_Frame({} if is_map else [], event.anchor, is_map=is_map))
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                value = self._close(frame)
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = (value, frame.nodes)
                self._add(stack, value, frame.nodes, event)
            elif kind is AliasEvent:
                self._alias(stack, event)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise self.refuse("more than one YAML document (a second '---')", event.start_mark)
                self.anchors.clear()
            elif kind is DocumentEndEvent:
                result = self.document
            elif kind is StreamEndEvent:
                return result
            elif kind is not StreamStartEvent:  # pragma: no cover - PyYAML has no other events
                raise self.refuse(f"unexpected YAML event {kind.__name__}", event.start_mark)

    document: Any = None

    def _scalar(self, event: Any) -> Any:
        value: str = event.value
        tag = event.tag
        plain = event.implicit[0]
        if tag in _NON_SPECIFIC:
            if not plain or tag == "!":
                return value
            key: tuple[str, str | None, bool] = (value, None, True)
        else:
            key = (value, tag, plain)
        cached = self.scalars.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        loader = self.loader
        if tag in _NON_SPECIFIC:
            # types-PyYAML leaves Resolver.resolve unannotated (it returns the tag, a str)
            tag = loader.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        if tag == _STR:
            out: Any = value
        elif tag == _MERGE:
            out = _MERGE_KEY
        else:
            constructor = loader.yaml_constructors.get(tag)
            if constructor is None or tag in _COLLECTION_TAGS:
                raise self.refuse(f"tag {tag!r} is not supported", event.start_mark)
            node = ScalarNode(tag, value, cast(Any, event.start_mark), cast(Any, event.end_mark), event.style)
            try:
                out = constructor(loader, node)
            except Exception:  # PyYAML's constructors fail with many types (AttributeError for a bad !!timestamp)
                raise self.refuse(f"a value does not fit its type {tag.rsplit(':', 1)[-1]!r} (e.g. a date that "
                                  "does not exist)", event.start_mark) from None
        self.scalars[key] = out
        return out

    def _alias(self, stack: list[_Frame], event: Any) -> None:
        name = event.anchor
        if name in self.open_anchors:
            raise self.refuse(f"alias *{name} refers to a collection that contains it (recursive alias)",
                              event.start_mark)
        if name not in self.anchors:
            raise self.refuse(f"alias *{name} has no anchor &{name} before it", event.start_mark)
        value, nodes = self.anchors[name]
        self.aliases += 1
        if self.aliases > self.max_aliases:
            raise self.refuse(f"more than {self.max_aliases:,} alias uses", event.start_mark,
                              limit=f"{self.max_aliases:,} aliases")
        self.alias_nodes += nodes
        if self.alias_nodes > self.max_alias_nodes:
            raise self.refuse(f"aliases expand to more than {self.max_alias_nodes:,} nodes (an alias bomb?)",
                              event.start_mark, limit=f"{self.max_alias_nodes:,} nodes from aliases")
        self._add(stack, value, nodes, event)

    def _add(self, stack: list[_Frame], value: Any, nodes: int, event: Any) -> None:
        if not stack:
            self.document = value
            return
        frame = stack[-1]
        frame.nodes += nodes
        if not frame.is_map:
            frame.value.append(value)
            return
        if not frame.have_key:
            if value is _MERGE_KEY:
                frame.key_is_merge = True
            else:
                try:
                    hash(value)
                except TypeError:
                    raise self.refuse("a mapping key is a list or mapping; keys must be plain values",
                                      event.start_mark) from None
            frame.key, frame.have_key, frame.key_mark = value, True, event.start_mark
            return
        frame.have_key = False
        if frame.key_is_merge:
            frame.key_is_merge = False
            self._merge(frame, value, event)
            return
        key = frame.key
        mark = frame.key_mark
        first = frame.key_lines.get(key)
        if first is not None:
            shown = repr(key)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise self.refuse(f"duplicate key {shown}", mark,
                              detail=f"the same key is at line {first}; each key may appear once in a mapping")
        frame.key_lines[key] = mark.line + 1
        frame.value[key] = value

    def _merge(self, frame: _Frame, value: Any, event: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                raise self.refuse("a merge key '<<' needs a mapping or a list of mappings", event.start_mark)
        frame.merged.extend(sources)

    def _close(self, frame: _Frame) -> Any:
        if not frame.is_map or not frame.merged:
            return frame.value
        # merge keys as SafeLoader: explicit keys win, then the earlier of the merged mappings
        out: dict[Any, Any] = {}
        for source in reversed(frame.merged):
            out.update(source)
        out.update(frame.value)
        return out


class _Missing:
    pass


_MISSING = _Missing()
_MERGE_KEY = _Missing()
_COLLECTION_TAGS = frozenset({_MAP, _SEQ, "tag:yaml.org,2002:set", "tag:yaml.org,2002:omap",
                              "tag:yaml.org,2002:pairs"})

__all__ = ["DEFAULT_MAX_ALIASES", "DEFAULT_MAX_ALIAS_NODES", "DEFAULT_MAX_DEPTH", "NODE_MAX_BYTES",
           "PLAN_MAX_BYTES", "YamlRefused", "load_yaml"]
