"""The thread-pool worker against a real server."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any, Dict, Iterator

import pytest

from conftest import Server, attempts, counts, wait_for
from errand_client import AsyncWorker, BadRequest, ErrandClient, JobError, JobSpec, NonRetryableError, Worker


@pytest.fixture
def make_worker(server: Server) -> Iterator[Any]:
    """Builds workers on the session server and stops every one of them after the test."""
    made = []

    def make(queue: str, **options: Any) -> Worker:
        options.setdefault("claim_wait_ms", 1_000)
        w = Worker(server.url, queue, **options)
        made.append(w)
        return w

    yield make
    for w in made:
        if w._started:
            w.stop(grace_s=1, timeout=30)


def test_thousand_jobs_at_concurrency_16_each_done_once(
    client: ErrandClient, queue: str, make_worker: Any
) -> None:
    runs: Dict[str, int] = collections.Counter()
    lock = threading.Lock()
    in_flight = [0, 0]  # now, highest seen
    w = make_worker(queue, concurrency=16)

    @w.handler("count")
    def count(ctx: Any) -> Any:
        with lock:
            runs[ctx.id] += 1
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.002)
        with lock:
            in_flight[0] -= 1
        return {"n": ctx.payload["n"]}

    ids = []
    for start in range(0, 1000, 250):
        batch = client.enqueue_many([JobSpec("count", {"n": n}, queue=queue) for n in range(start, start + 250)])
        ids += [j.id for j in batch.jobs]
    w.start()
    wait_for(lambda: counts(client, queue).get("succeeded") == 1000, 120, "1000 jobs succeeded")
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    assert 1 < in_flight[1] <= 16
    assert client.get_job(ids[123]).result == {"n": 123}
    assert w.stats.succeeded == 1000 and w.stats.lease_lost == 0


def test_a_failing_handler_is_retried(client: ErrandClient, queue: str, make_worker: Any) -> None:
    # the queue's backoff is what a plain exception gets: make it short
    client.update_queue(queue, backoff={"base": "10ms", "max": "20ms"})
    w = make_worker(queue, concurrency=2)

    @w.handler("flaky")
    def flaky(ctx: Any) -> Any:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return {"attempt": ctx.attempt}

    @w.handler("flaky-own-delay")
    def own_delay(ctx: Any) -> Any:
        if ctx.attempt == 1:
            raise JobError("again soon", retry_in_ms=10)
        return {"attempt": ctx.attempt}

    a = client.enqueue("flaky", queue=queue, max_attempts=3)
    b = client.enqueue("flaky-own-delay", queue=queue, max_attempts=3)
    w.start()
    assert client.result(a.id, timeout=30) == {"attempt": 2}
    assert client.result(b.id, timeout=30) == {"attempt": 2}
    attempts = client.call(_attempts(a.id))
    assert [x["outcome"] for x in attempts["attempts"]] == ["failed", "succeeded"]
    assert "RuntimeError: first attempt fails" in attempts["attempts"][0]["error"]


def _attempts(job_id: str) -> Any:
    from errand_client import protocol

    return protocol.Call("GET", f"/v1/jobs/{job_id}/attempts", lambda d: d)


def test_a_non_retryable_error_goes_dead(client: ErrandClient, queue: str, make_worker: Any) -> None:
    w = make_worker(queue, concurrency=2)

    @w.handler("bad")
    def bad(ctx: Any) -> Any:
        raise NonRetryableError("the address does not exist")

    job = client.enqueue("bad", queue=queue, max_attempts=5)
    w.start()
    done = client.wait(job.id, timeout=30)
    assert done.state == "dead" and done.attempt == 1
    assert "the address does not exist" in (done.error or "")


def test_heartbeats_keep_a_long_jobs_lease(client: ErrandClient, queue: str, make_worker: Any) -> None:
    w = make_worker(queue, concurrency=1, lease_ms=1_000, heartbeat_fraction=0.2)
    runs = []

    @w.handler("long")
    def long(ctx: Any) -> Any:
        runs.append(ctx.attempt)
        time.sleep(3)  # the work: three leases long
        return {"lost": ctx.lease_lost}

    job = client.enqueue("long", queue=queue, max_attempts=3)
    w.start()
    done = client.wait(job.id, timeout=30)
    assert done.state == "succeeded" and done.result == {"lost": False}
    assert done.attempt == 1 and runs == [1]


def test_progress_and_checkpoint_reach_the_next_attempt(
    client: ErrandClient, queue: str, make_worker: Any
) -> None:
    w = make_worker(queue, concurrency=1)
    seen = []

    @w.handler("resume")
    def resume(ctx: Any) -> Any:
        seen.append(ctx.checkpoint)
        if ctx.attempt == 1:
            ctx.progress(40, "copying")
            ctx.save_checkpoint({"row": 500})
            raise JobError("interrupted", retry_in_ms=0)
        return {"from": ctx.checkpoint["row"]}

    job = client.enqueue("resume", queue=queue)
    w.start()
    assert client.result(job.id, timeout=30) == {"from": 500}
    assert seen == [None, {"row": 500}]
    assert client.get_job(job.id).progress == {"percent": 40.0, "message": "copying"}


def test_a_cancelled_job_loses_its_lease(client: ErrandClient, queue: str, make_worker: Any) -> None:
    w = make_worker(queue, concurrency=1, lease_ms=600)
    started = threading.Event()
    saw_lost = threading.Event()

    @w.handler("cancel-me")
    def body(ctx: Any) -> Any:
        started.set()
        wait_for(lambda: ctx.lease_lost, 20, "the lease to be lost")
        saw_lost.set()
        return "ignored"

    job = client.enqueue("cancel-me", queue=queue)
    w.start()
    assert started.wait(20)
    client.cancel(job.id)
    assert saw_lost.wait(20)
    wait_for(lambda: w.stats.lease_lost >= 1, 10, "the worker to count the lost lease")
    assert client.get_job(job.id).state == "cancelled"


def test_stop_gives_back_what_outlives_the_grace_period(
    client: ErrandClient, queue: str, make_worker: Any
) -> None:
    release = threading.Event()
    w = make_worker(queue, concurrency=2)

    @w.handler("stuck")
    def stuck(ctx: Any) -> Any:
        release.wait(30)
        return "late"

    # its only attempt: a counted give-back would make it dead
    job = client.enqueue("stuck", queue=queue, max_attempts=1)
    w.start()
    wait_for(lambda: client.get_job(job.id).state == "running", 20, "the job to run")
    assert w.stop(grace_s=0.3, timeout=20)
    back = client.get_job(job.id)
    # released uncounted: available again, the attempt forgotten
    assert back.state == "available" and back.attempt == 0 and w.stats.given_back == 1
    assert attempts(client.base_url, job.id) == []
    release.set()  # the old handler's late outcome is dropped, not settled

    w2 = make_worker(queue, concurrency=1)
    w2.register("stuck", lambda ctx: {"attempt": ctx.attempt})
    w2.start()
    assert client.result(job.id, timeout=30) == {"attempt": 1}


@pytest.mark.parametrize("flavour", ["threads", "asyncio"])
def test_a_claim_refused_for_good_stops_run_with_the_error(server: Server, flavour: str) -> None:
    # a bad queue name is refused with 400 on every claim: retrying forever would hide it
    if flavour == "threads":
        w = Worker(server.url, "bad name!", claim_wait_ms=500, reconnect_max_s=0.1)
        w.register("k", lambda ctx: None)
        box: list = []

        def run() -> None:
            try:
                w.run(install_signal_handlers=False)
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                box.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(15)
        if t.is_alive():
            w.stop(grace_s=0, timeout=10)
            raise AssertionError("run() still claiming after 15 s")
        assert len(box) == 1 and isinstance(box[0], BadRequest), box
    else:

        async def main() -> None:
            aw = AsyncWorker(server.url, "bad name!", claim_wait_ms=500, reconnect_max_s=0.1)

            async def noop(ctx: Any) -> None:
                return None

            aw.register("k", noop)
            try:
                with pytest.raises(BadRequest):
                    await asyncio.wait_for(aw.run(install_signal_handlers=False), 15)
            finally:
                await aw.stop(grace_s=0)

        asyncio.run(main())


def test_a_heartbeat_racing_the_settlement_is_no_lease_loss(
    client: ErrandClient, queue: str, make_worker: Any
) -> None:
    # handlers end about when their heartbeat is due: a beat answered 409 after the job's
    # own settlement went through is not a lost lease
    w = make_worker(queue, concurrency=16, lease_ms=1_000)
    interval = w.options.heartbeat_interval_s

    @w.handler("edge")
    def edge(ctx: Any) -> Any:
        time.sleep(interval + (ctx.payload["n"] % 20) * 0.002)
        return None

    client.enqueue_many([JobSpec("edge", {"n": n}, queue=queue) for n in range(160)])
    w.start()
    wait_for(lambda: counts(client, queue).get("succeeded") == 160, 60, "160 jobs succeeded")
    assert w.stats.lease_lost == 0
