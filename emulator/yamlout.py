"""A fast block-YAML writer for `GET /config` (PyYAML's dumper takes 22 s for 55,000 entities).

It writes the layout PyYAML's SafeDumper gives with `default_flow_style=False, sort_keys=False` (indentless
sequences in mappings, `{}`/`[]` for empties, `~` for null) for the JSON-like values an export holds:
dicts with string keys, lists, str, int, float, bool, None. Strings are plain only when no YAML 1.1
resolver could read them as anything else; otherwise they are double-quoted with escapes for every
character a YAML reader would refuse or fold. Any other value, or a key too long to be a simple key,
falls back to PyYAML for the whole document. Held by a property test: `yaml.safe_load(dump(x)) == x`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*\Z")
# YAML 1.1 words PyYAML resolves to bool or null (yaml/resolver.py)
_RESERVED = frozenset((
    "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL"))
# characters PyYAML's reader refuses, and line breaks a double-quoted scalar would fold
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_MAX_KEY = 1000  # PyYAML's scanner allows simple keys up to 1024 characters


class _Fallback(Exception):
    pass


def _quoted(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    if _UNSAFE.search(out):
        out = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out


def scalar(value: Any, cache: dict[str, str]) -> str:
    if value is None:
        return "~"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        found = cache.get(value)
        if found is None:
            found = value if _PLAIN.match(value) and value not in _RESERVED else _quoted(value)
            if len(cache) < 100_000:
                cache[value] = found
        return found
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:  # PyYAML's float resolver needs a dot: 1e+20 -> 1.0e+20
            text = text.replace("e", ".0e", 1)
        return text
    raise _Fallback


def _emit(value: Any, indent: str, out: list[str], cache: dict[str, str]) -> None:
    """Append the lines for a block collection `value` whose first line starts after `indent`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Fallback
            name = scalar(key, cache)
            if len(name) > _MAX_KEY:
                raise _Fallback
            if isinstance(item, dict) and item:
                out.append(f"{indent}{name}:\n")
                _emit(item, indent + "  ", out, cache)
            elif isinstance(item, list) and item:
                out.append(f"{indent}{name}:\n")
                _emit(item, indent, out, cache)  # PyYAML does not indent a sequence under a key
            else:
                out.append(f"{indent}{name}: {_leaf(item, cache)}\n")
        return
    for item in value:
        if isinstance(item, dict | list) and item:
            first = len(out)
            _emit(item, indent + "  ", out, cache)
            out[first] = f"{indent}- " + out[first][len(indent) + 2:]
        else:
            out.append(f"{indent}- {_leaf(item, cache)}\n")


def _leaf(value: Any, cache: dict[str, str]) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value, cache)


class _PyYamlDumper(yaml.SafeDumper):
    pass


_PyYamlDumper.add_representer(
    type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "~"))


def dump(document: dict[str, Any]) -> str:
    """Block YAML for a JSON-like mapping."""
    out: list[str] = []
    try:
        _emit(document, "", out, {})
    except _Fallback:
        return yaml.dump(document, Dumper=_PyYamlDumper, sort_keys=False, default_flow_style=False)
    return "".join(out) if out else "{}\n"
