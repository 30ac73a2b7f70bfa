"""The HTTP API, the dashboard and the docs page (a regular package, so its templates ship)."""
