"""The web app: the app factory, acknowledgement pages, Slack interactions, the dashboard,
the JSON API, health and metrics. On top: may import anything but the CLI and bench."""
