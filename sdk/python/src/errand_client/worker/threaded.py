"""The thread-pool worker: plain (blocking) handler functions, up to N at once."""

from __future__ import annotations

import asyncio
import queue as _queue
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .. import protocol
from ..aio import AsyncErrandClient
from ..client import ErrandClient
from ..errors import ErrandError, LeaseLost
from ..models import ClaimedJob
from . import core
from .core import Outcome, Running, WorkerOptions, log


class JobContext(core.JobInfo):
    """What a handler gets: the job (see :class:`core.JobInfo`), progress and checkpoints."""

    def __init__(self, worker: "Worker", running: Running) -> None:
        super().__init__(running)
        self._worker = worker

    def progress(self, percent: Optional[float] = None, message: Optional[str] = None) -> None:
        """Report progress now (a heartbeat), best effort: a failed send is logged and the
        handler goes on. Raises :class:`LeaseLost` when the lease is gone."""
        try:
            self._worker._beat(self._running, progress=core.progress_body(percent, message), raise_lost=True)
        except LeaseLost:
            raise
        except ErrandError as exc:
            core.progress_not_sent(self.id, exc)

    def save_checkpoint(self, checkpoint: Any) -> None:
        """Save state to resume from on a retry, durably, now. Transient failures (server
        away) are retried for up to one heartbeat interval; raises :class:`LeaseLost` when
        the lease is gone, and the last error when it could not be saved."""
        retry = core.CheckpointRetry(self._worker.options)
        while True:
            try:
                self._worker._beat(self._running, checkpoint=checkpoint, raise_lost=True)
                return
            except LeaseLost:
                raise
            except ErrandError as exc:
                pause = retry.pause_after(exc)
                if pause is None:
                    raise
                threading.Event().wait(pause)


SyncHandler = Callable[[JobContext], Any]


class Worker(core.WorkerBase[SyncHandler, ErrandClient]):
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
        super().__init__(client, ErrandClient, queue, options, token, overrides)
        self._beat_pool = ThreadPoolExecutor(
            max_workers=max(1, min(8, self.options.concurrency)), thread_name_prefix="errand-beat"
        )
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
                signal.signal(sig, self._on_signal)
        self.start()
        while not self._stopped.wait(0.5):
            pass
        if self.error is not None:
            raise self.error

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """First SIGTERM/SIGINT: stop gracefully; a second one: exit now (leases lapse)."""
        core.on_stop_signal(signum, self._stop_thread is not None, self.request_stop)

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
        if not self._claim_done.wait(core.claim_settle_wait(started)):
            loop, task = claim
            loop.call_soon_threadsafe(task.cancel)
        self._claim_done.wait(core.FLUSH_S)

    def _shutdown(self) -> None:
        deadline = core.now() + self._grace_s
        self._end_claim()
        with self._slots:
            while self._busy > 0 and core.now() < deadline:
                self._slots.wait(max(0.0, deadline - core.now()))
            leftovers = core.give_back_leftovers(self._running.values())
            self._closed = True
        self._give_up_at = core.now() + core.FLUSH_S
        self._release_all([r.job for r in leftovers], self._give_up_at)
        self._settle_q.put(None)
        if self._settler is not None:
            self._settler.join()
        self._beats_done.set()
        self._beat_pool.shutdown(wait=False)
        for _ in range(self.options.concurrency):
            self._work.put(None)
        if self._owns_client:
            self.client.close()
        self._stopped.set()

    # --- claiming -------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        """Claims on a private event loop, so that a stop can cancel the waiting claim: the
        server then gives back what it had leased for it, as if never claimed."""
        loop = asyncio.new_event_loop()
        claimer = AsyncErrandClient.like(self.client)
        try:
            self._claim_until_stopped(loop, claimer)
        finally:
            loop.run_until_complete(claimer.aclose())
            loop.close()

    def _claim_until_stopped(self, loop: asyncio.AbstractEventLoop, claimer: AsyncErrandClient) -> None:
        opts = self.options
        claiming = core.Claiming(self.queue, opts, self.registry.kinds(), self.stats)
        while not self._stopping.is_set():
            with self._slots:
                while self._busy >= opts.concurrency and not self._stopping.is_set():
                    self._slots.wait()
                call = claiming.call(self._busy)
                if self._stopping.is_set():
                    break
                task = loop.create_task(claimer.call(call))
                self._claim = (loop, task)
                self._claim_started = core.now()
                self._claim_done.clear()
            try:
                jobs = loop.run_until_complete(task)
            except asyncio.CancelledError:
                self._claim_finished()
                break
            except ErrandError as exc:
                self._claim_finished()
                delay = claiming.refused(exc)
                if delay is None:
                    self.error = exc
                    self.request_stop()
                    break
                self._stopping.wait(delay)
                continue
            except Exception:  # never let the loop die
                self._claim_finished()
                self._stopping.wait(claiming.crashed())
                continue
            try:
                # before the claim counts as done: a stop then sees them
                self._accept(claiming.answered(jobs))
            finally:
                self._claim_finished()
        self._claim_finished()

    def _claim_finished(self) -> None:
        with self._slots:
            self._claim = None
            self._claim_done.set()

    def _accept(self, recs: List[Running]) -> None:
        if not recs:
            return
        with self._slots:
            if self._closed:
                late = [r.job for r in recs]
            else:
                late = []
                for rec in recs:
                    self._running[rec.job.id] = rec
                    self._busy += 1
                    self._work.put(rec)
        if late:  # claimed after stopping gave back the rest: hand back at once
            self._release_all(late, core.now() + core.FLUSH_S)

    def _release_all(self, jobs: List[ClaimedJob], give_up_at: float) -> None:
        """Give ``jobs`` back uncounted, all at once (one slow answer must not hold up the
        others); see :class:`core.Releasing`."""
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=min(len(jobs), 16), thread_name_prefix="errand-release") as pool:
            list(pool.map(lambda job: self._release(job, give_up_at), jobs))

    def _release(self, job: ClaimedJob, give_up_at: float) -> None:
        releasing = core.Releasing(job, self.options, self.stats, give_up_at)
        while True:
            try:
                self.client.call(releasing.call)
            except ErrandError as exc:
                pause = releasing.refused(exc)
                if pause is None:
                    return
                threading.Event().wait(pause)
                continue
            releasing.answered()
            return

    # --- running --------------------------------------------------------------------------

    def _run_loop(self) -> None:
        while True:
            rec = self._work.get()
            if rec is None:
                return
            outcome = self._run_one(rec)
            with self._slots:
                rec.finished = True
                # queued before the slot is freed: a stop that sees busy == 0 then queues
                # its end marker after this outcome
                if outcome is not None and not rec.settled_elsewhere:
                    self._settle_q.put(outcome)
                self._running.pop(rec.job.id, None)
                self._busy -= 1
                self._slots.notify_all()

    def _run_one(self, rec: Running) -> Optional[Outcome]:
        fn = self.registry.handlers.get(rec.job.kind)
        if fn is None:
            return core.no_handler(rec.job)
        try:
            result = fn(JobContext(self, rec))
        except LeaseLost:
            return None
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
                    r
                    for r in self._running.values()
                    if not r.settled_elsewhere and not r.beating and r.next_beat <= t
                ]
                for r in due:
                    r.beating = True
            for rec in due:  # concurrently: one hung beat must not delay the others
                try:
                    self._beat_pool.submit(self._beat_in_pool, rec)
                except RuntimeError:  # pool shut down: stopping
                    return

    def _beat_in_pool(self, rec: Running) -> None:
        try:
            self._beat(rec)
        except ErrandError:
            pass
        finally:
            rec.beating = False

    def _beat(
        self,
        rec: Running,
        *,
        progress: Optional[Dict[str, Any]] = None,
        checkpoint: Any = protocol.UNSET,
        raise_lost: bool = False,
    ) -> None:
        try:
            self.client.call(core.heartbeat_call(rec, self.options, progress, checkpoint))
        except ErrandError as exc:
            if core.beat_refused(rec, exc, self.options, self.stats) and raise_lost:
                raise
            return
        core.beat_answered(rec, self.options)

    # --- settling -------------------------------------------------------------------------

    def _settle_loop(self) -> None:
        """Group commit: send what is queued now; what arrives meanwhile goes in the next batch."""
        while True:
            first = self._settle_q.get()
            if first is None:
                return
            batch, last = core.group_commit(
                first, self._settle_q.get_nowait, _queue.Empty, self.options.settle_batch_max
            )
            self._settle(batch)
            if last:
                return

    def _settle(self, batch: List[Outcome]) -> None:
        settling = core.Settling(batch, self.options, self.stats)
        while True:
            nxt = settling.next_call()
            if nxt is None:
                return
            _, call = nxt
            try:
                results = self.client.call(call)
            except ErrandError as exc:
                pause = settling.refused(exc, self._give_up_at)
                if pause:
                    threading.Event().wait(pause)
                continue
            settling.answered(results)
