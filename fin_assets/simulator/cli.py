"""Subcommands of the simulator flow.

- `fin-assets simulate`: the simulator without Dagster, for a bounded time; prints a summary.
  Exit 0 when every generated event was acknowledged by Kafka, 2 when only some were, 1 when
  none could be delivered (broker unreachable the whole time).
- `fin-assets simulator-job`: transaction_simulator_job through Dagster (execute_in_process)
  against the instance in DAGSTER_HOME when it is set, else an ephemeral one. Exit 1 when the
  run fails (the op fails when nothing could be delivered).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from fin_assets import config


def add_commands(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate", help="run the transaction simulator outside Dagster for a bounded time"
    )
    simulate.add_argument("--rate", type=float, default=1.0, help="events per second (1)")
    simulate.add_argument("--duration", type=float, default=10.0, help="seconds to run (10)")
    simulate.add_argument("--seed", type=int, default=None, help="seed: reproducible stream")
    simulate.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", config.DEFAULT_KAFKA_BOOTSTRAP_SERVERS),
        help="Kafka brokers (KAFKA_BOOTSTRAP_SERVERS, default %(default)s)",
    )
    simulate.add_argument(
        "--topic",
        default=os.environ.get("FIN_KAFKA_TOPIC", config.DEFAULT_KAFKA_TOPIC),
        help="topic (FIN_KAFKA_TOPIC, default %(default)s)",
    )
    simulate.add_argument("--partitions", type=int, default=3, help="when creating the topic")
    simulate.set_defaults(handler=run_simulate)

    job = commands.add_parser(
        "simulator-job", help="run transaction_simulator_job through Dagster for a bounded time"
    )
    job.add_argument("--duration", type=float, default=20.0, help="seconds to run (20)")
    job.add_argument("--rate", type=float, default=None, help="events per second")
    job.add_argument("--seed", type=int, default=None)
    job.set_defaults(handler=run_simulator_job)


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_simulate(args: argparse.Namespace) -> int:
    from fin_assets.resources.kafka import KafkaProducerResource
    from fin_assets.resources.settings import PipelineSettings
    from fin_assets.simulator.session import build_simulator

    # Plain values, not EnvVars: outside Dagster nothing would resolve them.
    settings = PipelineSettings(
        data_dir=os.environ.get("FIN_DATA_DIR") or config.DEFAULT_DATA_DIR,
        symbols=os.environ.get("FIN_SYMBOLS") or config.DEFAULT_SYMBOLS,
    )
    kafka = KafkaProducerResource(
        bootstrap_servers=args.bootstrap_servers, topic=args.topic, partitions=args.partitions
    )
    simulator = build_simulator(
        settings=settings,
        kafka=kafka,
        run_id=f"cli-{uuid.uuid4()}",
        rate_per_s=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        log=lambda level, message: _print(f"[{level}] {message}"),
        on_progress=lambda summary: _print(f"[progress] {summary.describe()}"),
    )
    _print(f"Simulating {args.rate:g} events/s for {args.duration:g} s to {kafka.describe()}")
    summary = simulator.run()
    print(f"Summary: {summary.describe()}")
    print(f"Events by type: {summary.by_type}")
    print(f"Transactions log: {settings.transactions_log_path}")
    if summary.last_error and not summary.all_delivered:
        print(f"Last Kafka error: {summary.last_error}")
    if summary.all_delivered:
        return 0
    return 1 if summary.acknowledged == 0 else 2


def run_simulator_job(args: argparse.Namespace) -> int:
    from fin_assets.definitions import defs
    from fin_assets.instance import CONSOLE_INFO_LOGS, local_instance
    from fin_assets.simulator.job import run_config

    job = defs.resolve_job_def("transaction_simulator_job")
    run_cfg = {
        **run_config(duration_s=args.duration, rate_per_s=args.rate, seed=args.seed),
        **CONSOLE_INFO_LOGS,
    }
    with local_instance() as instance:
        result = job.execute_in_process(run_config=run_cfg, instance=instance, raise_on_error=False)
    outcome = "success" if result.success else "FAILED"
    print(f"transaction_simulator_job run {result.run_id}: {outcome}")
    return 0 if result.success else 1
