"""The staff directory: people, teams, the reporting tree, CSV/YAML import, and audiences
(who a message is for). Imports only `store/`, `planning/` and the core modules."""
