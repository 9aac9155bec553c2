"""Dagster definitions, one folder per flow, loaded by fin_assets/definitions.py.

Each folder's definitions.py is what the loader reads (dagster's defs-folder rule: a folder with a
definitions.py is loaded through it alone); the modules beside it hold the assets, checks,
schedules, sensors, jobs and resources it assembles."""
