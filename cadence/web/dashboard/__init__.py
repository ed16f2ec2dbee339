"""The dashboard: acknowledgement figures for comms users and team leaders, one module per
concern: `pages` (the routes), `views` (what each page shows), `tables` (presentation),
`filters` (query parameters); what a viewer may see is `cadence.access.policy`."""

from cadence.web.dashboard.pages import CSRF_COOKIE, SESSION_COOKIE, router

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "router"]
