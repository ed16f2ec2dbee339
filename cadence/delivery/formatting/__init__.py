"""Turning a personalised Markdown body into what each channel sends."""

from cadence.messages.markdown import to_html, to_mrkdwn, to_text

__all__ = ["to_html", "to_mrkdwn", "to_text"]
