"""The key-auth plugin (KONG-FACTS.md section 4): lookup order, 401s by version, consumer headers."""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

from multidict import CIMultiDict, CIMultiDictProxy

from emulator.state import Snapshot
from emulator.versions import KongVersion

NO_KEY = "No API key found in request"
DUPLICATE = "Duplicate API key found"


@dataclass
class Outcome:
    """What key-auth decided: a 401/500 to send, or changes to the upstream request."""

    status: int = 0
    message: str = ""
    www_authenticate: str | None = None
    set_headers: dict[str, str | None] = field(default_factory=dict)  # None clears the header
    query: list[tuple[str, str]] | None = None    # rewritten query (hide_credentials)
    body: bytes | None = None                      # rewritten body (hide_credentials)


def _www(version: KongVersion, config: dict[str, Any], case: str) -> str | None:
    """Section 4.3's table: which 401s carry WWW-Authenticate, and its value."""
    if version.keyauth_has_realm:
        realm = config.get("realm")
        return f'Key realm="{realm}"' if realm else "Key"
    return 'Key realm="kong"' if case == "no_key" else None


def _body_params(body: bytes, content_type: str) -> tuple[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return "none", {}
    if ctype == "application/x-www-form-urlencoded":
        return "form", parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return "none", {}
        return ("json", data) if isinstance(data, dict) else ("none", {})
    if ctype == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                # decode=True gives the part's bytes (None only for a nested multipart part)
                fields.append((str(name), part.get_content() if part.get_content_type().startswith("text")
                               else cast(bytes, part.get_payload(decode=True)).decode("utf-8", "replace")))
        return "multipart", fields
    return "none", {}


def authenticate(version: KongVersion, config: dict[str, Any], snapshot: Snapshot, method: str,
                 headers: CIMultiDictProxy[str] | CIMultiDict[str], query: list[tuple[str, str]],
                 body: bytes, fault: str = "off") -> Outcome:
    if method == "OPTIONS" and not config.get("run_on_preflight", True):
        return Outcome()
    if fault == "accept_any":
        return Outcome()
    key: str | None = None
    duplicate = False
    where = ""
    name_found = ""
    body_kind: str = "none"
    body_params: Any = {}  # a JSON object or a list of (name, value) pairs, by body_kind
    if config.get("key_in_body"):
        body_kind, body_params = _body_params(body, headers.get("Content-Type", ""))
    for name in config.get("key_names") or ["apikey"]:
        if config.get("key_in_header", True):
            values = headers.getall(name, [])
            if len(values) > 1:
                duplicate = True
            elif values:
                key, where = values[0], "header"
        if key is None and not duplicate and config.get("key_in_query", True):
            values = [v for k, v in query if k == name]
            if len(values) > 1:
                duplicate = True
            elif values:
                key, where = values[0], "query"
        if key is None and not duplicate and body_kind != "none":
            if body_kind == "json":
                value = body_params.get(name)
                if isinstance(value, list):
                    duplicate = True
                elif isinstance(value, str):
                    key, where = value, "body"
            else:
                values = [v for k, v in body_params if k == name]
                if len(values) > 1:
                    duplicate = True
                elif values:
                    key, where = values[0], "body"
        if key is not None or duplicate:
            name_found = name
            break
    if duplicate:
        return _fail(version, config, snapshot, DUPLICATE, "duplicate")
    if not key:
        return _fail(version, config, snapshot, NO_KEY, "no_key")
    credential = snapshot.keys.get(key)
    ttl = credential.get("ttl") if credential is not None else None
    if credential is not None and ttl is not None and credential.get("created_at", 0) + ttl < time.time():
        credential = None
    if credential is None or fault == "reject_valid":
        return _fail(version, config, snapshot, version.keyauth_invalid_message, "invalid")
    consumer = snapshot.consumers.get((credential.get("consumer") or {}).get("id", ""))
    if consumer is None:
        return _fail(version, config, snapshot, version.keyauth_invalid_message, "invalid")
    outcome = Outcome(set_headers=_consumer_headers(version, consumer, credential["id"]))
    if config.get("hide_credentials"):
        if where == "header":
            outcome.set_headers[name_found] = None
        elif where == "query":
            outcome.query = [(k, v) for k, v in query if k != name_found]
        elif where == "body" and body_kind == "form":
            outcome.body = urlencode([(k, v) for k, v in body_params if k != name_found]).encode()
        elif where == "body" and body_kind == "json":
            outcome.body = json.dumps({k: v for k, v in body_params.items() if k != name_found}).encode()
    return outcome


def _consumer_headers(version: KongVersion, consumer: dict[str, Any], credential_id: str | None
                      ) -> dict[str, str | None]:
    headers: dict[str, str | None] = {
        "X-Consumer-ID": consumer["id"],
        "X-Consumer-Custom-ID": consumer.get("custom_id"),
        "X-Consumer-Username": consumer.get("username"),
        "X-Credential-Identifier": credential_id,
        "X-Anonymous-Consumer": None,
    }
    if version.major < 3:
        headers["X-Credential-Username"] = None  # cleared in 2.8 (section 4.4)
    return headers


def _fail(version: KongVersion, config: dict[str, Any], snapshot: Snapshot, message: str, case: str
          ) -> Outcome:
    anonymous = config.get("anonymous")
    if anonymous:
        consumer = snapshot.consumers.get(anonymous)
        if consumer is None:
            return Outcome(status=500, message="An unexpected error occurred")
        headers = _consumer_headers(version, consumer, None)
        headers["X-Anonymous-Consumer"] = "true"
        return Outcome(set_headers=headers)
    return Outcome(status=401, message=message, www_authenticate=_www(version, config, case))
