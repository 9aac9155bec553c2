"""Pure tests of the event generator, the start prices, the pacing and the transactions log."""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from fin_assets.lib.simulator.events import (
    MAX_PRICE,
    MIN_PRICE,
    EventGenerator,
    EventWeights,
    GeneratorSettings,
)
from fin_assets.lib.simulator.pacing import Pacer
from fin_assets.lib.simulator.prices import DEFAULT_START_PRICE, start_prices
from fin_assets.lib.simulator.runner import (
    MAX_BATCH,
    NonFiniteValueError,
    batch_limit,
    encode_event,
)
from fin_assets.lib.simulator.transactions_log import TransactionLog, format_line, read_event_ids
from fin_assets_tests.helpers.paths import REPO

SCHEMA_PATH = REPO / "fin_assets/lib/simulator/event.schema.json"
SYMBOLS = ["TSLA", "IBM", "AAPL"]
PRICES = {"TSLA": 250.0, "IBM": 180.0, "AAPL": 200.0}
OCCURRENCE_FIELDS = ("event_id", "ts", "run_id")


@pytest.fixture(scope="module")
def event_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def generate(count: int, seed: int | None = 7, run_id: str = "run-a", **settings) -> list[dict]:
    generator = EventGenerator(
        SYMBOLS, PRICES, run_id=run_id, seed=seed, settings=GeneratorSettings(**settings)
    )
    return [generator.next_event() for _ in range(count)]


def contents(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in OCCURRENCE_FIELDS} for e in events]


def test_same_seed_same_contents_new_ids():
    first, second = generate(500, seed=42, run_id="r1"), generate(500, seed=42, run_id="r2")
    assert contents(first) == contents(second)
    ids = {e["event_id"] for e in first} | {e["event_id"] for e in second}
    assert len(ids) == 1000  # unique across runs: usable as the Elasticsearch document id
    assert contents(generate(500, seed=43)) != contents(first)


def test_every_event_matches_the_schema(event_validator):
    events = generate(3000)
    for event in events:
        event_validator.validate(event)
    assert {e["event_type"] for e in events} == {"trade", "price_alert", "api_error"}
    assert [e["seq"] for e in events] == list(range(3000))


def test_schema_rejects_incoherent_events(event_validator):
    trade = next(e for e in generate(50) if e["event_type"] == "trade")
    assert not event_validator.is_valid({**trade, "level": "ERROR"})
    assert not event_validator.is_valid({**trade, "ts": "2026-01-01T00:00:00Z"})
    assert not event_validator.is_valid({k: v for k, v in trade.items() if k != "amount"})


def test_trade_amount_is_quantity_times_price():
    for event in generate(2000):
        if event["event_type"] == "trade":
            assert event["amount"] == round(event["quantity"] * event["price"], 2)


def test_alerts_report_moves_that_the_trades_show():
    events = generate(20000, alert_threshold_pct=3.0)
    alerts = [i for i, e in enumerate(events) if e["event_type"] == "price_alert"]
    assert len(alerts) > 100
    checked_before = checked_after = 0
    for index in alerts:
        alert = events[index]
        symbol = alert["symbol"]
        assert abs(alert["change_pct"]) >= alert["threshold_pct"] == 3.0
        assert (alert["change_pct"] > 0) == (alert["direction"] == "UP")
        expected = (alert["new_price"] - alert["previous_price"]) / alert["previous_price"] * 100
        assert alert["change_pct"] == pytest.approx(expected, abs=0.001)
        same_symbol = [e for e in events if e["symbol"] == symbol]
        position = same_symbol.index(alert)
        before = [e for e in same_symbol[:position] if e["event_type"] in ("trade", "price_alert")]
        after = [e for e in same_symbol[position + 1 :] if e["event_type"] != "api_error"]
        if before and before[-1]["event_type"] == "trade":
            assert before[-1]["price"] == alert["previous_price"]
            checked_before += 1
        if after and after[0]["event_type"] == "trade":
            # The next trade continues from the new price (one small random-walk step away).
            assert after[0]["price"] == pytest.approx(alert["new_price"], rel=0.01)
            checked_after += 1
        if index > 300:
            break
    assert checked_before > 5 and checked_after > 5


def test_weights_shape_the_mix():
    only_trades = generate(500, weights=EventWeights(1, 0, 0))
    assert {e["event_type"] for e in only_trades} == {"trade"}
    mix = Counter(e["event_type"] for e in generate(20000, weights=EventWeights(2, 1, 1)))
    assert mix["trade"] / 20000 == pytest.approx(0.5, abs=0.02)
    assert mix["price_alert"] / 20000 == pytest.approx(0.25, abs=0.02)
    assert mix["api_error"] / 20000 == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError):
        EventWeights(0, 0, 0)


def test_start_prices_from_the_latest_close(tmp_path):
    csv_path = tmp_path / "Datos_financieros.csv"
    csv_path.write_text(
        "fecha,simbolo,apertura,maximo,minimo,cierre,volumen\n"
        "2026-05-04,TSLA,1,1,1,250.5,10\n"
        "2026-05-05,TSLA,1,1,1,260.25,10\n"
        "2026-05-01,TSLA,1,1,1,240.0,10\n"
        "2026-05-05,IBM,1,1,1,not-a-number,10\n"
    )
    assert start_prices(["TSLA", "IBM"], csv_path) == {"TSLA": 260.25, "IBM": DEFAULT_START_PRICE}
    assert start_prices(["TSLA"], tmp_path / "missing.csv") == {"TSLA": DEFAULT_START_PRICE}
    generator = EventGenerator(["TSLA"], {"TSLA": 260.25}, "r", seed=1)
    first_trade = next(e for e in iter(generator.next_event, None) if e["event_type"] == "trade")
    assert first_trade["price"] == pytest.approx(260.25, rel=0.01)


def test_transactions_log_has_one_line_per_event(tmp_path):
    events = generate(20)
    log = TransactionLog(tmp_path / "logs_transacciones.log")
    for event in events:
        log.write(event)
    log.close()
    lines = (tmp_path / "logs_transacciones.log").read_text().splitlines()
    assert lines == [format_line(e) for e in events]
    assert read_event_ids(tmp_path / "logs_transacciones.log") == [e["event_id"] for e in events]
    for line, event in zip(lines, events, strict=True):
        for part in (event["event_type"], event["symbol"], event["level"], event["message"]):
            assert part in line


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacing_is_steady():
    clock = FakeClock()
    pacer = Pacer(4.0, clock=clock)
    waits = []
    for _ in range(5):
        waits.append(pacer.seconds_until_due())
        clock.now += waits[-1]  # the caller waits exactly as told
    assert waits == [0.0, 0.25, 0.25, 0.25, 0.25]
    assert Pacer(0.2, clock=clock).interval == 5.0  # below 1 event/s
    assert Pacer(5000, clock=clock).interval == pytest.approx(0.0002)


def test_pacing_resets_instead_of_bursting_after_falling_behind():
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock)
    pacer.seconds_until_due()
    clock.now += 3.0  # a 3 s stall: 30 slots missed
    assert pacer.seconds_until_due() == 0.0  # one event now...
    assert pacer.seconds_until_due() == pytest.approx(0.1)  # ...then the normal interval
    assert pacer.resets == 1
    with pytest.raises(ValueError):
        Pacer(0)


# -- non-finite values can neither be seeded nor generated nor encoded --------------------


def test_bad_seeds_are_named_with_file_and_line_and_fall_back(tmp_path):
    csv_path = tmp_path / "Datos_financieros.csv"
    csv_path.write_text(
        "fecha,simbolo,apertura,maximo,minimo,cierre,volumen\n"
        "2026-05-04,TSLA,1,1,1,250.5,10\n"
        "2026-05-05,TSLA,1,1,1,nan,10\n"
        "2026-05-05,IBM,1,1,1,1.7e308,10\n"
        "2026-05-05,AAPL,1,1,1,inf,10\n"
        "2026-05-05,MSFT,1,1,1,-3,10\n"
    )
    messages: list[tuple[str, str]] = []
    prices = start_prices(
        ["TSLA", "IBM", "AAPL", "MSFT"], csv_path, log=lambda *entry: messages.append(entry)
    )
    # TSLA: its latest close is NaN, the one before is usable; the others have none.
    assert prices == {
        "TSLA": 250.5,
        "IBM": DEFAULT_START_PRICE,
        "AAPL": DEFAULT_START_PRICE,
        "MSFT": DEFAULT_START_PRICE,
    }
    text = "\n".join(message for _, message in messages)
    for line, symbol, value in ((3, "TSLA", "nan"), (4, "IBM", "1.7e308"), (5, "AAPL", "inf")):
        assert f"{csv_path}, line {line}: {symbol} 2026-05-05: cierre '{value}'" in text, text
    assert f"{csv_path}, line 6: MSFT" in text
    assert "IBM: no usable close" in text and "TSLA: no usable close" not in text
    assert {level for level, _ in messages} == {"warning"}


@pytest.mark.parametrize("seed_price", [1.7e308, 1e12, 0.0001])
def test_prices_stay_finite_and_bounded_whatever_the_seed(event_validator, seed_price):
    generator = EventGenerator(["TSLA"], {"TSLA": seed_price}, "r", seed=3)
    for number in range(3000):
        event = generator.next_event()
        if number % 10 == 0:  # the schema check is slow; every kind shows up in 300 events
            event_validator.validate(event)
        _, value = encode_event(event)
        assert orjson.loads(value) == event  # orjson would have written NaN/inf as null
        for name in ("price", "amount", "previous_price", "new_price", "change_pct"):
            if name in event:
                assert math.isfinite(event[name]), event
        for name in ("price", "previous_price", "new_price"):
            if name in event:
                assert MIN_PRICE <= event[name] <= MAX_PRICE, event


def test_a_non_finite_start_price_is_refused():
    with pytest.raises(ValueError, match="start price of TSLA"):
        EventGenerator(["TSLA"], {"TSLA": float("nan")}, "r")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_encoding_refuses_nan_and_infinity(bad):
    event = {**generate(1)[0], "price": bad}
    with pytest.raises(NonFiniteValueError, match=r"price=(nan|inf|-inf).*no NaN or Infinity"):
        encode_event(event)
    assert event["event_id"] in str(pytest.raises(NonFiniteValueError, encode_event, event).value)


def test_ids_are_uuid4_unique_and_timestamps_current():
    events = generate(20000, seed=1)
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[:2000])
    stamps = {e["ts"] for e in events}
    now = datetime.now(UTC)
    for stamp in stamps:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs((now - moment).total_seconds()) < 120
    assert orjson.loads(encode_event(events[0])[1]) == events[0]


def test_pacer_refuses_nonsense_rates():
    for rate in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            Pacer(rate)


def test_a_failing_log_write_is_reported_not_raised():
    """/dev/full: a real device on which every write fails with ENOSPC."""
    log = TransactionLog(Path("/dev/full"))
    try:
        assert log.write(generate(1)[0]) is False
        assert log.last_error is not None and log.last_error.errno == errno.ENOSPC
    finally:
        log.close()


# -- batches at full speed (issue 11): one log write per batch, pacing unchanged below ------


def test_take_due_keeps_the_schedule_of_one_slot_at_a_time():
    """With a batch limit of 1 (every rate up to 1,000 events/s) the schedule is exactly the
    one seconds_until_due keeps: the same waits, the same reset after a stall."""
    clock = FakeClock()
    start = clock.now
    pacer = Pacer(4.0, clock=clock)
    taken = []
    for _ in range(5):
        count, wait = pacer.take_due(1)
        if count == 0:
            clock.now += wait
            count, wait = pacer.take_due(1)
        taken.append((clock.now - start, count))
    assert taken == [(0.0, 1), (0.25, 1), (0.5, 1), (0.75, 1), (1.0, 1)]
    clock.now += 3.0  # a stall: the missed slots are dropped, never burst
    assert pacer.take_due(1) == (1, 0.0)
    assert pacer.take_due(1) == (0, pytest.approx(0.25))
    assert pacer.resets == 1
    assert [batch_limit(rate) for rate in (1, 200, 1000, 1999)] == [1, 1, 1, 1]


def test_take_due_batches_at_most_the_slots_of_one_millisecond():
    clock = FakeClock()
    pacer = Pacer(20_000.0, clock=clock)  # 20 slots per millisecond
    limit = batch_limit(20_000.0)
    assert limit == 20
    assert pacer.take_due(limit) == (1, 0.0)  # the first slot is now
    clock.now += 0.0005  # 10 slots have come due
    assert pacer.take_due(limit) == (10, 0.0)
    clock.now += 1.0  # far behind: one batch of `limit`, the rest dropped
    assert pacer.take_due(limit) == (limit, 0.0)
    assert pacer.resets == 1
    assert pacer.take_due(limit) == (0, pytest.approx(1 / 20_000))
    assert batch_limit(1e9) == MAX_BATCH


def test_write_many_is_one_write_and_keeps_whole_lines_after_a_short_write(tmp_path):
    """A real file size limit (RLIMIT_FSIZE, in a child process) cuts the one write(2) of a
    batch inside its fourth line: the three whole lines stay, the fragment is removed, the
    count says 3."""
    events = generate(6)
    lines = [format_line(event) + "\n" for event in events]
    limit = sum(len(line.encode()) for line in lines[:3]) + 40
    path = tmp_path / "logs_transacciones.log"
    events_file = tmp_path / "events.json"
    events_file.write_bytes(orjson.dumps(events))
    child = f"""
import pathlib, resource, signal, sys
import orjson
from fin_assets.lib.simulator.transactions_log import TransactionLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a short write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
log = TransactionLog(pathlib.Path(sys.argv[1]))
print(log.write_many(orjson.loads(pathlib.Path(sys.argv[2]).read_bytes())), log.last_error)
"""
    done = subprocess.run(
        [sys.executable, "-c", child, str(path), str(events_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 "), done.stdout
    assert "3 of 6 lines whole" in done.stdout and "partial line was removed" in done.stdout
    assert path.read_text() == "".join(lines[:3])

    whole = TransactionLog(tmp_path / "whole.log")
    try:
        assert whole.write_many(events) == 6
    finally:
        whole.close()
    assert (tmp_path / "whole.log").read_text() == "".join(lines)
