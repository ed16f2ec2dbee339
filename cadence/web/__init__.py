"""The web app: Slack interactions, acknowledgement pages, health and metrics."""
