"""scripts/postgres.sh on the host (a free port): the server the Dagster stack test runs in its
namespace. The password travels by environment only."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from fin_assets_tests.fixtures.postgres import POSTGRES_SCRIPT, PostgresServer, run_on_host
from fin_assets_tests.helpers.secrets import scan_command_lines, scan_files


def test_server_serves_the_database_with_the_password(postgres_server: PostgresServer):
    ((version,),) = postgres_server.query("SHOW server_version")
    assert version.startswith("15.")
    ((database, user),) = postgres_server.query("SELECT current_database(), current_user")
    assert (database, user) == (postgres_server.database, postgres_server.user)
    assert postgres_server.is_running()
    postgres_server.start()  # a second start is a no-op


def test_password_is_not_in_argv_or_in_any_state_file(postgres_server: PostgresServer):
    password = postgres_server.password
    # Every process as `ps` shows it, the server's own among them.
    scan_command_lines(password).assert_clean(expect=["postgres"])
    # pg_authid keeps a SCRAM verifier, never the password itself.
    scan_files(postgres_server.state_dir / "pg", password).assert_clean(
        expect=["postgresql.conf", "global/"]
    )


def test_a_wrong_password_is_refused(postgres_server: PostgresServer):
    wrong = PostgresServer(
        postgres_server.state_dir, postgres_server.port, postgres_server.user,
        postgres_server.database, postgres_server.password + "x",
    )  # fmt: skip
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        wrong.query("SELECT 1")


def test_script_names_what_is_missing(tmp_path: Path):
    tmp_path.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PG_DIR": str(tmp_path / "pg"), "PG_PORT": "1"}
    result = run_on_host([str(POSTGRES_SCRIPT), "start"], env)
    assert result.returncode != 0 and "PG_PASSWORD" in result.stderr
    assert run_on_host([str(POSTGRES_SCRIPT), "status"], env).returncode == 3
    usage = run_on_host([str(POSTGRES_SCRIPT), "restart"], env)
    assert usage.returncode == 2 and "usage" in usage.stderr
