"""Kong's answers read for messages and errors: a body as JSON (never raising), a short preview of a body, and
:func:`api_error`, which turns an error status into an :class:`AdminAPIError` carrying Kong's own message, code
and name, with a next step (``hint``) chosen from what Kong said (DB-less node, CP-only endpoint, invalid config,
body over nginx's limit, token wanted ...).

Used by the bounded transport (harness.transport) and the clients (harness.admin); it holds no connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from harness.errors import AdminAPIError

NOT_JSON = object()


def parse_json(response: httpx.Response) -> object:
    """The body as JSON, or ``NOT_JSON`` (never another exception: not UTF-8, too deep, huge numbers)."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):      # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return NOT_JSON


def preview(response: httpx.Response, limit: int = 200) -> str:
    """The start of an answer's body as text, for error messages (never the whole body)."""
    return response.content[: limit * 4].decode("utf-8", "replace")[:limit]


def scrub(text: str) -> str:
    """Text from a node (a header, a parser's error) cut to a message's size."""
    return text[:300]


_HINTS: tuple[tuple[Callable[[int, str, int | None], bool], str], ...] = (
    (lambda s, m, c: c == 12 or (s == 405 and "not using a database" in m),
     "this node is DB-less (or a DP): entities cannot be written one by one; load a whole declarative "
     "config with POST /config"),
    (lambda s, m, c: "configured to not use a database" in m,
     "this node uses a database (traditional mode or a CP): read its config by entity listing "
     "(harness.config_capture.capture does) and load config through entity endpoints"),
    (lambda s, m, c: "configured to run as Control Plane" in m,
     "/clustering/* exists only on a control plane (role = control_plane); ask the CP, not a DP"),
    (lambda s, m, c: c == 14,
     "the declarative config is invalid: see the fields above; run the considerations stage for "
     "version-specific rules"),
    (lambda s, m, c: s == 413 and ("LMDB" in m or "cache" in m),
     "the config is too large for the node: raise lmdb_map_size (3.x) or mem_cache_size (2.8)"),
    (lambda s, m, c: s == 413,      # nginx's own HTML page: the body is over the Admin API's limit (§9.1)
     "the request body is over the Admin API's nginx_admin_client_max_body_size (10m by default): raise it "
     "on the node (KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE)"),
    (lambda s, m, c: s == 429,
     "the node is still loading the previous configuration; wait and retry"),
    (lambda s, m, c: s in (401, 403),
     "the Admin API wants a token: put it in an environment variable and name it in "
     "credentials.admin_token_env"),
    (lambda s, m, c: s == 404,
     "the endpoint does not exist on this node or version (e.g. /status/ready needs 3.3+ and the Status "
     "API; /config needs a DB-less node)"),
)


def api_error(where: str, response: httpx.Response) -> AdminAPIError:
    """An :class:`AdminAPIError` carrying Kong's own message, code and name, with a next step."""
    body = parse_json(response)
    if body is NOT_JSON:
        body = preview(response) or None
    kong_message = code = name = None
    if isinstance(body, dict):
        kong_message = body.get("message") if isinstance(body.get("message"), str) else None
        code = body.get("code") if isinstance(body.get("code"), int) else None
        name = body.get("name") if isinstance(body.get("name"), str) else None
    status = response.status_code
    text = (kong_message[:500] if kong_message else None) or (body if isinstance(body, str) else None) \
        or preview(response) or "(empty body)"
    message = f"{where} answered {status}: {text}"
    if code is not None:
        message += f" (code {code}, {name})"
    hint = next((h for match, h in _HINTS if match(status, kong_message or "", code)), None)
    return AdminAPIError(message, status=status, kong_message=kong_message, code=code, name=name,
                         body=body, hint=hint)
