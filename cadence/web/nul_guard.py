"""Refuse NUL in a request's URL or form body before any route reads it.

PostgreSQL cannot store or compare text holding NUL: a query with one fails with an error
rather than finding nothing. No page, form or link of Cadence needs the character, so a
request carrying it is answered 400 here, once, instead of each route checking each field.
JSON bodies are checked by the API's strict reader (`cadence.inputs.load_json`).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REFUSAL = "NUL characters (%00) are not accepted in a request"
_FORM = b"application/x-www-form-urlencoded"


def _has_nul(data: bytes) -> bool:
    return b"\x00" in data or b"%00" in data


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if _has_nul(raw_path) or _has_nul(scope.get("query_string", b"")):
            await _refuse(send)
            return
        headers = dict(scope.get("headers", []))
        if not headers.get(b"content-type", b"").startswith(_FORM):
            await self.app(scope, receive, send)
            return
        # A form body is read whole here (the route would read it whole anyway) and then
        # handed on unchanged.
        chunks: list[Message] = []
        body = b""
        while True:
            message = await receive()
            chunks.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if _has_nul(body):
            await _refuse(send)
            return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send) -> None:
    body = json.dumps({"detail": REFUSAL, "problems": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
