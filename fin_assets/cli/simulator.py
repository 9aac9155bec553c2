"""Subcommands of the simulator flow.

- `fin-assets simulate`: the simulator without Dagster, for a bounded time; prints a summary.
  SIGTERM and Ctrl-C (SIGINT) stop it like the end of `--duration`: it stops generating,
  flushes Kafka for up to `--flush-timeout` seconds and prints the summary. Exit status:
  0 every generated event was acknowledged by Kafka and written to the transactions log;
  1 none could be delivered (broker unreachable the whole time); 3 some were not (failed,
  dropped, unsent or not logged: the summary says which); 2 bad arguments (argparse usage)
  or unusable Kafka security settings. Kafka settings come from the environment as for
  `simulator-job` (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE, ...).
- `fin-assets simulator-job`: transaction_simulator_job through Dagster (execute_in_process)
  against the instance in DAGSTER_HOME when it is set, else an ephemeral one. Exit 1 when the
  run fails (the op fails when nothing could be delivered).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import uuid
from collections.abc import Callable

from fin_assets.lib import config, settings

# Above this no Python producer keeps up (see docs/benchmarks.md); refused as a typo.
MAX_RATE_PER_S = settings.MAX_RATE_PER_S
EXIT_ALL_DELIVERED = 0
EXIT_NONE_DELIVERED = 1
EXIT_SOME_NOT_DELIVERED = 3
# As argparse's usage errors: the settings cannot work, nothing was attempted.
EXIT_BAD_SETTINGS = 2


def positive_number(maximum: float = math.inf) -> Callable[[str], float]:
    """argparse type: a finite number > 0 (and <= maximum); NaN, inf, 0, negatives refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is above the maximum {maximum:g}")
        return value

    parse.__name__ = "positive number"  # argparse names the type in its messages
    return parse


def non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def add_commands(commands: argparse._SubParsersAction) -> None:
    rate = positive_number(MAX_RATE_PER_S)
    duration = positive_number()
    simulate = commands.add_parser(
        "simulate", help="run the transaction simulator outside Dagster for a bounded time"
    )
    simulate.add_argument("--rate", type=rate, default=1.0, help="events per second (1)")
    simulate.add_argument("--duration", type=duration, default=10.0, help="seconds to run (10)")
    simulate.add_argument("--seed", type=int, default=None, help="seed: reproducible stream")
    simulate.add_argument(
        "--flush-timeout",
        type=non_negative_number,
        default=10.0,
        help="seconds to wait for Kafka's acknowledgements at the end (10)",
    )
    simulate.add_argument(
        "--bootstrap-servers",
        # Not read here: a bad Kafka variable must not break the parser of every command.
        default=None,
        help="Kafka brokers (KAFKA_BOOTSTRAP_SERVERS, default "
        f"{config.DEFAULT_KAFKA_BOOTSTRAP_SERVERS})",
    )
    simulate.add_argument(
        "--topic",
        default=None,
        help=f"topic (FIN_KAFKA_TOPIC, default {config.DEFAULT_KAFKA_TOPIC})",
    )
    simulate.add_argument(
        "--partitions",
        type=positive_int,
        default=None,
        help="when creating the topic (FIN_KAFKA_PARTITIONS, default 3)",
    )
    simulate.set_defaults(handler=run_simulate)

    job = commands.add_parser(
        "simulator-job", help="run transaction_simulator_job through Dagster for a bounded time"
    )
    job.add_argument("--duration", type=duration, default=20.0, help="seconds to run (20)")
    job.add_argument("--rate", type=rate, default=None, help="events per second")
    job.add_argument("--seed", type=int, default=None)
    job.set_defaults(handler=run_simulator_job)


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def exit_status(summary) -> int:
    if getattr(summary, "refused", None):  # a topic that would delete the stream: a setting
        return EXIT_BAD_SETTINGS
    if summary.generated and summary.acknowledged == 0:
        return EXIT_NONE_DELIVERED
    if summary.all_delivered and not summary.unlogged:
        return EXIT_ALL_DELIVERED
    return EXIT_SOME_NOT_DELIVERED


def run_until_done_or_signalled(simulator) -> str:
    """Runs `simulator` in a worker thread; SIGTERM / SIGINT set its stop event (the signal
    handler only sets an Event the main thread never holds). Returns what ended it."""
    ended_by: list[str] = []
    finished = threading.Event()
    failure: list[BaseException] = []

    def on_signal(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if not ended_by:
            ended_by.append(name)
            _print(
                f"[info] {name}: stopping; flushing Kafka for up to {simulator.flush_timeout_s:g} s"
            )
        else:
            _print(f"[info] {name} again: still flushing (at most {simulator.flush_timeout_s:g} s)")
        simulator.stop.set()

    def work() -> None:
        try:
            simulator.run()
        except BaseException as exc:  # re-raised by the main thread
            failure.append(exc)
        finally:
            finished.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = threading.Thread(target=work, name="transaction-simulator", daemon=True)
        worker.start()
        while not finished.wait(timeout=0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise failure[0]
    return ended_by[0] if ended_by else "duration reached"


def kafka_for_simulate(args: argparse.Namespace, values: settings.KafkaSettings):
    """The settings `simulator-job` gets (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*,
    KAFKA_SSL_CAFILE, FIN_KAFKA_PARTITIONS, ...) as plain values, as outside Dagster nothing
    would resolve EnvVars; the command's flags win over the environment. Raises
    KafkaSecurityConfigError for settings that cannot work together, before anything
    connects."""
    from fin_assets.defs.resources.kafka import KafkaProducerResource

    password = values.sasl_password.get_secret_value() if values.sasl_password else None
    kafka = KafkaProducerResource(
        bootstrap_servers=args.bootstrap_servers or values.bootstrap_servers,
        topic=args.topic or values.topic,
        partitions=args.partitions or values.partitions,
        replication_factor=values.replication_factor,
        security_protocol=values.security_protocol,
        sasl_mechanism=values.sasl_mechanism,
        sasl_username=values.sasl_username,
        sasl_password=password,
        ssl_cafile=values.ssl_cafile,
    )
    kafka.producer_config()  # checks the security settings (the run's setup does the same)
    return kafka


def run_simulate(args: argparse.Namespace) -> int:
    try:  # a bad variable is refused before Dagster is even imported
        common = settings.common()
        kafka_values = settings.kafka()
    except settings.SettingsError as exc:  # names the variable, never a secret value
        _print(f"[error] Unusable settings: {exc}")
        return EXIT_BAD_SETTINGS

    from fin_assets.defs.resources.settings import PipelineSettings
    from fin_assets.defs.simulator.session import build_simulator
    from fin_assets.lib.kafka_security import KafkaSecurityConfigError

    try:
        kafka = kafka_for_simulate(args, kafka_values)
    except KafkaSecurityConfigError as exc:  # names the variable at fault, never the password
        _print(f"[error] Unusable Kafka security settings: {exc}")
        return EXIT_BAD_SETTINGS
    pipeline = PipelineSettings(data_dir=common.data_dir, symbols=",".join(common.symbols))
    simulator = build_simulator(
        settings=pipeline,
        kafka=kafka,
        run_id=f"cli-{uuid.uuid4()}",
        rate_per_s=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        flush_timeout_s=args.flush_timeout,
        log=lambda level, message: _print(f"[{level}] {message}"),
        on_progress=lambda summary: _print(f"[progress] {summary.describe()}"),
    )
    _print(f"Simulating {args.rate:g} events/s for {args.duration:g} s to {kafka.describe()}")
    ended_by = run_until_done_or_signalled(simulator)
    summary = simulator.summary
    print(f"Summary ({ended_by}): {summary.describe()}")
    print(f"Events by type: {summary.by_type}")
    print(f"Transactions log: {pipeline.transactions_log_path}")
    if summary.last_error and not summary.all_delivered:
        print(f"Last Kafka error: {summary.last_error}")
    if summary.unlogged:
        print(f"Transactions log error: {summary.log_error}")
    sys.stdout.flush()
    return exit_status(summary)


def run_simulator_job(args: argparse.Namespace) -> int:
    from fin_assets.cli.instance import CONSOLE_INFO_LOGS, local_instance
    from fin_assets.definitions import build_definitions
    from fin_assets.defs.simulator.job import run_config

    job = build_definitions().resolve_job_def("transaction_simulator_job")
    run_cfg = {
        **run_config(duration_s=args.duration, rate_per_s=args.rate, seed=args.seed),
        **CONSOLE_INFO_LOGS,
    }
    with local_instance() as instance:
        result = job.execute_in_process(run_config=run_cfg, instance=instance, raise_on_error=False)
    outcome = "success" if result.success else "FAILED"
    print(f"transaction_simulator_job run {result.run_id}: {outcome}")
    return 0 if result.success else 1
