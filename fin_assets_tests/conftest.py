"""Shared fixtures. Each flow keeps its service fixtures in its own plugin module."""

pytest_plugins: list[str] = []
