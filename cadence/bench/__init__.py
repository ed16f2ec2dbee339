"""Benchmarks (`cadence bench ...`) and the loopback stand-ins they and the tests use.

`slack_standin` serves the Slack Web API methods Cadence calls (it needs only aiohttp);
`smtp_standin` is an SMTP server built on aiosmtpd, a test dependency. Nothing at run time
imports this package: only `cadence bench` does, lazily. This package imports none of its
modules, so that a benchmark runs without the test extras.
"""
