"""Signing in to the dashboard and out of it.

Signing in stores a session (only its token's hash) and sets a cookie carrying the token;
signing out deletes the session, so a copy of the cookie stops working too. Failed sign-ins
are throttled per client address and per email and address (`cadence.web.throttle`),
answered with 429, `Retry-After` and the time to try again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cadence.access import users
from cadence.access.users import SESSION_LIFETIME
from cadence.store.db import session_scope
from cadence.web.ack_pages import csrf_field
from cadence.web.dashboard.common import (
    LOGIN_PURPOSE,
    LOGOUT_PURPOSE,
    SESSION_COOKIE,
    Frame,
    Refused,
    html,
    safe_next,
)
from cadence.web.throttle import SignInThrottle, client_address


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps, settings, secret = frame.deps, frame.settings, frame.secret
    zone = ZoneInfo(settings.timezone)
    throttle = SignInThrottle(deps.redis, deps.clock)

    def login_page(
        request: Request,
        *,
        http_status: int = 200,
        problem: str = "",
        notice: str = "",
        email: str = "",
        next_url: str = "/dashboard",
        headers: dict[str, str] | None = None,
    ) -> Response:
        cookie = frame.csrf_cookie(request)
        response = html(
            "web/dashboard/login.html",
            http_status,
            csrf=csrf_field(secret, cookie, LOGIN_PURPOSE),
            problem=problem,
            notice=notice,
            email=email,
            next=safe_next(next_url),
            zone_name=settings.timezone,
        )
        response.headers.update(headers or {})
        return frame.with_csrf_cookie(response, cookie)

    def address_of(request: Request) -> str:
        peer = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-for")
        return client_address(peer, forwarded, settings.trusted_proxy_hops)

    def wait_sentence(seconds: int) -> str:
        at = (deps.clock() + timedelta(seconds=seconds)).astimezone(zone)
        minutes = max(1, -(-seconds // 60))
        span = "a minute" if minutes == 1 else f"{minutes} minutes"
        return (
            f"Too many failed sign-ins from here. Try again in {span} "
            f"(at {at:%H:%M} {settings.timezone}), or ask your comms team to reset your password."
        )

    @routes.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/dashboard", signed_out: str = "") -> Response:
        """The sign-in form; someone already signed in goes straight on."""
        if frame.viewer_of(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        notice = "You have signed out." if signed_out else ""
        return login_page(request, notice=notice, next_url=next)

    @routes.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        email: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/dashboard",
    ) -> Response:
        """Check the password and start a session; the same answer for a wrong email or a
        wrong password, so the form does not tell who has an account."""
        try:
            frame.check_same_site(request, csrf, LOGIN_PURPOSE)
        except Refused as refused:
            return frame.problem_page(request, None, refused)
        email = email.strip()
        address = address_of(request)
        wait = throttle.retry_after(address, email)
        if wait > 0:
            return login_page(
                request,
                http_status=429,
                problem=wait_sentence(wait),
                email=email,
                next_url=next,
                headers={"Retry-After": str(wait)},
            )
        with session_scope(deps.sessions) as session:
            user = users.authenticate(session, email, password) if email and password else None
            cookie = (
                users.issue_session(session, secret, user, deps.clock())
                if user is not None
                else None
            )
        if cookie is None:
            if email:
                throttle.failed(address, email)
            return login_page(
                request,
                http_status=401,
                problem="That email and password do not match an active account.",
                email=email,
                next_url=next,
            )
        throttle.succeeded(address, email)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path="/",
            secure=frame.secure_cookie,
            httponly=True,
            samesite="lax",
        )
        return response

    @routes.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        """End the session on the server and forget the cookie. A form post with the CSRF
        field, so another site cannot sign people out."""
        try:
            frame.check_same_site(request, csrf, LOGOUT_PURPOSE)
        except Refused as refused:
            return frame.problem_page(request, frame.viewer_of(request), refused)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            with session_scope(deps.sessions) as session:
                users.end_session(session, secret, cookie)
        response = RedirectResponse("/login?signed_out=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=frame.secure_cookie, httponly=True)
        return response

    return routes
