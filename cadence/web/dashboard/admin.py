"""Comms administration: dashboard users, whether leaders' messages need approval, and the
signed-in comms user's own API tokens.

The same domain code as `cadence user ...` and `cadence token ...` (`cadence.access.users`,
`cadence.access.api_tokens`, `cadence.messages.approvals`). Comms users only: to a leader
every route here answers 404, like any page outside what they may see.

Every change is a form post with a CSRF field. Those that take something away (disabling a
user, resetting a password, revoking a token) first answer with a page saying what will
happen, whose button posts again with `confirmed`. A password or token made here is shown
once, in the answer to the post, and never put in a URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cadence.access import api_tokens, policy, users
from cadence.access.users import Viewer
from cadence.errors import InputError
from cadence.inputs import is_id
from cadence.messages import approvals
from cadence.store.db import session_scope
from cadence.store.models import User
from cadence.web.dashboard.common import NOT_FOUND, Frame, Refused
from cadence.web.dashboard.forms import account, sentence

ADD_PURPOSE = "admin-add-user"
DISABLE_PURPOSE = "admin-disable-user"
ENABLE_PURPOSE = "admin-enable-user"
PASSWORD_PURPOSE = "admin-password"
APPROVAL_PURPOSE = "admin-approval"
TOKEN_PURPOSE = "admin-token"
REVOKE_PURPOSE = "admin-revoke-token"
CONFIRMED = "yes"
ADD_FIELDS = ("email", "role", "person", "password")

# What a finished action says on the page it leads back to; `who` fills in the user.
DONE = {
    "added": "Added {who}: they can sign in now.",
    "disabled": "Disabled {who}: they are signed out and cannot sign in.",
    "enabled": "Enabled {who}: they can sign in again.",
    "password": "Set a new password for {who}; every browser signed in as them was signed out.",
    "approval-on": "Leaders' messages now wait for a comms user's approval.",
    "approval-off": "Leaders' messages are no longer held for approval.",
    "revoked": "Revoked the token: requests using it are refused from now on.",
}


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "\u2013"
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %Y, %H:%M}"


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps = frame.deps
    zone = ZoneInfo(frame.settings.timezone)

    def done(code: str, who: str = "") -> Response:
        query = {"done": code, **({"who": who} if who else {})}
        return RedirectResponse(f"/dashboard/admin?{urlencode(query)}", status_code=303)

    def show(
        request: Request,
        viewer: Viewer,
        http_status: int = 200,
        *,
        added: dict[str, str] | None = None,
        add_errors: dict[str, str] | None = None,
        token_name: str = "",
        token_error: str = "",
        problem: str = "",
        secret: dict[str, str] | None = None,
    ) -> Response:
        with deps.sessions() as session:
            user = account(session, viewer)
            people = users.list_users(session)
            required = approvals.requires_approval(session)
            tokens = [
                {
                    "id": t.id,
                    "name": t.name,
                    "created": _when(t.created_at, zone),
                    "last_used": _when(t.last_used_at, zone),
                    "revoked": t.revoked,
                }
                for t in api_tokens.list_tokens(session, user)
            ]
        # The query names the user acted on; only a user's own email is repeated on the page,
        # so a crafted link cannot put words of its own into a notice.
        who = request.query_params.get("who", "")
        if who not in {row["email"] for row in people}:
            who = "the user"
        notice = DONE.get(request.query_params.get("done", ""), "").format(who=who)
        comms_active = sum(1 for p in people if p["role"] == "comms" and p["active"])
        for row in people:
            row["added"] = _when(datetime.fromisoformat(row["created_at"]), zone)
            row["me"] = row["email"] == viewer.email
            # Disabling oneself or the last comms user is refused; the button is not offered.
            row["can_disable"] = (
                row["active"]
                and not row["me"]
                and not (row["role"] == "comms" and comms_active <= 1)
            )
        errors = {key: sentence(text) for key, text in (add_errors or {}).items()}
        summary = [(f"add-{k}", v) for k, v in errors.items()]
        # Every field named, so the template reads a missing one as empty.
        blank = dict.fromkeys(ADD_FIELDS, "")
        errors = {**blank, **errors}
        added = {**blank, "role": "leader", **(added or {})}
        if token_error:
            summary.append(("token-name", token_error))
        return frame.page(
            request,
            viewer,
            "web/dashboard/admin.html",
            "admin",
            http_status,
            people=people,
            required=required,
            tokens=tokens,
            added=added,
            add_errors=errors,
            token_name=token_name,
            token_error=token_error,
            summary=summary,
            notice=notice,
            problem=problem,
            secret=secret,
            min_password=users.MIN_PASSWORD_LENGTH,
        )

    def confirm(
        request: Request,
        viewer: Viewer,
        *,
        heading: str,
        lines: list[str],
        action: str,
        purpose: str,
        fields: dict[str, str],
        button: str,
    ) -> Response:
        return frame.page(
            request,
            viewer,
            "web/dashboard/admin_confirm.html",
            "admin",
            heading=heading,
            lines=lines,
            action=action,
            purpose=purpose,
            fields=fields,
            button=button,
        )

    def known_user(session: Session, email: str) -> User:
        try:
            return users.get_user(session, email)
        except InputError:
            raise Refused(404, "No such user", f"There is no user {email[:320]!r}.") from None

    @routes.get("/dashboard/admin", response_class=HTMLResponse)
    def admin_page(request: Request) -> Response:
        """Users, the approval setting, and the signed-in user's API tokens."""
        return frame.signed_in(
            request, lambda viewer: show(request, viewer), allowed=policy.sees_everything
        )

    @routes.post("/dashboard/admin/users", response_class=HTMLResponse)
    def add_user(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        email: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "",
        person: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        """Add a leader (linked to their directory entry) or a comms user, with a password
        typed here or, when none is, a temporary one shown once."""

        def act(viewer: Viewer) -> Response:
            generated = not password
            chosen = users.temporary_password() if generated else password
            person_email = person.strip() or None
            # Never sent back: the form is re-shown without the password typed.
            values = {
                "email": email.strip(),
                "role": role,
                "person": person.strip(),
            }
            with session_scope(deps.sessions) as session:
                problems = users.new_user_problems(session, email, role, chosen, person_email)
                if not problems:
                    user = users.create_user(
                        session, email, role, chosen, deps.clock(), person_email=person_email
                    )
                    created = user.email
            if problems:
                return show(request, viewer, 400, added=values, add_errors=problems)
            if not generated:
                return done("added", created)
            return show(
                request,
                viewer,
                secret={"kind": "password", "email": created, "value": chosen, "new": "yes"},
            )

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=ADD_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/users/disable", response_class=HTMLResponse)
    def disable_user(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        email: Annotated[str, Form()] = "",
        confirmed: Annotated[str, Form()] = "",
    ) -> Response:
        """Disable a user, after a page saying what that does."""

        def act(viewer: Viewer) -> Response:
            try:
                if confirmed != CONFIRMED:
                    # Tried and rolled back, so a refusal shows before asking to confirm.
                    with deps.sessions() as trial:
                        target_email = known_user(trial, email).email
                        users.set_active(trial, account(trial, viewer), target_email, False)
                        trial.rollback()
                    return confirm(
                        request,
                        viewer,
                        heading=f"Disable {target_email}?",
                        lines=[
                            "They are signed out of every browser at once and cannot sign in.",
                            "Their API tokens and calendar feed stop working.",
                            "What they queued or approved keeps their name; you can enable "
                            "them again later.",
                        ],
                        action="/dashboard/admin/users/disable",
                        purpose=DISABLE_PURPOSE,
                        fields={"email": target_email},
                        button="Disable",
                    )
                with session_scope(deps.sessions) as session:
                    known_user(session, email)
                    target_email = users.set_active(
                        session, account(session, viewer), email, False
                    ).email
            except InputError as exc:
                return show(request, viewer, 400, problem=f"Not disabled: {exc.summary}.")
            return done("disabled", target_email)

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=DISABLE_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/users/enable")
    def enable_user(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        email: Annotated[str, Form()] = "",
    ) -> Response:
        """Let a disabled user sign in again, with the password they had."""

        def act(viewer: Viewer) -> Response:
            with session_scope(deps.sessions) as session:
                known_user(session, email)
                target = users.set_active(session, account(session, viewer), email, True).email
            return done("enabled", target)

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=ENABLE_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/users/password", response_class=HTMLResponse)
    def reset_password(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        email: Annotated[str, Form()] = "",
        confirmed: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        """Reset a password: one typed here or, when none is, a temporary one shown once.
        The first post shows the form and what it does; the second, confirmed, changes it."""

        def form(viewer: Viewer, target: str, error: str = "", status: int = 200) -> Response:
            return frame.page(
                request,
                viewer,
                "web/dashboard/admin_password.html",
                "admin",
                status,
                email=target,
                error=error,
                min_password=users.MIN_PASSWORD_LENGTH,
            )

        def act(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                target = known_user(session, email).email
            if confirmed != CONFIRMED:
                return form(viewer, target)
            generated = not password
            chosen = users.temporary_password() if generated else password
            try:
                users.check_password(chosen)
            except InputError as exc:
                return form(viewer, target, sentence(exc.summary), 400)
            with session_scope(deps.sessions) as session:
                users.update_user(session, target, password=chosen)
            if not generated:
                return done("password", target)
            return show(request, viewer, secret={"kind": "password", "email": target,
                                                 "value": chosen})  # fmt: skip

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=PASSWORD_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/approval")
    def set_approval(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        require: Annotated[str, Form()] = "",
    ) -> Response:
        """Turn comms approval of leaders' messages on or off (`require` is on or off)."""

        def act(viewer: Viewer) -> Response:
            if require not in ("on", "off"):
                raise Refused(400, "Cannot change this", "Choose on or off.")
            with session_scope(deps.sessions) as session:
                approvals.set_requires_approval(
                    session, account(session, viewer), require == "on", deps.clock()
                )
            return done(f"approval-{require}")

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=APPROVAL_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/tokens", response_class=HTMLResponse)
    def create_token(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
    ) -> Response:
        """A new API token for the signed-in user, shown once."""

        def act(viewer: Viewer) -> Response:
            try:
                with session_scope(deps.sessions) as session:
                    row, token = api_tokens.create_token(
                        session, account(session, viewer), name, deps.clock()
                    )
                    label = row.name
            except InputError as exc:
                problem = "; ".join(exc.problems) or exc.summary
                return show(
                    request,
                    viewer,
                    400,
                    token_name=name[:200],
                    token_error=sentence(problem),
                )
            return show(request, viewer, secret={"kind": "token", "name": label, "value": token})

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=TOKEN_PURPOSE, csrf=csrf
        )

    @routes.post("/dashboard/admin/tokens/revoke", response_class=HTMLResponse)
    def revoke_token(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        token_id: Annotated[str, Form()] = "",
        confirmed: Annotated[str, Form()] = "",
    ) -> Response:
        """Revoke one of the signed-in user's tokens, after a page saying what that does."""

        def act(viewer: Viewer) -> Response:
            if not is_id(token_id):
                raise Refused(*NOT_FOUND)
            wanted = int(token_id)
            with session_scope(deps.sessions) as session:
                mine = {t.id: t for t in api_tokens.list_tokens(session, account(session, viewer))}
                token = mine.get(wanted)
                if token is None:
                    raise Refused(*NOT_FOUND)
                if token.revoked:
                    return show(request, viewer, 400, problem="That token is already revoked.")
                name = token.name
                if confirmed == CONFIRMED:
                    api_tokens.revoke(session, wanted, owner=account(session, viewer))
            if confirmed == CONFIRMED:
                return done("revoked")
            details: list[str] = [
                "Scripts and calendar apps using it are refused from the next request.",
                "It cannot be used again; make a new token if you still need one.",
            ]
            return confirm(
                request,
                viewer,
                heading=f"Revoke the token \u201c{name}\u201d?",
                lines=details,
                action="/dashboard/admin/tokens/revoke",
                purpose=REVOKE_PURPOSE,
                fields={"token_id": str(wanted)},
                button="Revoke",
            )

        return frame.signed_in(
            request, act, allowed=policy.sees_everything, purpose=REVOKE_PURPOSE, csrf=csrf
        )

    return routes
