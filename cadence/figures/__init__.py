"""Figures: acknowledgement and reach measures, slices (by team, manager, zone...),
percentiles, the summary tables and their refresh, and delivery listings. Imports the
domain packages, `planning/`, `store/` and the core modules; never web, CLI or worker."""
