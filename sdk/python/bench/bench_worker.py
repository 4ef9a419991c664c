"""Jobs per second through the Python worker at concurrency 16 for a no-op handler.

Starts its own ``errand serve`` (temporary data directory, free port), enqueues ``--jobs``
jobs in batches of 1,000, then times the drain: from the worker's start until the queue
counts every job succeeded. Prints one line per worker flavour.

    python bench/bench_worker.py --errand-bin target/release/errand --jobs 20000
    python bench/bench_worker.py --url http://127.0.0.1:7878      # an already running server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from contextlib import contextmanager

from errand_client import AsyncWorker, ErrandClient, JobSpec, Worker

REPO = Path(__file__).resolve().parents[3]


@contextmanager
def errand_server(binary: str) -> Iterator[str]:
    """A server of our own; yields its URL, stops it by PID."""
    with tempfile.TemporaryDirectory(prefix="errand-bench-") as data:
        log = open(Path(data) / "server.log", "wb")
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().decode()
            if "http://" not in first:
                raise SystemExit(f"errand did not start: {first!r}")
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
            yield "http://" + first.split("http://", 1)[1].strip()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fill(client: ErrandClient, queue: str, jobs: int) -> None:
    for start in range(0, jobs, 1000):
        n = min(1000, jobs - start)
        client.enqueue_many([JobSpec("noop", {"i": start + i}, queue=queue) for i in range(n)])


def drained(client: ErrandClient, queue: str, jobs: int, timeout: float) -> float:
    """Seconds from now until every job of the queue succeeded."""
    t0 = time.perf_counter()
    while client.get_queue(queue)["counts"]["succeeded"] < jobs:
        if time.perf_counter() - t0 > timeout:
            raise SystemExit("timed out draining the queue")
        time.sleep(0.02)
    return time.perf_counter() - t0


def bench_threads(url: str, jobs: int, concurrency: int, settle_batch_max: int = 1000) -> float:
    queue = f"bench-threads-{os.getpid()}"
    with ErrandClient(url) as client:
        fill(client, queue, jobs)
        w = Worker(
            url, queue, concurrency=concurrency, max_claim=concurrency, settle_batch_max=settle_batch_max
        )
        w.register("noop", lambda ctx: None)
        t0 = time.perf_counter()
        w.start()
        drained(client, queue, jobs, 600)
        elapsed = time.perf_counter() - t0
        w.stop(grace_s=1, timeout=30)
        print(f"  {w.stats}", flush=True)
    return jobs / elapsed


def bench_asyncio(url: str, jobs: int, concurrency: int, settle_batch_max: int = 1000) -> float:
    queue = f"bench-asyncio-{os.getpid()}"
    with ErrandClient(url) as client:
        fill(client, queue, jobs)

        async def noop(ctx: Any) -> None:
            return None

        async def main() -> float:
            w = AsyncWorker(
                url, queue, concurrency=concurrency, max_claim=concurrency, settle_batch_max=settle_batch_max
            )
            w.register("noop", noop)
            t0 = time.perf_counter()
            await w.start()
            await asyncio.get_running_loop().run_in_executor(None, drained, client, queue, jobs, 600)
            elapsed = time.perf_counter() - t0
            await w.stop(grace_s=1)
            print(f"  {w.stats}", flush=True)
            return jobs / elapsed

        return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description="errand Python worker throughput")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flavour", choices=["threads", "asyncio", "both"], default="both")
    parser.add_argument("--url", help="use this server instead of starting one")
    parser.add_argument(
        "--settle-batch-max", type=int, default=1000, help="1 settles one job per request"
    )
    parser.add_argument(
        "--errand-bin",
        default=os.environ.get("ERRAND_BIN") or str(REPO / "target" / "release" / "errand"),
    )
    args = parser.parse_args()

    def run(url: str) -> None:
        flavours = ["threads", "asyncio"] if args.flavour == "both" else [args.flavour]
        for f in flavours:
            rate = (bench_threads if f == "threads" else bench_asyncio)(
                url, args.jobs, args.concurrency, args.settle_batch_max
            )
            print(f"python {f} worker: {args.jobs} no-op jobs at concurrency {args.concurrency}: "
                  f"{rate:,.0f} jobs/s (settle batches up to {args.settle_batch_max})", flush=True)

    if args.url:
        run(args.url)
    else:
        binary: Optional[str] = args.errand_bin
        if not binary or not Path(binary).exists():
            raise SystemExit(f"no errand binary at {binary}: pass --errand-bin or set ERRAND_BIN")
        with errand_server(binary) as url:
            print(f"server: {binary}", flush=True)
            run(url)


if __name__ == "__main__":
    main()
