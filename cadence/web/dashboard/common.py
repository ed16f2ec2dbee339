"""What the dashboard's page routes and its sign-in routes share: who is asking, the CSRF
cookie and cross-site checks, and the page and problem-page responses.

Sign-in is a server-side session (see `cadence.access.users`): the cookie carries a signed
random token, looked up on every request. Every form that changes state (sign in, sign out)
is protected like the acknowledgement pages: a double-submit CSRF cookie whose HMAC is in
the form, plus the browser's `Origin` and `Sec-Fetch-Site` when it sends them.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cadence.access import users
from cadence.access.users import Viewer
from cadence.errors import CadenceError
from cadence.rendering import render
from cadence.web.ack_pages import SECURITY_HEADERS, csrf_field, origin_of
from cadence.web.deps import WebDeps

SESSION_COOKIE = "cadence_session"
CSRF_COOKIE = "cadence_dashboard_csrf"
LOGIN_PURPOSE = "dashboard-login"
LOGOUT_PURPOSE = "dashboard-logout"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32,128}")

DASHBOARD_HEADERS = {
    **SECURITY_HEADERS,
    # Our own pages send a real Origin on their forms; nothing leaks to other sites.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
# The composing pages' live previews: our own scripts, asking only our own server; every
# other page runs no script at all.
SCRIPT_HEADERS = {
    **DASHBOARD_HEADERS,
    "Content-Security-Policy": (
        DASHBOARD_HEADERS["Content-Security-Policy"] + "; script-src 'self'; connect-src 'self'"
    ),
}


class Refused(Exception):
    """A request answered with the dashboard's problem page."""

    def __init__(self, status: int, heading: str, detail: str) -> None:
        super().__init__(heading)
        self.status, self.heading, self.detail = status, heading, detail


NOT_FOUND = (404, "Not found", "There is no such page, or it is not one you can see.")


def html(
    template: str,
    http_status: int = 200,
    *,
    headers: dict[str, str] = DASHBOARD_HEADERS,
    **context: Any,
) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=http_status, headers=headers)


def safe_next(target: str) -> str:
    """Only a path on this site's dashboard: never an open redirect to somewhere else."""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/dashboard")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/dashboard"
    return target


class Frame:
    """The helpers every dashboard route uses, built once per app from its deps."""

    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.secret = deps.settings.secret_key.get_secret_value()
        self.our_origin = origin_of(deps.settings.base_url)
        self.secure_cookie = urlsplit(deps.settings.base_url).scheme.lower() == "https"

    # -- cookies and cross-site checks ------------------------------------------------

    def csrf_cookie(self, request: Request) -> str:
        """Keep the browser's CSRF cookie, so every open dashboard tab's forms stay valid."""
        sent = request.cookies.get(CSRF_COOKIE, "")
        return sent if _COOKIE_VALUE.fullmatch(sent) else secrets.token_urlsafe(32)

    def with_csrf_cookie(self, response: Response, cookie: str) -> Response:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            path="/",
            secure=self.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    def check_same_site(self, request: Request, csrf: str, purpose: str) -> None:
        """Refuse a form post that did not come from one of our own pages."""
        fetch_site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        foreign_origin = (
            origin is not None and origin != "null" and origin.rstrip("/") != self.our_origin
        )
        if foreign_origin or fetch_site in ("cross-site", "same-site"):
            raise Refused(
                403,
                "This form was not sent from Cadence",
                "Cadence's forms only work from Cadence's own pages.",
            )
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expected = csrf_field(self.secret, cookie, purpose) if cookie else ""
        # As bytes: `compare_digest` refuses a str with non-ASCII characters, which a
        # hostile form can send.
        matches = hmac.compare_digest(expected.encode(), csrf.encode("utf-8", "replace"))
        if not cookie or not csrf or not matches:
            raise Refused(
                403,
                "Please try again",
                "This form could not be checked: it may have been open for a long time. "
                "Open the page again and resubmit it.",
            )

    # -- who is asking ----------------------------------------------------------------

    def viewer_of(self, request: Request) -> Viewer | None:
        """The signed-in viewer: one lookup of the cookie's session by its token hash."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        with self.deps.sessions() as session:
            try:
                user = users.read_session(session, self.secret, cookie, self.deps.clock())
                return users.viewer_of(user)
            except CadenceError:
                return None

    def to_login(self, request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method not in ("GET", "HEAD"):
            # A form's own path cannot be opened after signing in (it only takes posts):
            # back to the page the form was on, when the browser says it was one of ours.
            target = self._page_of_form(request)
        response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def signed_in(
        self,
        request: Request,
        handler: Callable[[Viewer], Response],
        *,
        allowed: Callable[[Viewer], bool] | None = None,
        purpose: str | None = None,
        csrf: str = "",
    ) -> Response:
        """What every route does around its own work: a signed-out browser goes to sign in;
        a viewer `allowed` refuses gets 404, as for a page that does not exist; a post
        (`purpose` given) must come from our own form; a `Refused` raised by the handler
        becomes the problem page."""
        viewer = self.viewer_of(request)
        if viewer is None:
            return self.to_login(request)
        try:
            if allowed is not None and not allowed(viewer):
                raise Refused(*NOT_FOUND)
            if purpose is not None:
                self.check_same_site(request, csrf, purpose)
            return handler(viewer)
        except Refused as refused:
            return self.problem_page(request, viewer, refused)

    def _page_of_form(self, request: Request) -> str:
        sent = request.headers.get("referer", "")
        try:
            ours = origin_of(sent) == self.our_origin
        except ValueError:  # a port that is not a number
            ours = False
        if not ours:
            return "/dashboard"
        referer = urlsplit(sent)
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))

    # -- responses --------------------------------------------------------------------

    def page(
        self,
        request: Request,
        viewer: Viewer,
        template: str,
        section: str,
        http_status: int = 200,
        *,
        scripts: bool = False,
        **context: Any,
    ) -> Response:
        """A dashboard page. Its forms get their CSRF fields from `form_csrf(purpose)` in
        the template, checked on post by `check_same_site` with the same purpose.
        `scripts` allows the page our own scripts (`/static/...`), for live previews."""
        cookie = self.csrf_cookie(request)

        def form_csrf(purpose: str) -> str:
            return csrf_field(self.secret, cookie, purpose)

        response = html(
            template,
            http_status,
            headers=SCRIPT_HEADERS if scripts else DASHBOARD_HEADERS,
            viewer=viewer,
            section=section,
            logout_csrf=form_csrf(LOGOUT_PURPOSE),
            form_csrf=form_csrf,
            zone_name=self.settings.timezone,
            **context,
        )
        return self.with_csrf_cookie(response, cookie)

    def problem_page(self, request: Request, viewer: Viewer | None, refused: Refused) -> Response:
        if viewer is None:
            return html(
                "web/dashboard/problem.html",
                refused.status,
                status=refused.status,
                heading=refused.heading,
                detail=refused.detail,
                zone_name=self.settings.timezone,
            )
        return self.page(
            request,
            viewer,
            "web/dashboard/problem.html",
            "",
            refused.status,
            status=refused.status,
            heading=refused.heading,
            detail=refused.detail,
        )
