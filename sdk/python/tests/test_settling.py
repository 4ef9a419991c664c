"""Settling when the server refuses a request: too large a batch, an entry it cannot take."""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from typing import Any, Dict

import pytest

from conftest import Server, counts, wait_for
from errand_client import AsyncWorker, ErrandClient, JobError, JobSpec, PayloadTooLarge, Worker


@pytest.mark.parametrize("max_bytes", [10_000_000, None])
def test_a_settle_too_large_for_the_server_is_split(small_server: Server, max_bytes: Any) -> None:
    # 16 results of 50 KB settle in one batch of ~800 KB: the server takes 300 KB at most.
    # With a large settle_max_bytes the server's 413 splits the batch; with the default
    # (256 KiB) the batch is cut before it is sent.
    queue = f"big-results-{max_bytes}"
    client = ErrandClient(small_server.url)
    runs: Dict[str, int] = collections.Counter()
    lock = threading.Lock()
    gate = threading.Event()
    opts: Dict[str, Any] = {"settle_max_bytes": max_bytes} if max_bytes else {}
    w = Worker(client, queue, concurrency=16, claim_wait_ms=500, **opts)

    @w.handler("big")
    def big(ctx: Any) -> Any:
        with lock:
            runs[ctx.id] += 1
        gate.wait(10)  # all 16 end together, so their results share one settle batch
        return "x" * 50_000

    ids = [j.id for j in client.enqueue_many([JobSpec("big", queue=queue) for _ in range(16)]).jobs]
    w.start()
    try:
        wait_for(lambda: len(runs) == 16, 30, "16 handlers running")
        gate.set()
        wait_for(lambda: counts(client, queue).get("succeeded") == 16, 30, "16 jobs succeeded")
        assert set(runs) == set(ids) and set(runs.values()) == {1}
    finally:
        w.stop(grace_s=1, timeout=30)
        client.close()


def test_a_request_too_large_is_payload_too_large(small_server: Server) -> None:
    with ErrandClient(small_server.url) as client:
        with pytest.raises(PayloadTooLarge) as err:
            client.enqueue("big", "x" * 400_000, queue="too-large")
        assert err.value.status == 413


@pytest.mark.parametrize("flavour", ["threads", "asyncio"])
def test_an_outcome_the_server_refuses_fails_the_attempt(
    client: ErrandClient, queue: str, flavour: str
) -> None:
    # NaN is not JSON; a retry delay of 10^15 ms is out of range (400): neither may leave the
    # job to cycle through lapsed leases
    jobs = client.enqueue_many(
        [
            JobSpec("nan", queue=queue, max_attempts=1),
            JobSpec("far", queue=queue, max_attempts=1),
            JobSpec("fine", queue=queue, max_attempts=1),
        ]
    ).jobs

    def nan(ctx: Any) -> Any:
        return {"x": math.nan}

    def far(ctx: Any) -> Any:
        raise JobError("later", retry_in_ms=10**15)

    def fine(ctx: Any) -> Any:
        return "ok"

    opts = dict(concurrency=4, claim_wait_ms=500, lease_ms=60_000)
    if flavour == "threads":
        w = Worker(client.base_url, queue, **opts)
        for kind, fn in (("nan", nan), ("far", far), ("fine", fine)):
            w.register(kind, fn)
        w.start()
        try:
            _wait_ended(client, queue)
        finally:
            w.stop(grace_s=1, timeout=30)
    else:

        async def main() -> None:
            aw = AsyncWorker(client.base_url, queue, **opts)
            for kind, fn in (("nan", nan), ("far", far), ("fine", fine)):
                aw.register(kind, _async(fn))
            await aw.start()
            try:
                await asyncio.get_running_loop().run_in_executor(None, _wait_ended, client, queue)
            finally:
                await aw.stop(grace_s=1)

        asyncio.run(main())
    by_kind = {j.kind: j for j in (client.get_job(x.id) for x in jobs)}
    assert by_kind["fine"].state == "succeeded"
    assert by_kind["nan"].state == "dead" and "JSON" in str(by_kind["nan"].error)
    assert by_kind["far"].state == "dead" and "settle refused" in str(by_kind["far"].error)


def _async(fn: Any) -> Any:
    async def run(ctx: Any) -> Any:
        return fn(ctx)

    return run


def _wait_ended(client: ErrandClient, queue: str) -> None:
    # well before a 60 s lease could lapse
    wait_for(
        lambda: counts(client, queue).get("dead", 0) == 2 and counts(client, queue).get("succeeded", 0) == 1,
        20,
        "two jobs dead, one succeeded",
    )


def test_the_asyncio_worker_splits_a_settle_too_large_for_the_server(small_server: Server) -> None:
    queue = "big-results-async"
    client = ErrandClient(small_server.url)
    runs: Dict[str, int] = collections.Counter()
    ids = [j.id for j in client.enqueue_many([JobSpec("big", queue=queue) for _ in range(16)]).jobs]

    async def main() -> None:
        gate = asyncio.Event()
        aw = AsyncWorker(small_server.url, queue, concurrency=16, claim_wait_ms=500, settle_max_bytes=10_000_000)

        async def big(ctx: Any) -> Any:
            runs[ctx.id] += 1
            await gate.wait()  # all 16 end together: one settle batch of ~800 KB
            return "x" * 50_000

        aw.register("big", big)
        await aw.start()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, wait_for, lambda: len(runs) == 16, 30, "16 handlers running")
            gate.set()
            await loop.run_in_executor(
                None, wait_for, lambda: counts(client, queue).get("succeeded") == 16, 30, "16 jobs succeeded"
            )
        finally:
            await aw.stop(grace_s=1)

    try:
        asyncio.run(main())
        assert set(runs) == set(ids) and set(runs.values()) == {1}
    finally:
        client.close()
