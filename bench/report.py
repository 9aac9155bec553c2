"""Tables (Markdown) and the plot for docs/benchmarks.md, from bench/results/*-latest.json.

.venv/bin/python bench/report.py            # prints the tables; writes docs/benchmarks-batch.png
.venv/bin/python bench/report.py --results bench/results/batch-symbols-<stamp>.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_DIR, RESULTS_DIR  # noqa: E402

PLOT = REPO_DIR / "docs" / "benchmarks-batch.png"
SOAK_PLOT = REPO_DIR / "docs" / "benchmarks-soak.png"


def load(name: str, explicit: list[str]) -> dict | None:
    for path in explicit:
        data = json.loads(Path(path).read_text())
        if data.get("benchmark") == name:
            return data
    latest = RESULTS_DIR / f"{name}-latest.json"
    return json.loads(latest.read_text()) if latest.exists() else None


def med(summary: dict, key: str, metric: str) -> float:
    return summary[key][metric]["median"]


def spread(summary: dict, key: str, metric: str, fmt: str) -> str:
    m = summary[key][metric]
    return f"{m['median']:{fmt}} ({m['min']:{fmt}}–{m['max']:{fmt}})"


def value_range(data: dict, key: str, fmt: str = ".2f") -> str:
    values = [r[key] for runs in data["runs"].values() for r in runs if key in r]
    if not values:
        return "n/a"
    mid = sorted(values)[len(values) // 2]
    return f"{min(values):{fmt}}–{max(values):{fmt}} (median {mid:{fmt}})"


def machine_line(data: dict) -> str:
    m = data["machine"]
    p = m["packages"]
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python "
        f"{m['python']}; dagster {p['dagster']}, pandas {p['pandas']}, requests {p['requests']}, "
        f"kafka-python {p['kafka-python']} (crc32c {p['crc32c']}), confluent-kafka "
        f"{p['confluent-kafka']} (librdkafka {p.get('librdkafka')})"
    )


def batch_table(data: dict, x_key: str, x_label: str) -> str:
    s = data["summary"]
    xs = data[x_key]
    lines = [
        f"| {x_label} | CSV rows | variant | wall s | CPU s | peak RSS MiB | work after start-up s "
        "| wall ratio |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for x in xs:
        plain = med(s, f"plain/{x}", "wall_s")
        for variant in data.get("variants", ("plain", "dagster")):
            key = f"{variant}/{x}"
            rows = int(med(s, key, "child.csv_rows"))
            ratio = med(s, key, "wall_s") / plain
            lines.append(
                f"| {x} | {rows} | {variant} | {spread(s, key, 'wall_s', '.2f')} "
                f"| {spread(s, key, 'cpu_s', '.2f')} | {med(s, key, 'peak_rss_mib'):.0f} "
                f"| {med(s, key, 'child.run_s'):.3f} | {ratio:.2f}× |"
            )
    return "\n".join(lines)


def fit_table(data: dict, unit: str) -> str:
    fit = data["fit"]
    per = f"per_{unit}"
    others = [v for v in data.get("variants", ("plain", "dagster")) if v != "plain"]
    lines = [
        "| fit of the medians | plain | " + " | ".join(f"{v} | {v} / plain" for v in others) + " |",
        "|---|---:|" + "---:|---:|" * len(others),
    ]
    for metric, label, fmt in (
        ("wall_s", "wall time s", ".3f"),
        ("cpu_s", "CPU time s", ".3f"),
        ("child.run_s", "work after start-up s", ".4f"),
        ("peak_rss_mib", "peak RSS MiB", ".1f"),
    ):
        p = fit["plain"][metric]
        for part, name in (("intercept", "fixed (intercept)"), (per, f"per {unit} (slope)")):
            cells = []
            for variant in others:
                d = fit[variant][metric]
                # A ratio to a fixed cost of about nothing says nothing: leave it out.
                meaningful = part != "intercept" or abs(p[part]) >= 0.05
                ratio = f"{d[part] / p[part]:.2f}×" if meaningful and p[part] else "–"
                cells.append(f"{d[part]:{fmt}} | {ratio}")
            lines.append(f"| {label}: {name} | {p[part]:{fmt}} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dagster_phases(data: dict) -> str:
    s = data["summary"]
    lines = [
        "| symbols | interpreter + imports s | definitions s | instance s | job run s "
        "| process exit and start-up s (wall − in-process) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for x in data["sizes"]:
        key = f"dagster/{x}"
        if key not in s:
            continue
        rest = med(s, key, "wall_s") - med(s, key, "child.in_process_s")
        lines.append(
            f"| {x} | {med(s, key, 'child.import_s'):.2f}"
            f" | {med(s, key, 'child.definitions_s'):.3f}"
            f" | {med(s, key, 'child.instance_s'):.2f} | {med(s, key, 'child.run_s'):.2f}"
            f" | {rest:.2f} |"
        )
    return "\n".join(lines)


def background(data: dict, key: str) -> str:
    values = [r["background_cpu_pct"] for r in data["runs"][key] if "background_cpu_pct" in r]
    return f"{sorted(values)[len(values) // 2]:.0f}" if values else "n/a"


def kafka_tables(data: dict) -> str:
    s = data["summary"]
    bare = med(s, "kafka-python/defaults", "child.rate_per_s")
    out = [
        "| producer (product settings: acks=all, idempotent, linger_ms=5, batch_size=16384) "
        "| events/s, median (min–max) | / bare kafka-python | CPU s per run | peak RSS MiB "
        "| background CPU % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "sim/defaults": "**simulator** (generation, JSON, log line, send, acks counted)",
        "kafka-python/defaults": "bare kafka-python, pre-made records of the same bytes",
        "confluent/defaults": "bare confluent-kafka (librdkafka)",
        "kafka-python/+ event generation": "bare kafka-python + the simulator's generation + "
        "JSON inline",
        "kafka-python/+ event generation + log line": "bare kafka-python + generation + JSON + "
        "log line inline",
        "sim/what-if: ids without syscall + buffered log": "what-if: simulator, event_id without "
        "os.urandom, block-buffered log",
        "sim/what-if: confluent-kafka backend": "what-if: simulator on a confluent-kafka backend",
    }
    for key, label in labels.items():
        if key not in s:
            continue
        rate = s[key]["child.rate_per_s"]
        out.append(
            f"| {label} | {rate['median']:,.0f} ({rate['min']:,.0f}–{rate['max']:,.0f}) "
            f"| {rate['median'] / bare:.2f} | {med(s, key, 'cpu_s'):.1f} "
            f"| {med(s, key, 'peak_rss_mib'):.0f} | {background(data, key)} |"
        )
    knobs = [k.split("/", 1)[1] for k in s if k.startswith("sim/") and f"kafka-python/{k[4:]}" in s]
    out += [
        "",
        "| setting (others at product defaults) | simulator events/s | vs simulator defaults "
        "| bare kafka-python msg/s | vs bare defaults | simulator / bare "
        "| background CPU % (sim, bare) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    sim0 = med(s, "sim/defaults", "child.rate_per_s")
    for name in knobs:
        sim = med(s, f"sim/{name}", "child.rate_per_s")
        kp = med(s, f"kafka-python/{name}", "child.rate_per_s")
        out.append(
            f"| {name} | {sim:,.0f} | {sim / sim0:.2f}× | {kp:,.0f} | {kp / bare:.2f}× "
            f"| {sim / kp:.2f} "
            f"| {background(data, f'sim/{name}')}, {background(data, f'kafka-python/{name}')} |"
        )
    return "\n".join(out)


def latency_table(data: dict) -> str:
    lines = [
        "| run | generated | acknowledged | latency p50 ms | p99 ms | max ms | drift p50 ms "
        "| drift p99 ms | drift max ms | interval min–max ms | RSS MiB start → end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for index, run in enumerate(data["runs"], 1):
        lat, drift, gap, mem = run["latency_ms"], run["drift_ms"], run["interval_ms"], run["memory"]
        start = mem.get("after_2_min_first_mib", mem["first_mib"])
        lines.append(
            f"| {index} | {run['sent']} | {run['acknowledged']} | {lat['p50']:.2f} "
            f"| {lat['p99']:.2f} | {lat['max']:.2f} | {drift['p50']:.2f} | {drift['p99']:.2f} "
            f"| {drift['max']:.2f} | {gap['min']:.1f}–{gap['max']:.1f} "
            f"| {start:.1f} → {mem['last_mib']:.1f} |"
        )
    m = data["median"]
    lines.append(
        f"| **median** | {m['sent']:.0f} | {m['acknowledged']:.0f} | {m['latency_ms.p50']:.2f} "
        f"| {m['latency_ms.p99']:.2f} | {m['latency_ms.max']:.2f} | {m['drift_ms.p50']:.2f} "
        f"| {m['drift_ms.p99']:.2f} | {m['drift_ms.max']:.2f} "
        f"| {m['interval_ms.min']:.1f}–{m['interval_ms.max']:.1f} | |"
    )
    return "\n".join(lines)


def soak_table(data: dict) -> str:
    lines = [
        "| process | RSS at 2 min MiB | RSS at end MiB | max MiB | slope after 2 min MiB/hour "
        "| events acknowledged |",
        "|---|---:|---:|---:|---:|---|",
    ]
    core = data["core"]
    result = core.get("result") or {}
    for name, label, acked in (
        ("core", "simulator core (build_simulator's parts)", f"{result.get('acknowledged')}"
         f" / {result.get('sent')}"),
        ("job", "`fin-assets simulator-job` (Dagster, execute_in_process)",
         "; ".join(s.split(" - ")[-1] for s in data["job"]["summary_line"])),
    ):  # fmt: skip
        mem = data[name]["memory"]
        lines.append(
            f"| {label} | {mem.get('after_2_min_first_mib', float('nan')):.1f} "
            f"| {mem['last_mib']:.1f} | {mem['max_mib']:.1f} "
            f"| {mem.get('slope_mib_per_hour', float('nan')):+.2f} | {acked} |"
        )
    return "\n".join(lines)


def plot(symbols: dict | None, history: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ((symbols, "sizes", "symbols"), (history, "years", "years")) if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (data, key, _) in zip(axes[0], panels, strict=True):
        s = data["summary"]
        xs = data[key]
        for variant, colour in (
            ("dagster", "tab:blue"),
            ("dagster-ephemeral", "tab:green"),
            ("plain", "tab:orange"),
        ):
            if f"{variant}/{xs[0]}" not in s:
                continue
            for metric, style, what in (
                ("wall_s", "-o", "wall"),
                ("cpu_s", "--s", "CPU"),
                ("child.run_s", ":^", "work"),
            ):
                ys = [med(s, f"{variant}/{x}", metric) for x in xs]
                lows = [s[f"{variant}/{x}"][metric]["min"] for x in xs]
                highs = [s[f"{variant}/{x}"][metric]["max"] for x in xs]
                name = {"dagster": "Dagster", "dagster-ephemeral": "Dagster in-memory"}
                ax.plot(xs, ys, style, color=colour, label=f"{name.get(variant, variant)} {what}")
                ax.fill_between(xs, lows, highs, color=colour, alpha=0.12)
        if key == "sizes":
            ax.set_title("Batch run vs number of symbols (100-day history)")
            ax.set_xlabel("symbols")
        else:
            ax.set_title(f"Batch run, {data['symbols']} symbols, vs history length")
            ax.set_xlabel("years of daily history per symbol (≈252 rows/year)")
        ax.set_ylabel("s per run (median; band min–max)\nwork = after start-up")
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.35)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"\n(plot written to {PLOT.relative_to(REPO_DIR)})", file=sys.stderr)


def plot_soak(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name, label in (
        ("core", "simulator core"),
        ("job", "fin-assets simulator-job (Dagster)"),
    ):
        samples = data[name]["rss_samples"]
        ax.plot([t / 60 for t, _ in samples], [r for _, r in samples], label=label)
    ax.set_xlabel("minutes at 1 event/s")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Simulator memory over a 30-minute run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(SOAK_PLOT, dpi=110)
    print(f"(plot written to {SOAK_PLOT.relative_to(REPO_DIR)})", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", nargs="*", default=[], help="result files to use")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()

    symbols = load("batch-symbols", args.results)
    history = load("batch-history", args.results)
    kafka = load("kafka", args.results)
    latency = load("sim-latency", args.results)
    latency0 = load("sim-latency-linger0", args.results)
    soak = load("sim-soak", args.results)
    for title, data in (
        ("batch-symbols", symbols),
        ("batch-history", history),
        ("kafka", kafka),
        ("sim-latency", latency),
        ("sim-latency-linger0", latency0),
        ("sim-soak", soak),
    ):
        if not data:
            continue
        print(f"\n## {title}: {data['command']}")
        print(f"started {data['started']}, finished {data.get('finished')}")
        print(f"machine: {machine_line(data)}")
        if "git" in data:
            dirty = data["git"]["uncommitted_product_files"]
            print(f"commit {data['git']['commit']}; uncommitted product files: {dirty or 'none'}")
        print(f"load average at start {data['load_at_start']}, at end {data.get('load_at_end')}")
        print(f"CPU busy at start (all cores, 2 s): {data.get('cpu_busy_pct_at_start', 0):.0f} %")
        if "runs" in data and isinstance(data["runs"], dict):
            print(f"1-minute load average when each run ended: {value_range(data, 'load_1m')}")
            busy = value_range(data, "background_cpu_pct", ".0f")
            print(f"CPU busy (all cores) in the 0.5 s before each run: {busy} %")
        print(f"busy at start: {', '.join(data['busy_at_start']) or 'nothing'}\n")
        if title == "batch-symbols":
            print(batch_table(data, "sizes", "symbols"))
            print()
            print(fit_table(data, "symbol"))
            print()
            print(dagster_phases(data))
        elif title == "batch-history":
            print(batch_table(data, "years", "years"))
            print()
            print(fit_table(data, "year"))
        elif title == "kafka":
            print(kafka_tables(data))
        elif title.startswith("sim-latency"):
            print(latency_table(data))
        else:
            print(soak_table(data))
    if not args.no_plot and (symbols or history):
        plot(symbols, history)
    if not args.no_plot and soak:
        plot_soak(soak)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
