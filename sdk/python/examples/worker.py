"""An example worker process: handlers for two kinds, stopped cleanly by SIGTERM.

    python examples/worker.py --url http://127.0.0.1:7878 --queue mail --concurrency 8
    python examples/worker.py --asyncio ...      # the same handlers on the asyncio worker

On SIGTERM or Ctrl-C it stops claiming, lets running jobs finish for ``--grace`` seconds,
gives back the rest, and prints its counters as one JSON line before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any, Dict

from errand_client import AsyncJobContext, AsyncWorker, JobContext, NonRetryableError, Worker


def send_email(ctx: JobContext) -> Dict[str, Any]:
    """Pretend to send an email: takes ``payload["ms"]`` milliseconds (default 50)."""
    to = ctx.payload.get("to", "someone@example.com")
    if "@" not in to:
        raise NonRetryableError(f"not an address: {to!r}")  # retrying cannot help
    time.sleep(ctx.payload.get("ms", 50) / 1000)
    return {"sent_to": to, "attempt": ctx.attempt, "worker_pid": os.getpid()}


def build_report(ctx: JobContext) -> Dict[str, Any]:
    """A long job in steps: progress after each, a checkpoint to resume from on a retry."""
    steps = ctx.payload.get("steps", 5)
    done = (ctx.checkpoint or {}).get("done", 0)
    while done < steps:
        if ctx.lease_lost:  # cancelled, or given back: stop early
            return {"stopped_at": done}
        time.sleep(ctx.payload.get("step_ms", 200) / 1000)
        done += 1
        ctx.save_checkpoint({"done": done})
        ctx.progress(100 * done / steps, f"step {done} of {steps}")
    return {"steps": steps}


async def send_email_async(ctx: AsyncJobContext) -> Dict[str, Any]:
    """The asyncio twin of :func:`send_email`."""
    to = ctx.payload.get("to", "someone@example.com")
    if "@" not in to:
        raise NonRetryableError(f"not an address: {to!r}")
    await asyncio.sleep(ctx.payload.get("ms", 50) / 1000)
    return {"sent_to": to, "attempt": ctx.attempt, "worker_pid": os.getpid()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("ERRAND_URL", "http://127.0.0.1:7878"))
    parser.add_argument("--queue", default="mail")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--grace", type=float, default=20.0, help="seconds")
    parser.add_argument("--lease-ms", type=int, default=30_000)
    parser.add_argument("--asyncio", action="store_true", help="use the asyncio worker")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options: Dict[str, Any] = dict(
        concurrency=args.concurrency, grace_s=args.grace, lease_ms=args.lease_ms, claim_wait_ms=5_000
    )
    if args.asyncio:
        aw = AsyncWorker(args.url, args.queue, **options)
        aw.register("email.send", send_email_async)
        logging.info("asyncio worker on %s queue %s", args.url, args.queue)
        asyncio.run(aw.run())
        stats = aw.stats
    else:
        w = Worker(args.url, args.queue, **options)
        w.register("email.send", send_email)
        w.register("report.build", build_report)
        logging.info("worker on %s queue %s", args.url, args.queue)
        w.run()  # returns after SIGTERM/SIGINT, once stopped
        stats = w.stats
    print(json.dumps({"succeeded": stats.succeeded, "failed": stats.failed,
                      "given_back": stats.given_back, "claimed": stats.claimed}), flush=True)


if __name__ == "__main__":
    main()
