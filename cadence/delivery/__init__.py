"""Getting messages to people: the dispatcher's tick and the outbox claims, sending batches
through `channels/` (Slack, email, log) with `formatting/`, pacing and the broker in Redis,
and the beat with its lock. May import the domain packages, `figures/` for the tick's
summary refresh, `planning/`, `store/` and the core modules; never web, CLI or worker."""
