"""Request bodies capped before anything reads them: before authentication, before parsing.

A pure ASGI middleware, outside every router: a declared `Content-Length` over the cap
is answered 413 at once, without reading a byte; a body streamed without one (chunked) is
counted as it arrives, and the moment it passes the cap the application is told the
client went away and whatever it answers is replaced by the 413. Either way the answer is
the one JSON error shape (`request.too_large`). So an anonymous client cannot make the
broker hold 200 MB in memory to find out it has no token.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.settings import Settings

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: a routing table or a reply is far smaller
TOO_LARGE = "request.too_large"


def install_limits(app: FastAPI) -> None:
    """Cap request bodies on `app` (once, in `create_app`) at S284_HTTP_MAX_BODY_BYTES."""
    app.add_middleware(BodyLimit, max_bytes=Settings().http_max_body_bytes)


class BodyLimit:
    """`app` with request bodies of at most `max_bytes` (S284_HTTP_MAX_BODY_BYTES)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        await _Capped(self.app, self.max_bytes, receive, send).run(scope)


class _Capped:
    """One request: counts body bytes, and once over the cap owns the response."""

    def __init__(self, app: ASGIApp, max_bytes: int, receive: Receive, send: Send) -> None:
        self.app, self.max_bytes = app, max_bytes
        self._receive, self._send = receive, send
        self.total = 0
        self.over = False
        self.started = False  # the application's response began before the cap was hit

    async def run(self, scope: Scope) -> None:
        try:
            await self.app(scope, self.receive, self.send)
        except Exception:
            if not self.over or self.started:
                raise
        if self.over and not self.started:
            await _too_large(self._send, self.max_bytes)

    async def receive(self) -> Message:
        if self.over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.total += len(message.get("body", b""))
            if self.total > self.max_bytes:
                self.over = True
                return {"type": "http.disconnect"}  # the application stops reading
        return message

    async def send(self, message: Message) -> None:
        if self.over and not self.started:
            return  # replaced by the 413 once the application is done
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps(
        {"error": TOO_LARGE, "detail": f"the request body is over {max_bytes} bytes"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
