"""Pacing holds across processes: two real processes fetching at once from the stand-in, which
refuses calls closer than its interval with the burst-limit notice, as the API does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from fin_assets.lib import rate_limit
from fin_assets.lib.alpha_vantage.stand_in import StandInServer, StandInState
from fin_assets_tests.fixtures.batch import AS_OF, SECRET_KEY
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.xdist import waits_on_a_clock

# One fetching process, paced as production is: the plan's rate from the environment
# (ALPHAVANTAGE_REQUESTS_PER_MINUTE) and the default, machine-wide pacer; no retries, so that a
# burst notice fails it instead of being retried away. It waits for "go" so both start at once.
CHILD = """
import os, sys
from fin_assets.lib import rate_limit
from fin_assets.lib.alpha_vantage.client import AlphaVantageClient
client = AlphaVantageClient(
    api_key=os.environ["ALPHAVANTAGE_API_KEY"],
    base_url=os.environ["ALPHAVANTAGE_BASE_URL"],
    min_interval_seconds=rate_limit.min_interval_for(rate_limit.requests_per_minute_from_env()),
    max_retries=0,
)
print("ready", flush=True)
sys.stdin.readline()
for symbol in sys.argv[1:]:
    client.fetch_daily(symbol)
print("fetched", *sys.argv[1:], flush=True)
"""


def start_child(env: dict[str, str], symbols: list[str]) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *symbols],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return child


@waits_on_a_clock
def test_two_processes_share_the_pacing_and_never_hit_the_burst_limit(tmp_path):
    # The stand-in refuses calls less than 0.5 s apart; the plan says 60/min, i.e. 1.1 s
    # between calls: a 2x margin against scheduling jitter on a loaded machine, measured
    # where the calls arrive.
    state = StandInState(as_of=AS_OF, enforce_pacing=True, min_interval_seconds=0.5)
    with StandInServer(state=state) as server:
        env = {
            **os.environ,
            "ALPHAVANTAGE_API_KEY": SECRET_KEY,
            "ALPHAVANTAGE_BASE_URL": server.url,
            "ALPHAVANTAGE_REQUESTS_PER_MINUTE": "60",
            "FIN_RATE_LIMIT_DIR": str(tmp_path / "locks"),
        }
        children = [start_child(env, ["TSLA", "IBM"]), start_child(env, ["MSFT", "AAPL"])]
        try:
            for child in children:
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for child in children:  # release both at once
                child.stdin.write("go\n")
                child.stdin.flush()
            outcomes = [child.communicate(timeout=120) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    os.killpg(child.pid, 9)
                    child.wait()
        arrivals = sorted(state.arrivals)
        served = [r["symbol"] for r in state.requests]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err[-2000:]
        assert out.startswith("fetched")
    assert sorted(served) == ["AAPL", "IBM", "MSFT", "TSLA"]  # no retries, no burst notice
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap >= 0.5 for gap in gaps), gaps


def test_shared_pacer_spaces_threads_of_one_process_too(tmp_path):
    pacer = rate_limit.SharedPacer(tmp_path / "alpha_vantage.lock")
    stamps: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        pacer.wait(0.2)
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    stamps.sort()
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(gaps) == 3 and all(gap >= 0.19 for gap in gaps), gaps


def test_a_stamp_from_before_a_reboot_does_not_block(tmp_path):
    lock_file = tmp_path / "alpha_vantage.lock"
    lock_file.write_text(f"{time.monotonic() + 10_000:.6f}")  # ahead of this boot's clock
    started = time.monotonic()
    rate_limit.SharedPacer(lock_file).wait(5.0)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("value", "interval"), [("", 1.1), ("60", 1.1), ("75", 0.88), ("600", 0.11)]
)
def test_requests_per_minute_sets_the_interval(value, interval):
    rate = rate_limit.requests_per_minute_from_env({"ALPHAVANTAGE_REQUESTS_PER_MINUTE": value})
    assert rate_limit.min_interval_for(rate) == pytest.approx(interval)


@pytest.mark.parametrize("value", ["fast", "0", "-5"])
def test_a_bad_requests_per_minute_names_the_variable(value):
    with pytest.raises(ValueError, match="ALPHAVANTAGE_REQUESTS_PER_MINUTE"):
        rate_limit.requests_per_minute_from_env({"ALPHAVANTAGE_REQUESTS_PER_MINUTE": value})
