"""harness.yamlsafe: ordinary YAML loads as yaml.safe_load loads it; hostile YAML is refused with what, where
and the limit, never with the text of the line, and never with a RecursionError or a hang."""

from __future__ import annotations

import datetime

import pytest
import yaml

from harness.yamlsafe import NODE_MAX_BYTES, YamlRefused, load_yaml

SECRET = "kpat_canary_5e3b1d"

ORDINARY = [
    "a: 1\nb: [1, 2.5, true, null, ~, '3', 0x1f, .inf, -7, 1e3, yes, off]\n",
    "when: 2024-01-01\nat: 2024-01-01T10:00:00Z\n",
    "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n",
    "<<: [{a: 1}, {a: 2, b: 3}]\nc: 1\n",
    "- &a [1, {k: v}]\n- *a\n- *a\n",
    "",
    "--- \n...\n",
    "!!str 12",
    "a: !!binary aGVsbG8=\n",
    "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
    '{"json": [1, 2, {"nested": null}], "ok": true}',
    "\ufeffa: 1\n",
    "? complex key\n: value\n",
    "1: int key\n2.5: float key\nnull: null key\n",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_yaml_loads_as_safe_load_does(text: str) -> None:
    assert load_yaml(text, source="t", max_bytes=10_000) == yaml.safe_load(text)


def test_bytes_and_str_give_the_same_value() -> None:
    text = "name: café\nlist: [1, 2]\n"
    assert load_yaml(text.encode(), source="t", max_bytes=100) == load_yaml(text, source="t", max_bytes=100)


def test_a_kong_config_loads_as_the_c_loader_loads_it() -> None:
    config = {"_format_version": "3.0", "services": [
        {"id": f"0000000{i}-aaaa-4bbb-8ccc-000000000000", "name": f"svc-{i}", "port": 8000 + i, "path": None,
         "tags": ["a", f"t{i}"], "enabled": True, "created_at": 1700000000, "retries": 5.0}
        for i in range(300)]}
    text = yaml.dump(config, Dumper=yaml.CSafeDumper, sort_keys=False)
    loaded = load_yaml(text, source="GET /config", max_bytes=NODE_MAX_BYTES)
    assert loaded == yaml.load(text, Loader=yaml.CSafeLoader) == config


def refused(text: str | bytes, **limits: int) -> YamlRefused:
    with pytest.raises(YamlRefused) as info:
        load_yaml(text, source="plan.yaml", max_bytes=limits.pop("max_bytes", 1_000_000), **limits)
    assert str(info.value).startswith("plan.yaml: ")
    return info.value


def test_duplicate_keys_name_the_key_and_both_lines() -> None:
    top = refused("mode: dbless\nname: a\nmode: hybrid\n")
    assert "duplicate key 'mode'" in str(top) and (top.line, top.column) == (3, 1)
    assert "line 1" in str(top)
    nested = refused("x:\n  count: 1\n  version: '3.4.2'\n  count: 2\n")
    assert "duplicate key 'count'" in str(nested) and nested.line == 4 and "line 2" in str(nested)


def test_a_billion_laughs_is_refused_by_its_expansion() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    error = refused("\n".join(lines) + "\n")
    assert "aliases expand to more than" in str(error) and error.limit is not None


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    assert load_yaml(text, source="t", max_bytes=1000, max_aliases=20)["b"] == [1] * 20  # type: ignore[index]
    assert "more than 10 alias uses" in str(refused(text, max_aliases=10))


def test_recursive_and_undefined_aliases_are_refused() -> None:
    assert "recursive alias" in str(refused("&a [1, *a]"))
    assert "no anchor &nope" in str(refused("x: *nope\n"))


@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 2000)),
                                  "- " * 50_000 + "x"])
def test_deep_nesting_is_refused_without_recursion(text: str) -> None:
    error = refused(text, max_bytes=10_000_000, max_depth=64)
    assert "nesting" in str(error)


def test_size_limit_counts_utf8_bytes() -> None:
    assert "too large" in str(refused("a: " + "é" * 600, max_bytes=1000))
    assert load_yaml("a: " + "é" * 400, source="t", max_bytes=1000) == {"a": "é" * 400}


def test_non_utf8_and_binary_are_refused_with_their_position() -> None:
    error = refused(b"name: ok\nbad: \xff\xfe\n")
    assert "0xff is not UTF-8" in str(error) and (error.line, error.column) == (2, 6)
    assert "not allowed" in str(refused(b"a: \x00\x01\x02"))
    assert "lone surrogate" in str(refused("a: \udc80"))


def test_unsupported_tags_and_bad_values_are_refused() -> None:
    assert "tag '!custom' is not supported" in str(refused("a: !custom x\n"))
    assert "is not supported" in str(refused("a: !!set {a, b}\n"))
    assert "does not fit its type 'timestamp'" in str(refused("a: 2024-13-45\n"))
    assert "does not fit its type 'int'" in str(refused("a: !!int abc\n"))


def test_more_than_one_document_is_refused() -> None:
    assert "more than one YAML document" in str(refused("--- 1\n--- 2\n"))


def test_messages_never_quote_the_line() -> None:
    for text in (f"token: {SECRET}\ntoken: {SECRET}\n", f"a: '{SECRET}\nb", f"a: [{SECRET}\n",
                 f"a: {SECRET}: b: c\n", f"x: &a [{SECRET}, *a]\n"):
        error = refused(text)
        assert SECRET not in str(error), str(error)


def test_dates_and_numbers_are_constructed_as_safe_load_does() -> None:
    loaded = load_yaml("d: 2024-02-29\nf: 1.5\ni: 017\n", source="t", max_bytes=100)
    assert loaded == {"d": datetime.date(2024, 2, 29), "f": 1.5, "i": 15}
