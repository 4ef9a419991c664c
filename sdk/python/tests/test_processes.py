"""Whole processes: SIGTERM to a worker process, a server restart under a running worker,
and the example web application."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import threading
import time
import urllib.request
from typing import Any, List

import pytest

from conftest import PYTHON, SDK, Server, counts, wait_for
from errand_client import ErrandClient, JobSpec, Worker

WORKER = str(SDK / "examples" / "worker.py")


def start_worker(url: str, queue: str, *extra: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [PYTHON, WORKER, "--url", url, "--queue", queue, "--concurrency", "8", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def stop_process(proc: "subprocess.Popen[str]", grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("flavour", ["threads", "asyncio"])
def test_sigterm_mid_work_loses_nothing(client: ErrandClient, queue: str, flavour: str) -> None:
    # 4 jobs that outlive the grace period (given back at SIGTERM), claimed first, then 150 short ones
    specs = [JobSpec("email.send", {"to": f"slow{i}@x.y", "ms": 4000}, queue=queue) for i in range(4)]
    specs += [JobSpec("email.send", {"to": f"u{i}@x.y", "ms": 30}, queue=queue) for i in range(150)]
    ids = [j.id for j in client.enqueue_many(specs).jobs]
    extra = ["--grace", "0.5"] + (["--asyncio"] if flavour == "asyncio" else [])
    first = start_worker(client.base_url, queue, *extra)
    procs = [first]
    try:
        wait_for(lambda: counts(client, queue).get("succeeded", 0) >= 20, 60, "some jobs done")
        t = time.monotonic()
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=30)
        assert first.returncode == 0
        assert time.monotonic() - t < 15
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["succeeded"] >= 20 and stats["given_back"] >= 1
        # nothing is left running under the stopped worker's leases
        assert counts(client, queue).get("running", 0) == 0

        second = start_worker(client.base_url, queue, *extra)
        procs.append(second)
        wait_for(lambda: counts(client, queue).get("succeeded", 0) == 154, 90, "all 154 jobs done")
        c = counts(client, queue)
        assert c.get("dead", 0) == 0 and c.get("available", 0) == 0
        # every job succeeded on attempt 1, those given back at the SIGTERM too: a
        # give-back is uncounted (the second worker ran them as first attempts)
        jobs = [client.get_job(i) for i in ids]
        counted = [j for j in jobs if j.result["attempt"] != 1 or j.attempt != 1]
        assert counted == []
        rerun = [j for j in jobs if j.result["worker_pid"] == second.pid]
        assert len(rerun) >= stats["given_back"]
    finally:
        for p in procs:
            stop_process(p)


def test_worker_survives_a_server_restart(own_server: Server) -> None:
    queue = "restart"
    client = ErrandClient(own_server.url, timeout=5)
    done: List[str] = []
    lock = threading.Lock()
    w = Worker(
        client,
        queue,
        concurrency=16,
        lease_ms=20_000,
        claim_wait_ms=1_000,
        reconnect_max_s=0.5,
    )

    @w.handler("tick")
    def tick(ctx: Any) -> Any:
        time.sleep(0.02)
        with lock:
            done.append(ctx.id)
        return ctx.payload["n"]

    client.enqueue_many([JobSpec("tick", {"n": n}, queue=queue) for n in range(400)])
    w.start()
    try:
        wait_for(lambda: len(done) >= 50, 60, "the first jobs done")
        address = own_server.address
        assert address is not None
        own_server.kill()
        assert len(done) < 400, "the server died too late to test anything"
        own_server.start(address)  # same port, same data directory
        wait_for(lambda: counts(client, queue).get("succeeded", 0) == 400, 120, "all 400 jobs done")
        assert not w.stopped
        # every job ran once: settlements queued while the server was away went through
        # on its return (the leases outlive the restart)
        ran = collections.Counter(done)
        assert len(ran) == 400 and set(ran.values()) == {1}, [k for k, v in ran.items() if v > 1]
    finally:
        w.stop(grace_s=1, timeout=30)
        client.close()


def test_example_web_app_enqueues(client: ErrandClient, queue: str) -> None:
    import sys

    sys.path.insert(0, str(SDK / "examples"))
    try:
        import webapp
    finally:
        sys.path.pop(0)
    app = webapp.build_server(client, "127.0.0.1", 0, queue=queue)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % webapp.address(app)[1]
    try:
        req = urllib.request.Request(
            base + "/signup", data=json.dumps({"email": "ada@example.com"}).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
            job_id = json.loads(resp.read())["job"]
        worker = start_worker(client.base_url, queue)
        try:
            with urllib.request.urlopen(f"{base}/jobs/{job_id}?wait=30", timeout=40) as resp:
                shown = json.loads(resp.read())
        finally:
            stop_process(worker)
        assert shown["state"] == "succeeded"
        assert shown["result"]["sent_to"] == "ada@example.com"
    finally:
        app.shutdown()


def test_progress_while_the_server_is_away_does_not_fail_the_job(own_server: Server) -> None:
    # progress is best effort: a blip must not fail the attempt
    queue = "blip"
    client = ErrandClient(own_server.url, timeout=5)
    server_down = threading.Event()
    reported = threading.Event()
    w = Worker(client, queue, concurrency=1, lease_ms=30_000, claim_wait_ms=500, reconnect_max_s=0.2)

    @w.handler("step")
    def step(ctx: Any) -> Any:
        server_down.wait(30)
        ctx.progress(50, "half way")  # the server is down now
        reported.set()
        return {"attempt": ctx.attempt}

    job = client.enqueue("step", queue=queue)
    w.start()
    try:
        wait_for(lambda: client.get_job(job.id).state == "running", 30, "the job running")
        address = own_server.address
        assert address is not None
        own_server.kill()
        server_down.set()
        wait_for(reported.is_set, 30, "progress returned")
        own_server.start(address)
        wait_for(lambda: client.get_job(job.id).state == "succeeded", 60, "the job succeeded")
        assert client.get_job(job.id).result == {"attempt": 1}
    finally:
        w.stop(grace_s=1, timeout=30)
        client.close()


@pytest.mark.parametrize("flavour", ["threads", "asyncio"])
def test_a_second_sigterm_exits_at_once(client: ErrandClient, queue: str, flavour: str) -> None:
    job = client.enqueue("email.send", {"to": "slow@x.y", "ms": 60_000}, queue=queue)
    extra = ["--grace", "60"] + (["--asyncio"] if flavour == "asyncio" else [])
    proc = start_worker(client.base_url, queue, *extra)
    try:
        wait_for(lambda: client.get_job(job.id).state == "running", 30, "the job running")
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the first signal is handled (nothing outside the process shows it)
        assert proc.poll() is None, "the first SIGTERM must wait for the grace period"
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - t < 5
        assert proc.returncode == 128 + signal.SIGTERM
    finally:
        stop_process(proc, grace=1)
