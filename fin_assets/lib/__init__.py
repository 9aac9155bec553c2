"""Plain Python, no Dagster: the Alpha Vantage client, price rules and storage, the simulator's
events and delivery, settings, outbound HTTP, the file store, calendars and symbols.

Nothing here imports dagster or anything above it (fin_assets_tests/test_layers.py)."""
