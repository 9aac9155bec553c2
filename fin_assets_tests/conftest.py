"""Shared fixtures. Each flow keeps its fixtures in its own plugin module."""

pytest_plugins: list[str] = [
    "fin_assets_tests.batch_fixtures",
    "fin_assets_tests.elasticsearch_fixtures",
    "fin_assets_tests.ui_fixtures",
    "fin_assets_tests.kafka_fixtures",
    "fin_assets_tests.postgres_fixtures",
    "fin_assets_tests.dagster_stack_fixtures",
    "fin_assets_tests.logstash_fixtures",
]
