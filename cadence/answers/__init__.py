"""Answers: acknowledgements and questions, signed ack tokens, Slack request signatures,
and the follow-ups of an answer. Domain: imports `store/` and the core modules."""
