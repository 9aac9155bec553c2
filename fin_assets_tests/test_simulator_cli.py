"""`fin-assets simulate` / `simulator-job` arguments, and what the simulator says about a rate
the machine cannot reach. No broker needed: nonsense is refused before anything connects."""

from __future__ import annotations

import threading

import pytest

from fin_assets.cli import main
from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.lib.simulator.delivery import EventDelivery
from fin_assets.lib.simulator.events import EventGenerator
from fin_assets.lib.simulator.runner import SimulationSummary, Simulator
from fin_assets.lib.simulator.transactions_log import TransactionLog
from fin_assets_tests.fixtures.kafka import free_port_pair


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--rate", "nan"], "--rate: 'nan' must be a finite number > 0"),
        (["--rate", "0"], "--rate: '0' must be a finite number > 0"),
        (["--rate", "-1"], "--rate: '-1' must be a finite number > 0"),
        (["--rate", "inf"], "--rate: 'inf' must be a finite number > 0"),
        (["--rate", "1e9"], "--rate: '1e9' is above the maximum 1e+06"),
        (["--rate", "fast"], "--rate: 'fast' is not a number"),
        (["--duration", "0"], "--duration: '0' must be a finite number > 0"),
        (["--duration", "nan"], "--duration: 'nan' must be a finite number > 0"),
        (["--duration", "-5"], "--duration: '-5' must be a finite number > 0"),
        (["--partitions", "0"], "--partitions: '0' must be >= 1"),
        (["--flush-timeout", "nan"], "--flush-timeout: 'nan' must be a finite number >= 0"),
    ],
)
def test_nonsense_arguments_are_a_usage_error(capsys, arguments, complaint):
    with pytest.raises(SystemExit) as stopped:
        main(["simulate", *arguments])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fin-assets simulate"), err
    assert complaint in err, err


@pytest.mark.parametrize("arguments", [["--duration", "0"], ["--rate", "nan"]])
def test_simulator_job_arguments_are_checked_too(capsys, arguments):
    with pytest.raises(SystemExit) as stopped:
        main(["simulator-job", *arguments])
    assert stopped.value.code == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options",
    [
        {"rate_per_s": float("nan")},
        {"rate_per_s": 0},
        {"duration_s": 0},
        {"duration_s": float("nan")},
    ],
)
def test_the_simulator_itself_refuses_nonsense(tmp_path, options):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        Simulator(
            EventGenerator(["TSLA"], {"TSLA": 100.0}, "r"),
            EventDelivery("t", connect=lambda: None),
            TransactionLog(tmp_path / "log"),
            **options,
        )


def test_an_unreachable_rate_is_reported_as_achieved_versus_requested(tmp_path):
    """1,000,000 events/s requested: no Python loop gets there; the progress lines and the
    summary say what was reached. A real unreachable broker: nothing listens on the port."""
    dead = KafkaProducerResource(
        bootstrap_servers=f"127.0.0.1:{free_port_pair()}", topic="t", bootstrap_timeout_ms=300
    )
    progress: list[SimulationSummary] = []
    messages: list[str] = []
    simulator = Simulator(
        EventGenerator(["TSLA"], {"TSLA": 100.0}, "r", seed=1),
        EventDelivery("t", dead.connect, backlog_limit=1000, log=lambda _, m: messages.append(m)),
        TransactionLog(tmp_path / "logs_transacciones.log"),
        rate_per_s=1_000_000,
        duration_s=2.5,
        flush_timeout_s=0,
        progress_interval_s=1.2,
        on_progress=progress.append,
    )
    summary = simulator.run()
    assert summary.requested_rate_per_s == 1_000_000
    assert 0 < summary.achieved_rate_per_s < 900_000 and summary.rate_shortfall
    assert f"achieved {summary.achieved_rate_per_s:.0f} events/s of 1e+06 requested" in (
        summary.describe()
    )
    assert progress and "BELOW THE REQUESTED RATE" in progress[-1].describe()
    assert any(m.startswith("Requested 1e+06 events/s, achieved") for m in messages), messages
    # Nothing silently lost: every generated event is counted somewhere.
    assert summary.dropped + summary.unsent == summary.generated


def test_a_reachable_rate_is_not_flagged(tmp_path):
    dead = KafkaProducerResource(
        bootstrap_servers=f"127.0.0.1:{free_port_pair()}", topic="t", bootstrap_timeout_ms=300
    )
    stop = threading.Event()
    simulator = Simulator(
        EventGenerator(["TSLA"], {"TSLA": 100.0}, "r", seed=1),
        EventDelivery("t", dead.connect),
        TransactionLog(tmp_path / "logs_transacciones.log"),
        rate_per_s=20,
        duration_s=1.5,
        flush_timeout_s=0,
        stop=stop,
    )
    summary = simulator.run()
    assert not summary.rate_shortfall and "BELOW" not in summary.describe()
    assert summary.generated == pytest.approx(30, abs=3)
