"""Cadence: an internal-communications cadence scheduler."""

__version__ = "0.1.0"
