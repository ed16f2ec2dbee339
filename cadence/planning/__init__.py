"""Time, without I/O: recurrence in each zone, follow-up times within working hours, and
launch timelines. At the bottom: imports only `store/` models and the core modules."""
