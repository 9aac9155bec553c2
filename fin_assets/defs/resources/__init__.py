"""Dagster resources: one module per external system, plus the shared pipeline settings."""
