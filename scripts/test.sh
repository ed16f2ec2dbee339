#!/usr/bin/env bash
# Install Cadence with its test tools into ./.venv and run the test suite.
# Embedded defaults unless CADENCE_TEST_DATABASE_URL / CADENCE_REDIS_URL point elsewhere.
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m pytest "$@"
