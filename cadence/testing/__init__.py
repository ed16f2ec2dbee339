"""Stand-ins for the services Cadence talks to, speaking the real protocols on loopback.

`slack_standin` serves the Slack Web API methods Cadence calls (the fan-out benchmark uses it,
so it ships with the package and needs only aiohttp); `smtp_standin` is an SMTP server built
on aiosmtpd, a test dependency. Import the module you need: this package imports neither, so
that the benchmark runs without the test extras.
"""
