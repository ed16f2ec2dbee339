"""Cadence's own scripts and styles for the web pages, read from the package
(`templates/web/static/`), so a wheel install serves exactly what a checkout does.

Only names made of lower-case letters, digits and dashes ending in `.js` or `.css` are
looked up; anything else is a 404 without touching the file system.
"""

from __future__ import annotations

import re
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from cadence.web.ack_pages import SECURITY_HEADERS

_NAME = re.compile(r"[a-z0-9-]{1,64}\.(js|css)")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


def static_text(name: str) -> str | None:
    """The asset's text, or None when there is no asset of that name."""
    if not _NAME.fullmatch(name):
        return None
    resource = files("cadence.templates").joinpath("web", "static", name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def router() -> APIRouter:
    routes = APIRouter(tags=["static"])

    @routes.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        text = static_text(name)
        if text is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        kind = name.rsplit(".", 1)[1]
        return Response(
            text,
            media_type=_TYPES[kind],
            headers={
                **SECURITY_HEADERS,
                # Short: a new release's script must reach open tabs within minutes.
                "Cache-Control": "public, max-age=300",
            },
        )

    return routes
