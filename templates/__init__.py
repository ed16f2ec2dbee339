"""Cadence's own templates (Slack blocks, emails, web pages), installed as `cadence.templates`."""
