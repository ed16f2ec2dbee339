"""Core messages: authoring and edits, wordings, personalisation, approvals, planning
occurrences from cadences, schedule previews, and the mark on a message that needs attention.
Domain: imports `directory/`, `planning/`, `store/` and the core modules, never channels,
Celery, FastAPI or the CLI."""
