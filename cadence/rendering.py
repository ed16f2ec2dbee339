"""Rendering Cadence's own templates (Slack blocks, emails, the log line, web pages).

They live in the repository's `templates/` and are installed as the package
`cadence.templates`, so they are found through the package whether Cadence runs from a
checkout or from a wheel.

These templates are ours, so they use a plain Jinja2 environment; message bodies written by
users go through `cadence.messages.personalise` instead. `.html` templates are autoescaped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

TEMPLATES_PACKAGE = "cadence.templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=PackageLoader(TEMPLATES_PACKAGE, ""),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml")),
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
