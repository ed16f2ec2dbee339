"""Who is calling the JSON API: the user behind a bearer token, as the access policy sees
them (`cadence.access.policy` decides what they may see and target)."""

from cadence.access.users import Viewer

#: The caller of a request, detached from any session.
Caller = Viewer
