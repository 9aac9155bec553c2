"""Plain helpers the tests share, one module per need, none of them a test or a fixture.

Why a package of its own: test modules (test_*.py) are what pytest collects, so one test
module importing another couples two files that should fail or move independently, and fixture
plugins (fixtures/*.py, listed in conftest.py) should hold fixtures, not libraries.
What several tests need lives here instead, in one copy:

- polling: `wait_until`, the one poll-until-deadline loop.
- processes: process groups, descendants, start times and command lines (psutil, not /proc).
- http_servers: the local HTTP servers the tests play the far side with (loopback, hostile).
- elastic_recording_server: a fake Elasticsearch/Kibana that records requests (a process).
- graphql: the Dagster GraphQL client of the UI tests.
- dagster_ui / browser: the `dagster dev` under test and the Playwright helpers.
- the data modules (alpha_vantage, batch_results, search_data, simulator_cli): inputs and
  readers that more than one test module uses.
"""
