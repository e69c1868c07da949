"""emulator.yamlout: what it writes reads back, with PyYAML, as exactly what was given."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import yamlout
from emulator.declarative import export, load
from emulator.schema import available_plugins
from emulator.versions import KongVersion
from tests.emulator.bigconfig import big_config

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _values, max_size=6))
def test_round_trip(document: dict[str, Any]) -> None:
    assert yaml.safe_load(yamlout.dump(document)) == (document or {})


def test_tricky_strings_stay_strings() -> None:
    words = ["yes", "No", "on", "OFF", "null", "~", "", "3.0", "0x1F", "1e3", "2001-12-14", ".inf", "-", "a: b",
             "#x", "@x", "line\nbreak", "tab\tx", "\x7f", "\x85", "\u2028", "é", "😀", "<<", "=", "'q'", '"d"']
    document = {"values": words, "keys": {w: w for w in words}}
    assert yaml.safe_load(yamlout.dump(document)) == document


def test_export_reads_back_and_matches_pyyaml() -> None:
    """The 5,500-entity export: same data as PyYAML's own dump of it."""
    version = KongVersion.parse("3.9.1")
    loaded = load(big_config(1_000), version, available_plugins(version, ("bundled",)))
    table = export(loaded.entities, version)
    text = yamlout.dump(table)
    assert yaml.load(text, Loader=yaml.CSafeLoader) == table
    reference = yaml.dump(table, Dumper=yaml.SafeDumper, sort_keys=False, default_flow_style=False)
    assert yaml.load(reference, Loader=yaml.CSafeLoader) == yaml.load(text, Loader=yaml.CSafeLoader)
    assert text.startswith("_format_version: \"3.0\"\n_transform: false\nservices:\n- ")
