"""Launches: the cascade down the reporting tree before customers hear, the guard, leader
notes, corrections and withdrawals. Domain: imports `messages/`, `directory/`, `planning/`,
`store/` and the core modules, never channels, Celery, FastAPI or the CLI."""
