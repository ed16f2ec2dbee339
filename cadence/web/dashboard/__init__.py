"""The dashboard: acknowledgement figures for comms users and team leaders, one module per
concern: `pages` (the routes), `sign_in` (signing in and out), `common` (what both share),
`views` (what each page shows), `tables` (presentation), `filters` (query parameters); what
a viewer may see is `cadence.access.policy`."""

from cadence.web.dashboard.common import CSRF_COOKIE, SESSION_COOKIE
from cadence.web.dashboard.pages import router

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "router"]
