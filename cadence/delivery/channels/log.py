"""The `log` channel: records the rendered text on the delivery and in the worker's log.

It reaches nobody, which makes it the channel for trying a cadence out and for the demo.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from cadence.delivery.channels.base import Outcome, Outgoing
from cadence.rendering import render

log = logging.getLogger("cadence.delivery.channels.log")


class LogChannel:
    name = "log"

    def send(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        outcomes = []
        for item in batch:
            text = render(
                "log/message.txt", person=item.recipient, title=item.title, body=item.body
            )
            log.info("to %s <%s>: %s", item.recipient.name, item.recipient.email, item.title)
            outcome = Outcome.sent(item.delivery_id, f"log:{item.delivery_id}")
            outcomes.append(replace(outcome, rendered=text))
        return outcomes
