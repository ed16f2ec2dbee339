"""The JSON API under `/api`: `routes` (the endpoints), `schemas` (bodies), `errors`
(problems), `callers` (tokens and scope), `convert` (between bodies and the domain)."""

from cadence.web.api.routes import router

__all__ = ["router"]
