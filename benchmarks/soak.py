"""Soak the service on loopback: a bounded stream of master jobs through `automix serve`.

Starts a server with its workers (in its own process group, stopped at the end), keeps
``--concurrency`` jobs in flight until ``--jobs`` were submitted or ``--max-seconds`` passed,
then prints jobs per minute, errors (refused submissions and failed jobs), job latency and the
peak resident memory of the server and its workers (sampled from /proc). Usage::

    python benchmarks/soak.py [--jobs 40] [--concurrency 4] [--workers 1] [--seconds 4]
                              [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _songs import synthetic_song  # noqa: E402

from automix.service.client import LocalServer  # noqa: E402

PAGE_KIB = 4


def group_rss_mib(session_id: int) -> tuple[float, float]:
    """(sum, largest) resident memory in MiB of the processes in session ``session_id``."""
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            sizes.append(int(fields[21]) * PAGE_KIB / 1024)  # field 24: rss in pages
    return sum(sizes), max(sizes, default=0.0)


def soak(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    song = synthetic_song(args.seconds, folder / "song.wav").read_bytes()
    latencies: list[float] = []
    errors: list[str] = []
    peak = {"sum": 0.0, "max": 0.0}
    lock = threading.Lock()
    submitted = 0
    deadline = time.monotonic() + args.max_seconds
    with LocalServer(folder / "data", "--workers", str(args.workers)) as srv:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                total, largest = group_rss_mib(srv.proc.pid)
                peak["sum"], peak["max"] = max(peak["sum"], total), max(peak["max"], largest)

        def client() -> None:
            nonlocal submitted
            while time.monotonic() < deadline:
                with lock:
                    if submitted >= args.jobs:
                        return
                    submitted += 1
                t0 = time.monotonic()
                resp = srv.submit({"reference": "pop"}, [("file", "song.wav", song)])
                if resp.status != 202:
                    errors.append(f"submit: HTTP {resp.status}")
                    continue
                job = srv.wait(resp.headers["location"],
                               timeout_s=max(1.0, deadline - time.monotonic()))
                if job["status"] == "done":
                    latencies.append(time.monotonic() - t0)
                else:
                    errors.append(f"job {job['status']}: {job.get('error')}")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        clients = [threading.Thread(target=client) for _ in range(args.concurrency)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        wall = time.monotonic() - t0
        stop.set()
        sampler.join()
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    return {"submitted": submitted, "done": len(latencies), "errors": len(errors),
            "wall_s": wall, "jobs_per_min": 60 * len(latencies) / wall,
            "latency_p50_s": statistics.median(latencies) if latencies else float("nan"),
            "latency_max_s": max(latencies, default=float("nan")),
            "peak_rss_total_mib": peak["sum"], "peak_rss_process_mib": peak["max"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40, help="jobs to submit (bounded)")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs in flight")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the test song")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time bound")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automix-soak-") as tmp:
        stats = soak(args, Path(tmp))
    print(f"| workers | jobs done | errors | jobs/min | p50 latency s | max latency s | "
          f"peak RSS total MiB | peak RSS process MiB |\n|---|---|---|---|---|---|---|---|\n"
          f"| {args.workers} | {stats['done']}/{stats['submitted']} | {stats['errors']} | "
          f"{stats['jobs_per_min']:.1f} | {stats['latency_p50_s']:.2f} | "
          f"{stats['latency_max_s']:.2f} | {stats['peak_rss_total_mib']:.0f} | "
          f"{stats['peak_rss_process_mib']:.0f} |")
    sys.exit(1 if stats["errors"] else 0)


if __name__ == "__main__":
    main()
