"""Redaction: every secret value, in every spelling a file can hold, and values under sensitive keys."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import pytest

from harness.report.redact import MARK, Redactor, find_secrets, is_sensitive_key, scrub_run_dir

KEY = "consumer-key-7f3a9"
TOKEN = 'adm<in>"tok&en/+ 1'  # characters that JSON, HTML and URLs all spell differently
SECRETS = (KEY, TOKEN)
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.fixture
def red() -> Redactor:
    return Redactor(SECRETS)


def _spellings(s: str) -> tuple[str, ...]:
    return (s, json.dumps(s)[1:-1], html.escape(s), quote(s, safe=""), s.replace('"', '""'))


def _clean(text: str) -> bool:
    return not any(form in text for s in SECRETS for form in _spellings(s))


def test_text(red: Redactor) -> None:
    out = red.text(f"GET /orders?apikey={KEY} with Kong-Admin-Token: {TOKEN} done")
    assert out == f"GET /orders?apikey={MARK} with Kong-Admin-Token: {MARK} done"


def test_json_value_and_key_based(red: Redactor) -> None:
    config = {
        "consumers": [{"username": "alice", "keyauth_credentials": [{"key": "another-key-not-listed"}]}],
        "plugins": [{"name": "key-auth", "config": {"key_names": ["apikey"]}}],
        "notes": f"token was {TOKEN}",
        "headers": {"Kong-Admin-Token": "t0k", "Authorization": "Basic abc"},
        "client_secret": "oidc", "empty": {"password": ""},
    }
    dumped = red.json(config)
    parsed = json.loads(dumped)
    assert parsed["consumers"][0]["keyauth_credentials"][0]["key"] == MARK
    assert parsed["plugins"][0]["config"]["key_names"] == ["apikey"]  # a name, not a secret
    assert parsed["notes"] == f"token was {MARK}"
    assert parsed["headers"] == {"Kong-Admin-Token": MARK, "Authorization": MARK}
    assert parsed["client_secret"] == MARK
    assert parsed["empty"] == {"password": ""}
    assert "another-key-not-listed" not in dumped and _clean(dumped)


def test_json_text_written_elsewhere(red: Redactor) -> None:
    text = json.dumps({"n": f"x {TOKEN} y", "k": KEY})  # escaped quotes inside a JSON string
    assert TOKEN not in text and json.dumps(TOKEN)[1:-1] in text
    out = red.text(text)
    assert _clean(out)
    assert json.loads(out) == {"n": f"x {MARK} y", "k": MARK}


def test_csv(red: Redactor) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["t", "node", "header"], [0.1, "x1", TOKEN], [0.2, "y1", KEY]])
    out = red.text(buffer.getvalue())
    assert _clean(out)
    assert list(csv.reader(io.StringIO(out)))[1] == ["0.1", "x1", MARK]


def test_html_uses_an_escaped_mark(red: Redactor) -> None:
    page = f"<p>key {html.escape(KEY)}</p><p title=\"{html.escape(TOKEN)}\">{html.escape(TOKEN)}</p>"
    out = red.text(page, markup=True)
    assert _clean(out)
    assert "&lt;redacted&gt;" in out and "<redacted>" not in out


def test_url_encoded(red: Redactor) -> None:
    assert _clean(red.text(f"http://127.0.0.1:8001/x?t={quote(TOKEN, safe='')}"))


def test_pem_private_keys_always_go(red: Redactor) -> None:
    assert red.text(f"cert_key: {PEM}\n") == f"cert_key: {MARK}\n"
    assert "MIIEvQ" not in red.text(json.dumps({"pem": PEM}))


def test_bytes_and_binary(red: Redactor) -> None:
    assert red.data(f"a {KEY}".encode()) == f"a {MARK}".encode()
    blob = b"\x89PNG\xff\xfe" + KEY.encode()
    assert KEY.encode() not in red.data(blob)


def test_empty_and_blank_secrets_are_ignored() -> None:
    assert Redactor(["", "  "]).text("nothing to hide") == "nothing to hide"


def test_longest_secret_wins_on_overlap() -> None:
    assert Redactor(["abc", "abcdef"]).text("abcdef abc") == f"{MARK} {MARK}"


@pytest.mark.parametrize("name", ["key", "Password", "SECRET", "token", "apikey", "api_key", "client_secret",
                                  "kong-admin-token", "Kong_Admin_Token"])
def test_sensitive_keys(name: str) -> None:
    assert is_sensitive_key(name)


@pytest.mark.parametrize("name", ["key_names", "keys", "username", "name", 3])
def test_insensitive_keys(name: object) -> None:
    assert not is_sensitive_key(name)


def _run_folder(root: Path) -> Path:
    (root / "evidence").mkdir(parents=True)
    (root / "allure-results").mkdir()
    (root / "evidence" / "probe.csv").write_text(f"t,key\n0.1,{KEY}\n")
    (root / "evidence" / "config.json").write_text(json.dumps({"token": TOKEN, "note": f"k={KEY}"}))
    (root / "junit.xml").write_text(
        f'<testsuite><testcase name="t"><failure message="{html.escape(TOKEN)}">{html.escape(KEY)}'
        "</failure></testcase></testsuite>"
    )
    (root / "report.html").write_text(f"<html><body>{html.escape(TOKEN)}</body></html>")
    (root / "allure-results" / "a-attachment.txt").write_text(f"Kong-Admin-Token: {TOKEN}\n")
    (root / "clean.txt").write_text("nothing here\n")
    (root / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff" + KEY.encode())
    return root


def test_find_then_scrub_then_nothing_left(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    hits = find_secrets(run, SECRETS)
    assert {h.path.name for h in hits} == {
        "probe.csv", "config.json", "junit.xml", "report.html", "a-attachment.txt", "picture.png"}
    assert all(KEY not in str(h) and TOKEN not in str(h) for h in hits)  # hits can be printed

    fixed = scrub_run_dir(run, SECRETS)
    assert {p.name for p in fixed} == {
        "probe.csv", "config.json", "junit.xml", "report.html", "a-attachment.txt"}
    left = find_secrets(run, SECRETS)
    assert [h.path.name for h in left] == ["picture.png"]  # binary: reported, not rewritten
    ET.parse(run / "junit.xml")  # still well-formed XML
    assert json.loads((run / "evidence" / "config.json").read_text()) == {"token": MARK, "note": f"k={MARK}"}
    assert (run / "clean.txt").read_text() == "nothing here\n"


def test_find_sees_through_base64(tmp_path: Path) -> None:
    inner = base64.b64encode(json.dumps({"k": KEY, "pad": "x" * 40}).encode())
    outer = base64.b64encode(b'd("data/a.json","' + inner + b'")')
    page = b'<script src="data:text/javascript;base64,' + outer + b'"></script>'
    (tmp_path / "index.html").write_bytes(page)
    hits = find_secrets(tmp_path, SECRETS)
    assert [(h.path.name, h.line) for h in hits] == [("index.html", 0)]
    assert "base64" in str(hits[0])
