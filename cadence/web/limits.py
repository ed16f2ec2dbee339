"""The request body limit, applied to every route before anything reads or parses a body.

A pure ASGI middleware rather than a FastAPI dependency: dependencies run after routing and,
for JSON and forms, after the body has been read. Here a request announcing too much
(`Content-Length`) is refused without reading a byte of it, and a body that arrives in
chunks is counted as it comes, refused as soon as the count passes the limit, and never
buffered beyond it. Authentication comes later, so an anonymous sender cannot make the
server hold a large body either.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadence.web.api.schemas import Problem


def describe_limit(limit: int) -> str:
    """The limit in words: bytes, and KiB or MiB when it is a round number of them."""
    text = f"{limit:,} bytes"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{text} ({limit // size:,} {unit})"
    return text


def too_large_sentence(limit: int) -> str:
    return (
        f"The request body is larger than this server accepts: at most {describe_limit(limit)}"
        " (CADENCE_MAX_REQUEST_BYTES)."
    )


def _announced_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                # The server itself refuses a malformed length; count the body instead.
                return None
    return None


class _Answered(Exception):
    """The 413 has been sent; what the app does after that is of no interest."""


class BodyLimit:
    """Answers 413 to any HTTP request whose body is, or becomes, longer than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = _announced_length(scope)
        if announced is not None and announced > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    # The app sees the client gone and stops reading; nothing more is taken
                    # from the socket, and the server closes the connection.
                    raise _Answered
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 already went out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _Answered:
            pass
        except Exception:
            # An app that turned the refusal into an error of its own (a failed parse).
            if not refused:
                raise

    async def _refuse(self, scope: Scope, send: Send) -> None:
        sentence = too_large_sentence(self.limit)
        body: bytes
        if str(scope.get("path", "")).startswith("/api"):
            content_type = b"application/json"
            body = json.dumps(Problem(detail=sentence, problems=[]).model_dump()).encode()
        else:
            content_type = b"text/plain; charset=utf-8"
            body = sentence.encode() + b"\n"
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is never read, so the connection cannot carry another
            # request.
            (b"connection", b"close"),
        ]
        start: dict[str, Any] = {"type": "http.response.start", "status": 413, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})
