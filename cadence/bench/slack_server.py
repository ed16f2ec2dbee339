"""The Slack stand-in's HTTP server: `/api/<method>` for clients, `/_control/...` for tests."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cadence.bench.slack_records import (
    Fault,
    Params,
)
from cadence.bench.slack_workspace import SlackWorkspace

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


async def _read_params(request: web.Request) -> Params | None:
    """Query string plus body, JSON or form, the ways slack-sdk sends arguments; None if bad."""
    params: Params = dict(request.query) if request.query_string else {}
    if not request.body_exists:
        return params
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        form = await request.post()
        params.update((k, v) for k, v in form.items() if isinstance(v, str))
        return params
    raw = await request.read()
    if not raw:
        return params
    if ctype == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        params.update(body)
    else:
        params.update(
            urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        )
    return params


def create_app(workspace: SlackWorkspace) -> web.Application:
    """The aiohttp application: `/api/<method>` for clients, `/_control/...` for tests."""

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        if params is None:
            return web.json_response({"ok": False, "error": "invalid_json"}, dumps=_dumps)
        header = request.headers.get("Authorization", "")
        token: str | None = header[7:].strip() if header[:7].lower() == "bearer " else None
        body_token = params.pop("token", None)
        if not token and body_token:
            token = str(body_token)
        status, body, headers = await workspace.call(method, params, token)
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    async def read_json(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def control(
        action: Callable[[web.Request], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(request: web.Request) -> web.Response:
            try:
                result = await action(request)
            except (ValueError, TypeError, KeyError) as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=400)
            return web.json_response(result, dumps=_dumps)

        return view

    async def configure(request: web.Request) -> Any:
        return {"ok": True, "config": workspace.configure(**await read_json(request))}

    async def config(request: web.Request) -> Any:
        return workspace.config()

    async def fail(request: web.Request) -> Any:
        workspace.fail_next(Fault.from_dict(await read_json(request)))
        return {"ok": True}

    async def chaos(request: web.Request) -> Any:
        data = await read_json(request)
        workspace.set_chaos(data.get("rules", []), int(data.get("seed", 0)))
        return {"ok": True}

    async def requests(request: web.Request) -> Any:
        return [r.to_dict() for r in workspace.requests(request.query.get("method"))]

    async def messages(request: web.Request) -> Any:
        return workspace.messages(request.query.get("channel"))

    async def stats(request: web.Request) -> Any:
        return workspace.stats().to_dict()

    async def reset(request: web.Request) -> Any:
        workspace.reset()
        return {"ok": True}

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/_control/configure", control(configure))
    app.router.add_get("/_control/config", control(config))
    app.router.add_post("/_control/fail", control(fail))
    app.router.add_post("/_control/chaos", control(chaos))
    app.router.add_get("/_control/requests", control(requests))
    app.router.add_get("/_control/messages", control(messages))
    app.router.add_get("/_control/stats", control(stats))
    app.router.add_post("/_control/reset", control(reset))
    return app


def _listen(host: str, port: int) -> socket.socket:
    """Bind before serving, so the port (OS-chosen when 0) is known at once."""
    return socket.create_server((host, port), backlog=1024)


async def _start(workspace: SlackWorkspace, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(
        create_app(workspace), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}"
