"""Who may use Cadence: dashboard users, sessions and API tokens. Imports only `store/`
and the core modules."""
