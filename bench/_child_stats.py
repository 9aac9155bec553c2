"""Measurement helpers for the benchmarked child processes (standard library only, so that
importing them costs the measured process next to nothing)."""


def peak_rss_mib() -> float:
    """This process's own high-water RSS (VmHWM; not inherited from the parent at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
