"""The thread-pool worker: plain (blocking) handler functions, up to N at once."""

from __future__ import annotations

import asyncio
import json
import queue as _queue
import signal
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .. import protocol
from ..aio import AsyncErrandClient
from ..client import ErrandClient
from ..errors import ApiError, BadRequest, ErrandError, LeaseLost
from ..models import ClaimedJob
from . import core
from .core import Outcome, Running, WorkerOptions, log


class JobContext:
    """What a handler gets: the job, its fencing token, progress and checkpoints.

    ``lease_lost`` turns true once the server said the lease is gone (cancelled, expired,
    given back at stop): a long handler should check it and return early, as its outcome
    will be dropped.
    """

    def __init__(self, worker: "Worker", running: Running) -> None:
        self._worker = worker
        self._running = running
        self.job: ClaimedJob = running.job

    @property
    def id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def kind(self) -> str:
        """The job's kind."""
        return self.job.kind

    @property
    def payload(self) -> Any:
        """The job's payload."""
        return self.job.payload

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self.job.attempt

    @property
    def checkpoint(self) -> Any:
        """What an earlier attempt saved with :meth:`save_checkpoint` (or ``None``)."""
        return self.job.checkpoint

    @property
    def lease_token(self) -> str:
        """The fencing token of this attempt."""
        return self.job.lease_token

    @property
    def lease_lost(self) -> bool:
        """True once the lease is gone: stop, the outcome will not be recorded."""
        return self._running.settled_elsewhere

    def progress(self, percent: Optional[float] = None, message: Optional[str] = None) -> None:
        """Report progress now (a heartbeat). Raises :class:`LeaseLost` when the lease is gone."""
        self._worker._beat(self._running, progress=_progress(percent, message), raise_lost=True)

    def save_checkpoint(self, checkpoint: Any) -> None:
        """Save state to resume from on a retry, durably, now. Raises :class:`LeaseLost`."""
        self._worker._beat(self._running, checkpoint=checkpoint, raise_lost=True)


def _progress(percent: Optional[float], message: Optional[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if percent is not None:
        out["percent"] = percent
    if message is not None:
        out["message"] = message
    return out


SyncHandler = Callable[[JobContext], Any]


class Worker:
    """Claims jobs of one queue and runs their handlers on threads.

    >>> worker = Worker("http://127.0.0.1:7878", "mail", concurrency=8)
    >>> @worker.handler("send_email")
    ... def send(ctx): return {"sent": ctx.payload["to"]}
    >>> worker.run()   # until SIGTERM/SIGINT

    ``run()`` blocks and stops on SIGTERM or SIGINT; ``start()``/``stop()`` run it in the
    background. Options are :class:`WorkerOptions` fields (``concurrency``, ``lease_ms``,
    ``grace_s``, ...).
    """

    def __init__(
        self,
        client: Union[ErrandClient, str],
        queue: str,
        *,
        options: Optional[WorkerOptions] = None,
        token: Optional[str] = None,
        **overrides: Any,
    ) -> None:
        self.options = options or WorkerOptions(**overrides)
        if isinstance(client, str):
            self.client = ErrandClient(
                client, token=token, max_connections=self.options.concurrency + 8
            )
        else:
            self.client = client
        self.queue = queue
        self.registry = core.Registry()
        self.stats = core.Stats()
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self._running: Dict[str, Running] = {}
        self._busy = 0
        self._work: "_queue.Queue[Optional[Running]]" = _queue.Queue()
        self._settle_q: "_queue.Queue[Optional[Outcome]]" = _queue.Queue()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._beats_done = threading.Event()
        self._started = False
        self._stop_thread: Optional[threading.Thread] = None
        self._settler: Optional[threading.Thread] = None
        self._grace_s = self.options.grace_s
        self._give_up_at: Optional[float] = None
        self._claim: Optional[Tuple[asyncio.AbstractEventLoop, "asyncio.Task[List[ClaimedJob]]"]] = None
        self._claim_started = 0.0
        self._claim_done = threading.Event()
        self._claim_done.set()
        self._closed = False  # set once stopping gave back what ran: later claims go back too

    # --- registration ---------------------------------------------------------------------

    def register(self, kind: str, fn: SyncHandler) -> None:
        """Run ``fn(ctx)`` for jobs of ``kind``; its return value is the job's result."""
        self.registry.add(kind, fn)

    def handler(self, kind: str) -> Callable[[SyncHandler], SyncHandler]:
        """Decorator form of :meth:`register`."""

        def deco(fn: SyncHandler) -> SyncHandler:
            self.register(kind, fn)
            return fn

        return deco

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming and running jobs in background threads."""
        if self._started:
            raise RuntimeError("worker already started")
        if not self.registry.handlers:
            raise RuntimeError("register at least one handler first")
        self._started = True
        self._spawn(self._claim_loop, "claim")
        self._spawn(self._heartbeat_loop, "heartbeat")
        self._settler = self._spawn(self._settle_loop, "settle")
        for i in range(self.options.concurrency):
            self._spawn(self._run_loop, f"run-{i}")

    def run(self, install_signal_handlers: bool = True) -> None:
        """Start, then block until stopped (SIGTERM and SIGINT stop it when installed)."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.request_stop())
        self.start()
        while not self._stopped.wait(0.5):
            pass

    def request_stop(self, grace_s: Optional[float] = None) -> None:
        """Begin stopping without waiting: stop claiming, let handlers finish for the grace
        period, give back what still runs, flush settlements."""
        with self._lock:
            if self._stop_thread is not None:
                return
            if grace_s is not None:
                self._grace_s = grace_s
            self._stopping.set()
            self._slots.notify_all()
            self._stop_thread = self._spawn(self._shutdown, "shutdown")

    def stop(self, grace_s: Optional[float] = None, timeout: Optional[float] = None) -> bool:
        """Stop (see :meth:`request_stop`) and wait; True once fully stopped."""
        self.request_stop(grace_s)
        return self._stopped.wait(timeout)

    @property
    def stopped(self) -> bool:
        """True once the worker has fully stopped."""
        return self._stopped.is_set()

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=f"errand-{name}", daemon=True)
        t.start()
        return t

    def _end_claim(self) -> None:
        """Let a claim just sent finish; cancel one that waits for work."""
        with self._lock:
            claim, started = self._claim, self._claim_started
        if claim is None:
            return
        if not self._claim_done.wait(max(0.0, started + core.CLAIM_SETTLE_S - core.now())):
            loop, task = claim
            loop.call_soon_threadsafe(task.cancel)
        self._claim_done.wait(core.FLUSH_S)

    def _shutdown(self) -> None:
        deadline = core.now() + self._grace_s
        self._end_claim()
        with self._slots:
            while self._busy > 0 and core.now() < deadline:
                self._slots.wait(max(0.0, deadline - core.now()))
            leftovers = [r for r in self._running.values() if not r.settled_elsewhere]
            for r in leftovers:
                r.given_back = True
            self._closed = True
        for r in leftovers:
            log.warning("grace period over: giving back job %s", r.job.id)
            self.stats.given_back += 1
            self._settle_q.put(core.give_back(r.job, "worker stopped before the job finished"))
        self._give_up_at = core.now() + core.FLUSH_S
        self._settle_q.put(None)
        if self._settler is not None:
            self._settler.join()
        self._beats_done.set()
        for _ in range(self.options.concurrency):
            self._work.put(None)
        self._stopped.set()

    # --- claiming -------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        """Claims on a private event loop, so that a stop can cancel the waiting claim: the
        server then gives back what it had leased for it, as if never claimed."""
        loop = asyncio.new_event_loop()
        claimer = AsyncErrandClient(
            self.client.base_url, token=self.client.token, timeout=self.client.timeout
        )
        try:
            self._claim_until_stopped(loop, claimer)
        finally:
            loop.run_until_complete(claimer.aclose())
            loop.close()

    def _claim_until_stopped(self, loop: asyncio.AbstractEventLoop, claimer: AsyncErrandClient) -> None:
        opts = self.options
        backoff = core.Backoff(opts.reconnect_base_s, opts.reconnect_max_s)
        name = opts.worker_name()
        kinds = self.registry.kinds()
        while not self._stopping.is_set():
            with self._slots:
                while self._busy >= opts.concurrency and not self._stopping.is_set():
                    self._slots.wait()
                want = core.claim_size(opts.concurrency - self._busy, opts)
                if self._stopping.is_set():
                    break
                task = loop.create_task(
                    claimer.claim(
                        self.queue,
                        worker=name,
                        max_jobs=want,
                        wait_ms=opts.claim_wait_ms,
                        lease_ms=opts.lease_ms,
                        kinds=kinds,
                    )
                )
                self._claim = (loop, task)
                self._claim_started = core.now()
                self._claim_done.clear()
            try:
                jobs = loop.run_until_complete(task)
            except asyncio.CancelledError:
                break
            except ErrandError as exc:
                delay = backoff.next_delay()
                if isinstance(exc, ApiError) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                log.warning("claim failed (%s); retrying in %.2fs", exc, delay)
                self._stopping.wait(delay)
                continue
            except Exception:  # never let the loop die
                log.exception("claim loop error")
                self._stopping.wait(backoff.next_delay())
                continue
            finally:
                with self._slots:
                    self._claim = None
                    self._claim_done.set()
            backoff.reset()
            self.stats.claims += 1
            self._accept(jobs)

    def _accept(self, jobs: List[ClaimedJob]) -> None:
        if not jobs:
            return
        self.stats.claimed += len(jobs)
        with self._slots:
            if self._closed:
                late = jobs
            else:
                late = []
                first_beat = core.now() + self.options.heartbeat_interval_s
                for job in jobs:
                    rec = Running(job, first_beat)
                    self._running[job.id] = rec
                    self._busy += 1
                    self._work.put(rec)
        for job in late:  # claimed after stopping gave back the rest: hand back at once
            self.stats.given_back += 1
            try:
                self.client.fail(job.id, job.lease_token, "worker stopping", retry_in_ms=0)
            except ErrandError as exc:
                log.warning("could not give back job %s (%s); its lease will lapse", job.id, exc)

    # --- running --------------------------------------------------------------------------

    def _run_loop(self) -> None:
        while True:
            rec = self._work.get()
            if rec is None:
                return
            outcome = self._run_one(rec)
            with self._slots:
                self._running.pop(rec.job.id, None)
                self._busy -= 1
                self._slots.notify_all()
                drop = rec.settled_elsewhere
            if outcome is not None and not drop:
                self._settle_q.put(outcome)

    def _run_one(self, rec: Running) -> Optional[Outcome]:
        fn = self.registry.handlers.get(rec.job.kind)
        if fn is None:
            return core.no_handler(rec.job)
        try:
            result = fn(JobContext(self, rec))
            json.dumps(result)  # a result the server cannot take must not fail a whole batch
        except LeaseLost:
            return None
        except TypeError as exc:
            return core.failure(rec.job, exc)
        except BaseException as exc:  # noqa: B902 - a handler's error must not kill the thread
            return core.failure(rec.job, exc)
        return core.success(rec.job, result)

    # --- heartbeats -----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = self.options.heartbeat_interval_s
        tick = min(0.25, interval / 4)
        while not self._beats_done.wait(tick):
            t = core.now()
            with self._lock:
                due = [
                    r for r in self._running.values() if not r.settled_elsewhere and r.next_beat <= t
                ]
            for rec in due:
                try:
                    self._beat(rec)
                except ErrandError:
                    pass

    def _beat(
        self,
        rec: Running,
        *,
        progress: Optional[Dict[str, Any]] = None,
        checkpoint: Any = protocol.UNSET,
        raise_lost: bool = False,
    ) -> None:
        interval = self.options.heartbeat_interval_s
        call = protocol.heartbeat(
            rec.job.id,
            rec.job.lease_token,
            lease_ms=self.options.lease_ms,
            progress=progress,
            checkpoint=checkpoint,
        )
        call.timeout = max(1.0, interval)
        try:
            self.client.call(call)
        except LeaseLost:
            if not rec.lost:
                rec.lost = True
                self.stats.lease_lost += 1
                log.warning("lease lost on job %s: its outcome will be dropped", rec.job.id)
            if raise_lost:
                raise
            return
        except ErrandError as exc:
            rec.next_beat = core.now() + min(interval / 2, 1.0)
            log.warning("heartbeat of job %s failed (%s); retrying", rec.job.id, exc)
            if raise_lost:
                raise
            return
        rec.next_beat = core.now() + interval

    # --- settling -------------------------------------------------------------------------

    def _settle_loop(self) -> None:
        """Group commit: send what is queued now; what arrives meanwhile goes in the next batch."""
        while True:
            first = self._settle_q.get()
            if first is None:
                return
            batch = [first]
            last = False
            while len(batch) < self.options.settle_batch_max:
                try:
                    item = self._settle_q.get_nowait()
                except _queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                batch.append(item)
            self._settle(batch)
            if last:
                return

    def _settle(self, batch: List[Outcome]) -> None:
        backoff = core.Backoff(self.options.reconnect_base_s, self.options.reconnect_max_s)
        while True:
            try:
                results = self.client.call(core.settle_call(batch))
            except BadRequest as exc:
                if len(batch) == 1:
                    log.error("settle of job %s refused: %s", batch[0].entry["id"], exc)
                    return
                for one in batch:  # find the bad entry; settle the others
                    self._settle([one])
                return
            except ErrandError as exc:
                if self._give_up_at is not None and core.now() > self._give_up_at:
                    log.error("settle failed (%s) while stopping; leases will lapse", exc)
                    return
                delay = backoff.next_delay()
                log.warning("settle failed (%s); retrying in %.2fs", exc, delay)
                threading.Event().wait(delay)
                continue
            self.stats.settles += 1
            core.report_settled(results)
            for o, r in zip(core.ordered(batch), results):
                core.count(self.stats, o, r)
            return
