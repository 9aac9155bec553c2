"""The fast test tier, in one process and in parallel workers, side by side in one run.

    .venv/bin/python bench/bench_test_tiers.py [--rounds 2] [--workers auto,0]

Each round runs the fast tier (the README's command: every test without a service marker) once
per worker setting, alternating the order between rounds so that neither always runs first:
`auto` is the project's default (`-n auto`, two workers per core, conftest.py), `0` one process,
a number that many workers. Per run: wall time, CPU (user + system of pytest and every process
it waited for) and the pass/fail counts pytest printed.

Results: bench/results/test-tiers-<stamp>.json. Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import re
import sys

from _common import PYTHON, REPO_DIR, header, log, measure, median, write_results

FAST_TIER = "not (kafka or elasticsearch or postgres or logstash or browser or stack or cluster)"
SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected)")


def run_tier(workers: str) -> dict:
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", FAST_TIER]
    command += ["-n", workers]
    result = measure(command, cwd=REPO_DIR, timeout=1200, keep_output=True)
    tail = (result.pop("stdout_tail", "") or "") + (result.pop("stderr_tail", "") or "")
    counts = {kind: int(n) for n, kind in SUMMARY.findall(tail)} if tail else {}
    result.update(workers=workers, counts=counts)
    if result["returncode"] != 0:
        result["output_tail"] = tail[-2000:]
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="auto,0", help="comma-separated -n values")
    args = parser.parse_args(argv[1:])
    settings = [w.strip() for w in args.workers.split(",") if w.strip()]
    payload = header("test-tiers", argv)
    runs: list[dict] = []
    for round_number in range(args.rounds):
        order = settings if round_number % 2 == 0 else list(reversed(settings))
        for workers in order:
            log(f"round {round_number + 1}: -n {workers}")
            run = run_tier(workers)
            run["round"] = round_number + 1
            log(
                f"  -n {workers}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, "
                f"exit {run['returncode']}"
            )
            runs.append(run)
    payload["runs"] = runs
    payload["summary"] = {
        workers: {
            "wall_s_median": median([r["wall_s"] for r in runs if r["workers"] == workers]),
            "cpu_s_median": median([r["cpu_s"] for r in runs if r["workers"] == workers]),
            "all_passed": all(r["returncode"] == 0 for r in runs if r["workers"] == workers),
        }
        for workers in settings
    }
    path = write_results("test-tiers", payload)
    log(f"results: {path}")
    for workers, figures in payload["summary"].items():
        log(
            f"-n {workers}: median {figures['wall_s_median']:.1f} s wall, "
            f"{figures['cpu_s_median']:.1f} s CPU, all passed: {figures['all_passed']}"
        )
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
