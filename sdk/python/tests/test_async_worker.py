"""The asyncio worker against a real server."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable, Dict

from conftest import Server, attempts
from errand_client import AsyncErrandClient, AsyncWorker, JobError, JobSpec, NonRetryableError


async def until(cond: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll an async condition with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 180))  # type: ignore[arg-type]


def test_thousand_jobs_at_concurrency_16_each_done_once(server: Server, queue: str) -> None:
    async def main() -> None:
        async with AsyncErrandClient(server.url) as ac:
            w = AsyncWorker(ac, queue, concurrency=16, claim_wait_ms=1_000)
            runs: Dict[str, int] = collections.Counter()
            in_flight = [0, 0]

            @w.handler("count")
            async def count(ctx: Any) -> Any:
                runs[ctx.id] += 1
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
                await asyncio.sleep(0.002)
                in_flight[0] -= 1
                return ctx.payload["n"]

            ids = []
            for start in range(0, 1000, 500):
                b = await ac.enqueue_many(
                    [JobSpec("count", {"n": n}, queue=queue) for n in range(start, start + 500)]
                )
                ids += [j.id for j in b.jobs]
            await w.start()

            async def all_done() -> bool:
                return (await ac.get_queue(queue))["counts"]["succeeded"] == 1000

            await until(all_done, 120, "1000 jobs succeeded")
            await w.stop(grace_s=1)
            assert set(runs) == set(ids) and set(runs.values()) == {1}
            assert 1 < in_flight[1] <= 16
            assert (await ac.get_job(ids[7])).result == 7

    run(main())


def test_retry_dead_and_long_job(server: Server, queue: str) -> None:
    async def main() -> None:
        async with AsyncErrandClient(server.url) as ac:
            w = AsyncWorker(
                ac, queue, concurrency=4, lease_ms=1_000, heartbeat_fraction=0.2, claim_wait_ms=1_000
            )

            @w.handler("flaky")
            async def flaky(ctx: Any) -> Any:
                if ctx.attempt == 1:
                    await ctx.progress(10, "trying")
                    raise JobError("once", retry_in_ms=10)
                return ctx.attempt

            @w.handler("bad")
            async def bad(ctx: Any) -> Any:
                raise NonRetryableError("never")

            @w.handler("long")
            async def long(ctx: Any) -> Any:
                await asyncio.sleep(3)  # three leases long
                return {"lost": ctx.lease_lost}

            flaky_job = await ac.enqueue("flaky", queue=queue, max_attempts=3)
            bad_job = await ac.enqueue("bad", queue=queue, max_attempts=3)
            long_job = await ac.enqueue("long", queue=queue, max_attempts=3)
            await w.start()
            assert await ac.result(flaky_job.id, timeout=30) == 2
            dead = await ac.wait(bad_job.id, timeout=30)
            assert dead.state == "dead" and dead.attempt == 1
            done = await ac.wait(long_job.id, timeout=30)
            assert done.state == "succeeded" and done.attempt == 1 and done.result == {"lost": False}
            await w.stop(grace_s=1)

    run(main())


def test_stop_gives_back_after_grace(server: Server, queue: str) -> None:
    async def main() -> None:
        async with AsyncErrandClient(server.url) as ac:
            w = AsyncWorker(ac, queue, concurrency=2, claim_wait_ms=5_000)

            @w.handler("stuck")
            async def stuck(ctx: Any) -> Any:
                await asyncio.sleep(60)

            # its only attempt: a counted give-back would make it dead
            job = await ac.enqueue("stuck", queue=queue, max_attempts=1)
            await w.start()

            async def running() -> bool:
                return (await ac.get_job(job.id)).state == "running"

            await until(running, 20, "the job to run")
            await w.stop(grace_s=0.3)
            back = await ac.get_job(job.id)
            # released uncounted: available again, the attempt forgotten
            assert back.state == "available" and back.attempt == 0 and w.stats.given_back == 1
            assert attempts(server.url, job.id) == []

            w2 = AsyncWorker(ac, queue, concurrency=1, claim_wait_ms=1_000)

            @w2.handler("stuck")
            async def quick(ctx: Any) -> Any:
                return ctx.attempt

            await w2.start()
            assert await ac.result(job.id, timeout=30) == 1
            await w2.stop()

    run(main())
