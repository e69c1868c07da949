"""Request bodies under nginx's `client_max_body_size`, and the 413 page nginx answers over it.

Kong's listeners are nginx servers: the Admin API has `client_max_body_size` from
`nginx_admin_client_max_body_size` (10m; `kong/templates/kong_defaults.lua` @ 2.8.5, 3.4.2, 3.9.0), the
proxy from `nginx_http_client_max_body_size` (0, no limit). nginx refuses a declared Content-Length over
the limit before any Lua runs, and a chunked body when its size passes the limit while it is read.
The Admin API server block has no `error_page` (`kong/templates/nginx_kong.lua`), so the answer is nginx's
own HTML page; Kong's OpenResty build removes the `<hr><center>openresty</center>` tail line
(Kong/kong-build-tools: openresty-patches/patches/1.19.9.1/nginx-1.19.9_02-remove-server-tokens-from-
special-responses-output.patch, and Kong/kong: build/openresty/patches/ for 3.x). nginx turns keep-alive
off for a 413 (ngx_http_special_response_handler), so the connection closes.
"""

from __future__ import annotations

from aiohttp import web

NGINX_413_PAGE = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n</body>\r\n</html>\r\n"
)


class BodyTooLarge(Exception):
    """The request body is over the listener's client_max_body_size."""

    def __init__(self, limit: int, size: int) -> None:
        super().__init__(f"client intended to send too large body: {size} bytes (limit {limit})")
        self.limit = limit
        self.size = size


def declared_too_large(request: web.BaseRequest, limit: int | None) -> bool:
    """nginx's check in the find-config phase: the declared Content-Length against the limit."""
    if limit is None:
        return False
    length = request.content_length
    return length is not None and length > limit


async def read_body(request: web.BaseRequest, limit: int | None) -> bytes:
    """The whole body, without aiohttp's own 1 MiB cap; BodyTooLarge once it passes `limit`."""
    if not request.body_exists:
        return b""
    if declared_too_large(request, limit):
        raise BodyTooLarge(limit or 0, request.content_length or 0)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge(limit, size)
        chunks.append(chunk)
    return b"".join(chunks)


def nginx_413(server: str | None, extra: dict[str, str] | None = None) -> web.Response:
    """nginx's 413 page; `server` is the Server header Kong's header filter adds (None: none)."""
    headers = {"Content-Type": "text/html; charset=UTF-8", "Connection": "close"}
    if server:
        headers["Server"] = server
    if extra:
        headers.update(extra)
    response = web.Response(status=413, body=NGINX_413_PAGE, headers=headers)
    response.force_close()
    return response
