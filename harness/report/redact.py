"""The last line of defence: no secret value reaches a file of the run folder.

``harness.config_redact.redact`` cleans captured configurations; this module cleans everything written to
the run folder, whatever its origin (attachments, logs, pages), in two ways:

* **by value**: every known secret (consumer keys, admin tokens, plan credentials) is replaced by
  ``<redacted>`` wherever it occurs, also in the forms it takes inside JSON strings, HTML, and URLs;
* **by key**: in dicts, the value under a sensitive key (``key``, ``password``, ``secret``,
  ``token``, ``apikey``, ``client_secret``, ``kong-admin-token``, ...) is replaced whatever it is.

PEM private-key blocks are always replaced. ``scrub_run_dir`` rewrites the text files of a run
folder; ``find_secrets`` is the check a test (or the end of a run) makes over every file.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as escape_xml

MARK = "<redacted>"
MARK_MARKUP = html.escape(MARK)  # inside HTML/XML, where a bare "<redacted>" would be read as a tag

#: dict keys whose values are always redacted, compared lower-case with "-" and "_" removed
SENSITIVE_KEYS = frozenset(
    {"key", "password", "secret", "token", "apikey", "clientsecret", "kongadmintoken", "authorization",
     "adminpassword", "certkey", "clustercertkey", "privatekey"}
)
MARKUP_SUFFIXES = frozenset({".html", ".htm", ".xml", ".svg", ".xhtml"})

_PEM_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL
)


def is_sensitive_key(name: object) -> bool:
    return isinstance(name, str) and name.lower().replace("-", "").replace("_", "") in SENSITIVE_KEYS


def _forms(secret: str) -> set[str]:
    """The ways one secret value can be spelled in a file: raw, JSON/HTML/XML-escaped, CSV/YAML-quoted,
    URL-encoded."""
    forms = {
        secret,
        secret.replace('"', '""'),  # CSV field
        secret.replace("'", "''"),  # YAML single-quoted scalar
        escape_xml(secret, {'"': "&quot;", "'": "&apos;"}),
        html.escape(secret).replace("&#x27;", "&#39;"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    return {f for f in forms if f}


class Redactor:
    """Replaces known secret values (and values under sensitive keys) with ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if isinstance(s, str) and s.strip()}, key=len, reverse=True)
        self.secrets: tuple[str, ...] = tuple(values)
        forms = sorted({f for s in values for f in _forms(s)}, key=len, reverse=True)
        self._forms = tuple(forms)
        self._secret_of: dict[str, set[str]] = {}   # each spelling -> the secret(s) it spells
        for s in values:
            for f in _forms(s):
                self._secret_of.setdefault(f, set()).add(s)
        self._text = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
        self._bytes = (
            re.compile(b"|".join(re.escape(f.encode()) for f in forms)) if forms else None
        )

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        return Redactor((*self.secrets, *more))

    def text(self, text: str, *, markup: bool = False) -> str:
        """``text`` with every secret (any spelling) and every PEM private key replaced."""
        mark = MARK_MARKUP if markup else MARK
        if self._text is not None:
            text = self._text.sub(mark, text)
        # also matches a block inside a JSON string, where the newlines are written as \n
        return _PEM_KEY.sub(mark, text)

    def data(self, data: bytes, *, markup: bool = False) -> bytes:
        try:
            return self.text(data.decode("utf-8"), markup=markup).encode("utf-8")
        except UnicodeDecodeError:
            if self._bytes is None:
                return data
            return self._bytes.sub((MARK_MARKUP if markup else MARK).encode(), data)

    def obj(self, value: object) -> object:
        """A copy of a JSON-like value: sensitive keys' values and secret values replaced."""
        if isinstance(value, dict):
            return {
                k: (MARK if is_sensitive_key(k) and v not in (None, "", [], {}) else self.obj(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.data(value)
        return value

    def json(self, value: object, *, indent: int | None = 2, sort_keys: bool = False) -> str:
        """``value`` redacted, then dumped; the text is checked again (a secret inside a key)."""
        return self.text(json.dumps(self.obj(value), indent=indent, default=str, sort_keys=sort_keys))

    def contains(self, data: str | bytes) -> list[str]:
        """The secrets found in ``data`` (any spelling); empty when clean.

        One pass of the compiled alternation over ``data`` (not one substring search per secret and
        spelling: with 10,000 consumer keys that was 100,000 passes over every file of a run folder)."""
        found: set[str] = set()
        if isinstance(data, bytes):
            if self._bytes is not None:
                for raw in {m.group() for m in self._bytes.finditer(data)}:
                    found |= self._secret_of.get(raw.decode("utf-8", "replace"), set())
        elif self._text is not None:
            for text in {m.group() for m in self._text.finditer(data)}:
                found |= self._secret_of.get(text, set())
        return [s for s in self.secrets if s in found]



class SecretStore:
    """The run's one store of secret values (consumer keys, admin tokens) that every writer reads.

    Values are added as the run learns them (``add``); ``redactor`` is always current. The sign-off
    page, the Allure attachments, the evidence copies and the end-of-run scrub all read this store.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._redactor = Redactor(values)

    def add(self, values: Iterable[str | None]) -> None:
        new = {v for v in values if isinstance(v, str) and v.strip()} - set(self._redactor.secrets)
        if new:
            self._redactor = self._redactor.with_secrets(new)

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def values(self) -> frozenset[str]:
        return frozenset(self._redactor.secrets)

    def __repr__(self) -> str:
        return f"SecretStore({len(self._redactor.secrets)} values)"

@dataclass(frozen=True)
class SecretHit:
    """A secret found in a file: where, and which one (masked, so the hit itself can be printed)."""

    path: Path
    line: int
    masked: str

    def __str__(self) -> str:
        where = "inside a base64 blob" if self.line == 0 else f"line {self.line}"
        return f"{self.path} ({where}): secret {self.masked}"


def mask(secret: str) -> str:
    return f"{secret[:2]}... ({len(secret)} chars)"


def _files(run_dir: Path) -> Iterator[Path]:
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def scrub_run_dir(run_dir: str | Path, secrets: Iterable[str] | Redactor) -> list[Path]:
    """Rewrite every text file of ``run_dir`` that holds a secret; return the files changed.

    Binary files are left alone (``find_secrets`` still reports them). HTML/XML files get the
    escaped mark ``&lt;redacted&gt;`` so they stay well-formed.
    """
    redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    fixed: list[Path] = []
    for path in _files(Path(run_dir)):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        clean = redactor.text(text, markup=path.suffix.lower() in MARKUP_SUFFIXES)
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            fixed.append(path)
    return fixed


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")


def _embedded(data: bytes, depth: int = 2) -> Iterator[bytes]:
    """Base64 blobs inside ``data`` (data: URIs, single-file reports), decoded, nested ``depth`` deep."""
    if depth == 0:
        return
    for match in _BASE64_RUN.finditer(data):
        blob = match.group()
        try:
            decoded = base64.b64decode(blob + b"=" * (-len(blob) % 4))
        except ValueError:
            continue
        yield decoded
        yield from _embedded(decoded, depth - 1)


def find_secrets(run_dir: str | Path, secrets: Iterable[str] | Redactor) -> list[SecretHit]:
    """Every occurrence (file, line) of a secret value, in any spelling, in any file of ``run_dir``.

    Base64 blobs (the single-file Allure report embeds every attachment so) are decoded and searched
    too; a hit inside one is reported with line 0.
    """
    redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    hits: list[SecretHit] = []
    for path in _files(Path(run_dir)):
        data = path.read_bytes()
        for secret in redactor.contains(data):
            forms = [f.encode() for f in _forms(secret)]
            for number, line in enumerate(data.splitlines(), start=1):
                if any(f in line for f in forms):
                    hits.append(SecretHit(path, number, mask(secret)))
        if len(data) >= 40:
            inner = {s for blob in _embedded(data) for s in redactor.contains(blob)}
            hits.extend(SecretHit(path, 0, mask(s)) for s in sorted(inner))
    return hits
