"""The JSON API's errors: every refusal is an RFC 9457 problem with the problems named."""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from cadence.access.policy import NotInTree
from cadence.errors import InputError
from cadence.inputs import load_json
from cadence.messages import approvals
from cadence.web.api.schemas import (
    Problem,
    ValidationFailure,
)

# ---------------------------------------------------------------------------------------
# Errors


@dataclass
class ApiError(Exception):
    status: int
    detail: str
    problems: list[str] = field(default_factory=list)
    headers: dict[str, str] | None = None


def _problem(
    status: int, detail: str, problems: list[str], headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(detail=detail, problems=problems).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


class _ProblemRoute(APIRoute):
    """Turns domain errors into `{"detail", "problems"}` answers. A route class rather than
    app-wide exception handlers, so the API's error format stays the API's own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                await _check_json_body(request)
                return await handle(request)
            except ApiError as exc:
                return _problem(exc.status, exc.detail, exc.problems, exc.headers)
            except approvals.NotAllowed as exc:
                return _problem(403, str(exc), [])
            except NotInTree as exc:
                return _problem(403, exc.summary, exc.problems)
            except approvals.NotPending as exc:
                return _problem(409, exc.summary, exc.problems)
            except InputError as exc:
                return _problem(422, exc.summary, exc.problems)

        return handler


async def _check_json_body(request: Request) -> None:
    """Refuse, before pydantic reads it, a JSON body nested absurdly deep or holding NaN,
    Infinity or NUL: the first would exhaust the parser's recursion, the second is not
    JSON (and would make the validation answer unprintable), the third cannot be stored."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()  # Starlette keeps it for the route to read again
    if body and "json" in request.headers.get("content-type", "json"):
        load_json(body)


# OpenAPI `responses` entries, shared by the routes below.
Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: {"model": Problem, "description": "No token, or not a valid one."}}
FORBIDDEN: Responses = {
    403: {"model": Problem, "description": "Not allowed for this user's role or tree."}
}
NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "No such message visible to this user."}
}
INVALID: Responses = {
    422: {
        "model": Problem | ValidationFailure,
        "description": "Refused by the same checks as the CLI, one line per problem. A body "
        "that is not the right shape gets FastAPI's usual validation answer instead.",
    }
}
