"""Turning message definitions into occurrences with due times."""
