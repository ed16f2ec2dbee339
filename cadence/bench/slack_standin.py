"""A loopback stand-in for the Slack Web API methods Cadence calls.

Tests and the fan-out benchmark need Slack's wire behaviour (HTTP 200 with `ok: false`, 429
with `Retry-After`, slow or failing answers, message metadata read back from history) without
a workspace, so this serves those methods from memory over a real socket. slack-sdk clients
talk to it unchanged: `WebClient(token=standin.token, base_url=standin.base_url)`.

It runs in a thread of the calling process (`SlackStandIn`, for tests) or in a process of its
own (`SlackStandInProcess`, for benchmarks, so the server does not share the client's GIL).
Both are driven by the same control operations: directly in Python for the first, over
`/_control/...` HTTP endpoints for the second.

Its parts: `slack_records` (users, faults, counters, wire formats), `slack_workspace` (how
each method behaves), `slack_server` (the HTTP server); this module runs them.

Run it by hand with `python -m cadence.bench.slack_standin --port 0 --token T`: the first
line on stdout is the port it listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from cadence.bench.slack_records import (
    DEFAULT_BURST,
    DEFAULT_TOKEN,
    Fault,
    RecordedRequest,
    SlackStats,
    SlackUser,
    T,
)
from cadence.bench.slack_server import _listen, _start, _url, create_app
from cadence.bench.slack_workspace import SlackWorkspace

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_TOKEN",
    "Fault",
    "RecordedRequest",
    "SlackStandIn",
    "SlackStandInControl",
    "SlackStandInProcess",
    "SlackStats",
    "SlackUser",
    "SlackWorkspace",
    "create_app",
    "main",
]


def _scope_list(scopes: Iterable[str]) -> list[str]:
    # A bare string is an iterable of letters: refuse it here, before it reaches the server.
    if isinstance(scopes, str):
        raise ValueError("scopes must be a list of scope names, not one string")
    return list(scopes)


class SlackStandInControl(Protocol):
    """What both ways of running the stand-in offer, for code that takes either."""

    @property
    def url(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def token(self) -> str: ...

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
        scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]: ...

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None: ...

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None: ...

    def requests(self, method: str | None = None) -> list[RecordedRequest]: ...

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]: ...

    def stats(self) -> SlackStats: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class SlackStandIn:
    """The stand-in on a thread of this process, with its own event loop, for tests.

    Use as a context manager. Keyword arguments are the initial configuration (see
    `SlackWorkspace.configure`); `reset()` returns to it.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_minute: float = 0.0,
        burst: int = DEFAULT_BURST,
        users: Iterable[SlackUser | Mapping[str, Any]] = (),
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool = True,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self._workspace = SlackWorkspace(
            token=token,
            rate_per_minute=rate_per_minute,
            burst=burst,
            users=users,
            accept_any=accept_any,
            method_rates=method_rates,
            record=record,
            scopes=None if scopes is None else _scope_list(scopes),
        )
        self._host, self._port_wanted = host, port
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the Slack stand-in is not running")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return _url(self._host, self.port)

    @property
    def base_url(self) -> str:
        """What slack-sdk's clients take as `base_url` (with the trailing slash they need)."""
        return self.url + "/api/"

    @property
    def token(self) -> str:
        return self._call(lambda: self._workspace.token)

    def start(self) -> SlackStandIn:
        if self._thread is not None:
            raise RuntimeError("the Slack stand-in is already running")
        self._sock = _listen(self._host, self._port_wanted)
        self._ready.clear()
        self._thread = threading.Thread(target=self._serve, name="slack-stand-in", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None or self._loop is None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError("the Slack stand-in did not start") from self._failure
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(_start(self._workspace, self._sock))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._workspace.release_stalls()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Stop serving: stalled calls are answered at once, then connections close."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = self._loop = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop, where the workspace lives, and return its result."""
        loop = self._loop
        if loop is None:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
        scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        users_list = None if users is None else list(users)
        scope_list = None if scopes is None else _scope_list(scopes)
        return self._call(
            lambda: self._workspace.configure(
                token=token,
                rate_per_minute=rate_per_minute,
                burst=burst,
                users=users_list,
                accept_any=accept_any,
                method_rates=method_rates,
                record=record,
                scopes=scope_list,
            )
        )

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next `count` calls fail; with no kind given, they answer HTTP 500."""
        fault = Fault(
            count, status=status, stall=stall, error=error, method=method, late=late,
            retry_after=retry_after,
        )  # fmt: skip
        self._call(lambda: self._workspace.fail_next(fault))

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None:
        given = [dict(r) for r in rules]
        self._call(lambda: self._workspace.set_chaos(given, seed))

    def requests(self, method: str | None = None) -> list[RecordedRequest]:
        return self._call(lambda: self._workspace.requests(method))

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        return self._call(lambda: self._workspace.messages(channel))

    def stats(self) -> SlackStats:
        return self._call(self._workspace.stats)

    def reset(self) -> None:
        self._call(self._workspace.reset)


class SlackStandInProcess:
    """The stand-in in a process of its own, driven over its HTTP control API.

    For benchmarks: in-process, the server would share the GIL with the client it measures.
    The child exits when this object closes or when this process dies (it watches its stdin).

    To measure a client against it, e.g. slack-sdk's AsyncWebClient sharing one aiohttp
    session with 32 calls in flight: start it (`record=False` for long runs), post N messages
    through `AsyncWebClient(token=slack.token, base_url=slack.base_url, session=session)`
    under an `asyncio.Semaphore(32)`, and divide N by the elapsed time;
    `slack.stats().posts_per_second` gives the server's own view of the same run.

    On the 2-core development machine, 5,000 posts that way ran at 2,300-5,100 calls/s
    (about 3,000 typically, swinging with other load), the client process being the
    bottleneck; a bare aiohttp client gets about 6,500 calls/s from the stand-in.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_minute: float = 0.0,
        burst: int = DEFAULT_BURST,
        users: Iterable[SlackUser | Mapping[str, Any]] = (),
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool = True,
        scopes: Iterable[str] | None = None,
        python: str = sys.executable,
        startup_timeout: float = 30.0,
    ) -> None:
        self._token, self._host, self._port_wanted = token, host, port
        self._python, self._startup_timeout = python, startup_timeout
        self._config: dict[str, Any] = {
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "users": [u.to_dict() if isinstance(u, SlackUser) else dict(u) for u in users],
            "accept_any": accept_any,
            "method_rates": dict(method_rates or {}),
            "record": record,
        }
        if scopes is not None:
            self._config["scopes"] = _scope_list(scopes)
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.returncode: int | None = None
        """The child's exit status once closed: 0 when it shut down cleanly."""
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Slack stand-in is not running")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the Slack stand-in is not running")
        return self._proc.pid

    @property
    def url(self) -> str:
        return _url(self._host, self.port)

    @property
    def base_url(self) -> str:
        return self.url + "/api/"

    @property
    def token(self) -> str:
        return str(self._control("GET", "config")["token"])

    def start(self) -> SlackStandInProcess:
        if self._proc is not None:
            raise RuntimeError("the Slack stand-in is already running")
        command = [
            self._python,
            "-m",
            "cadence.bench.slack_standin",
            "--host",
            self._host,
            "--port",
            str(self._port_wanted),
            "--token",
            self._token,
            "--config",
            json.dumps(self._config),
            "--exit-on-stdin-eof",
        ]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self._port = self._read_port(self._proc)
        except BaseException:
            self.close()
            raise
        return self

    def _read_port(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + self._startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise RuntimeError("the Slack stand-in did not report its port in time")
                chunk = os.read(proc.stdout.fileno(), 64)
                if not chunk:
                    raise RuntimeError(f"the Slack stand-in exited early ({proc.wait()})")
                line += chunk
        return int(line.decode().strip())

    def close(self) -> None:
        """Close the child's stdin (it stops cleanly on EOF); terminate it if it lingers."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.returncode = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                self.returncode = proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.returncode = proc.wait()

    def __enter__(self) -> SlackStandInProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, verb: str, path: str, body: Any = None, **query: str) -> Any:
        url = f"{self.url}/_control/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=verb)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise ValueError(f"stand-in control {path}: {detail}") from exc

    def configure(
        self,
        *,
        token: str | None = None,
        rate_per_minute: float | None = None,
        burst: int | None = None,
        users: Iterable[SlackUser | Mapping[str, Any]] | None = None,
        accept_any: bool | None = None,
        method_rates: Mapping[str, float] | None = None,
        record: bool | None = None,
        scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": token,
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "accept_any": accept_any,
            "method_rates": None if method_rates is None else dict(method_rates),
            "record": record,
            "scopes": None if scopes is None else _scope_list(scopes),
        }
        if users is not None:
            body["users"] = [u.to_dict() if isinstance(u, SlackUser) else dict(u) for u in users]
        answer = self._control(
            "POST", "configure", {k: v for k, v in body.items() if v is not None}
        )
        return dict(answer["config"])

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        stall: float | None = None,
        error: str | None = None,
        method: str | None = None,
        late: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        fault = Fault(
            count, status=status, stall=stall, error=error, method=method, late=late,
            retry_after=retry_after,
        )  # fmt: skip
        self._control("POST", "fail", fault.to_dict())

    def set_chaos(self, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> None:
        self._control("POST", "chaos", {"rules": [dict(r) for r in rules], "seed": seed})

    def requests(self, method: str | None = None) -> list[RecordedRequest]:
        query = {} if method is None else {"method": method}
        return [RecordedRequest.from_dict(r) for r in self._control("GET", "requests", **query)]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        query = {} if channel is None else {"channel": channel}
        return list(self._control("GET", "messages", **query))

    def stats(self) -> SlackStats:
        return SlackStats.from_dict(self._control("GET", "stats"))

    def reset(self) -> None:
        self._control("POST", "reset")


async def _serve_until_stopped(args: argparse.Namespace) -> None:
    config: dict[str, Any] = {
        "rate_per_minute": args.rate_per_minute,
        "burst": args.burst,
        "record": not args.no_record,
    }
    config.update(json.loads(args.config))
    workspace = SlackWorkspace(token=args.token, **config)
    sock = _listen(args.host, args.port)
    runner = await _start(workspace, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:

        def on_stdin() -> None:
            try:
                chunk = os.read(0, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(0)
                stop.set()

        loop.add_reader(0, on_stdin)
    print(sock.getsockname()[1], flush=True)
    try:
        await stop.wait()
    finally:
        workspace.release_stalls()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cadence.bench.slack_standin",
        description="Serve a loopback stand-in for the Slack Web API; prints the port first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token clients must send")
    parser.add_argument("--rate-per-minute", type=float, default=0.0, help="0 for no limit")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST)
    parser.add_argument("--no-record", action="store_true", help="count calls, keep no log")
    parser.add_argument(
        "--config",
        default="{}",
        help="JSON object of initial settings (users, accept_any, method_rates, ...)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (parent gone)"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve_until_stopped(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
