#!/usr/bin/env bash
# Install Cadence with its test tools into ./.venv and run the test suite.
# Embedded defaults unless CADENCE_TEST_DATABASE_URL / CADENCE_REDIS_URL point elsewhere.
source "$(dirname "$0")/_venv.sh"
# The dashboard's browser tests drive Debian's Chromium through Playwright.
if [ ! -x "${CADENCE_TEST_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "the browser tests need Chromium: apt-get install chromium chromium-driver" >&2
    echo "(or set CADENCE_TEST_CHROMIUM to a Chromium binary)" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
