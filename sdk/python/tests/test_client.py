"""The sync and asyncio clients against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import threading
import uuid
from typing import Any, Dict, List

import pytest

from errand_client import (
    AsyncErrandClient,
    BadRequest,
    Conflict,
    ErrandClient,
    JobFailed,
    JobSpec,
    LeaseLost,
    NotFound,
    Unavailable,
    WaitTimeout,
)


def complete_later(client: ErrandClient, queue: str, result: Any) -> threading.Thread:
    """A one-shot worker: claims one job (long poll) and completes it with ``result``."""

    def work() -> None:
        jobs = client.claim(queue, worker="one-shot", wait_ms=10_000)
        client.complete(jobs[0].id, jobs[0].lease_token, result)

    t = threading.Thread(target=work)
    t.start()
    return t


def test_enqueue_and_wait_for_result(client: ErrandClient, queue: str) -> None:
    job = client.enqueue("add", {"a": 2, "b": 3}, queue=queue)
    assert job.state == "available" and job.payload == {"a": 2, "b": 3}
    t = complete_later(client, queue, {"sum": 5})
    assert client.result(job.id, timeout=20) == {"sum": 5}
    t.join()
    assert client.get_job(job.id).state == "succeeded"


def test_every_enqueue_option_reaches_the_server(client: ErrandClient, queue: str) -> None:
    parent = client.enqueue("parent", queue=queue)
    key = f"idem-{uuid.uuid4()}"
    job = client.enqueue(
        "send_email",
        {"to": "a@b.c"},
        queue=queue,
        priority=7,
        delay=dt.timedelta(seconds=30),
        max_attempts=4,
        timeout="5m",
        tags=["signup", "eu"],
        idempotency_key=key,
        reply_to=f"{queue}-replies",
        correlation_id="req-1",
        callback_url="http://127.0.0.1:9/hook",
        lock_key="account-7",
        fairness_key="tenant-a",
        fairness_weight=3,
        rate_key="partner",
        after=[parent.id],
        after_any_end=True,
    )
    raw = job.raw
    assert raw["priority"] == 7 and raw["max_attempts"] == 4 and raw["timeout_ms"] == 300_000
    assert raw["tags"] == ["signup", "eu"] and raw["idempotency_key"] == key
    assert raw["reply_to"] == f"{queue}-replies" and raw["correlation_id"] == "req-1"
    assert raw["callback_url"] == "http://127.0.0.1:9/hook"
    assert raw["lock_key"] == "account-7" and raw["fairness_key"] == "tenant-a"
    assert raw["fairness_weight"] == 3 and raw["rate_key"] == "partner"
    assert raw["after"] == [parent.id] and raw["after_any_end"] is True
    assert job.state == "blocked"
    # the idempotent repeat returns the same job
    assert client.enqueue("send_email", queue=queue, idempotency_key=key).id == job.id

    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    conc = client.enqueue("c", queue=queue, run_at=at, concurrency_key="k", concurrency_limit=2)
    assert conc.state == "scheduled"
    assert conc.raw["concurrency_key"] == "k" and conc.raw["concurrency_limit"] == 2
    sess = client.enqueue("s", queue=queue, session_key="order-1", session_on_dead="continue")
    assert sess.raw["session_key"] == "order-1" and sess.raw["session_on_dead"] == "continue"


def test_batch_enqueue_in_order_and_idempotent(client: ErrandClient, queue: str) -> None:
    specs = [JobSpec("n", {"i": i}, queue=queue, idempotency_key=f"{queue}-{i}") for i in range(5)]
    first = client.enqueue_many(specs)
    assert first.inserted == 5 and all(j.inserted for j in first.jobs)
    assert [client.get_job(j.id).payload["i"] for j in first.jobs] == list(range(5))
    again = client.enqueue_many(specs)
    assert again.inserted == 0 and [j.id for j in again.jobs] == [j.id for j in first.jobs]


def test_cancel_and_retry(client: ErrandClient, queue: str) -> None:
    job = client.enqueue("c", queue=queue)
    assert client.cancel(job.id).state == "cancelled"
    with pytest.raises(Conflict) as err:
        client.cancel(job.id)
    assert err.value.status == 409 and err.value.code == "conflict"
    assert client.retry(job.id).state == "available"
    with pytest.raises(Conflict):
        client.retry(job.id)


def test_typed_errors(client: ErrandClient, queue: str) -> None:
    with pytest.raises(NotFound) as nf:
        client.get_job(str(uuid.uuid4()))
    assert nf.value.status == 404 and nf.value.code == "not_found"
    with pytest.raises(BadRequest) as br:
        client.enqueue("k", queue="no spaces allowed")
    assert br.value.code == "invalid_request" and "queue" in br.value.message

    job = client.enqueue("lease", queue=queue)
    claimed = client.claim(queue, worker="t", lease_ms=60_000)
    assert [c.id for c in claimed] == [job.id]
    client.cancel(job.id)
    with pytest.raises(LeaseLost):
        client.heartbeat(job.id, claimed[0].lease_token)
    with pytest.raises(LeaseLost):
        client.complete(job.id, claimed[0].lease_token, 1)


def test_release_gives_a_job_back_uncounted(client: ErrandClient, queue: str) -> None:
    job = client.enqueue("rel", queue=queue, max_attempts=1)
    (claimed,) = client.claim(queue, worker="t", lease_ms=60_000)
    back = client.release(job.id, claimed.lease_token)
    assert (back.state, back.attempt) == ("available", 0)
    with pytest.raises(LeaseLost):
        client.release(job.id, claimed.lease_token)
    with pytest.raises(NotFound):
        client.release(str(uuid.uuid4()), claimed.lease_token)


def test_wait_times_out_and_result_reports_failure(client: ErrandClient, queue: str) -> None:
    job = client.enqueue("never", queue=queue)
    with pytest.raises(WaitTimeout) as wt:
        client.wait(job.id, timeout=0.3)
    assert wt.value.job.state == "available"
    client.cancel(job.id)
    with pytest.raises(JobFailed) as jf:
        client.result(job.id, timeout=5)
    assert jf.value.job.state == "cancelled"


def test_unreachable_server_is_unavailable() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with ErrandClient(f"http://127.0.0.1:{port}", timeout=2) as c:
        with pytest.raises(Unavailable) as err:
            c.get_job("x")
        assert err.value.status is None


def test_token_is_sent_as_bearer() -> None:
    seen: List[Dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(dict(self.headers))
            body = json.dumps({"status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        with ErrandClient(f"http://127.0.0.1:{httpd.server_port}", token="s3cret") as c:
            assert c.healthz() == {"status": "ok"}
    finally:
        httpd.shutdown()
    assert seen[0]["Authorization"] == "Bearer s3cret"


def test_async_client(server: Any, queue: str) -> None:
    async def main() -> None:
        async with AsyncErrandClient(server.url) as ac:
            job = await ac.enqueue("add", {"a": 1}, queue=queue, tags=["x"])
            batch = await ac.enqueue_many([JobSpec("add", {"a": i}, queue=queue) for i in range(3)])
            assert batch.inserted == 3

            async def work() -> None:
                for _ in range(4):
                    (c,) = await ac.claim(queue, worker="aw", wait_ms=5_000)
                    await ac.heartbeat(c.id, c.lease_token, progress={"percent": 50})
                    await ac.complete(c.id, c.lease_token, {"got": c.payload["a"]})

            w = asyncio.create_task(work())
            assert await ac.result(job.id, timeout=20) == {"got": 1}
            await w
            with pytest.raises(NotFound):
                await ac.get_job(str(uuid.uuid4()))
            late = await ac.enqueue("c", queue=queue)
            with pytest.raises(WaitTimeout):
                await ac.wait(late.id, timeout=0.3)
            assert (await ac.cancel(late.id)).state == "cancelled"
            assert (await ac.retry(late.id)).state == "available"
            (held,) = await ac.claim(queue, worker="aw", wait_ms=5_000)
            back = await ac.release(held.id, held.lease_token)
            assert (back.state, back.attempt) == ("available", held.attempt - 1)
            with pytest.raises(LeaseLost):
                await ac.release(held.id, held.lease_token)

    asyncio.run(main())
