#!/usr/bin/env bash
# Quick start: install Cadence into ./.venv and run the demo on embedded defaults
# (SQLite ./cadence.db and an embedded Redis server). Ctrl-C stops it.
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/cadence demo "$@"
