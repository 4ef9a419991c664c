"""The asyncio worker: ``async def`` handlers, up to N at once on one event loop."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from .. import protocol
from ..aio import AsyncErrandClient
from ..errors import ErrandError, LeaseLost
from ..models import ClaimedJob
from . import core
from .core import Outcome, Running, WorkerOptions


class AsyncJobContext(core.JobInfo):
    """What an async handler gets: the job (see :class:`core.JobInfo`), progress and
    checkpoints."""

    def __init__(self, worker: "AsyncWorker", running: Running) -> None:
        super().__init__(running)
        self._worker = worker

    async def progress(self, percent: Optional[float] = None, message: Optional[str] = None) -> None:
        """Report progress now (a heartbeat), best effort: a failed send is logged and the
        handler goes on. Raises :class:`LeaseLost` when the lease is gone."""
        try:
            await self._worker._beat(self._running, progress=core.progress_body(percent, message), raise_lost=True)
        except LeaseLost:
            raise
        except ErrandError as exc:
            core.progress_not_sent(self.id, exc)

    async def save_checkpoint(self, checkpoint: Any) -> None:
        """Save state to resume from on a retry, durably, now. Transient failures are
        retried for up to one heartbeat interval; raises :class:`LeaseLost` when the lease
        is gone, and the last error when it could not be saved."""
        retry = core.CheckpointRetry(self._worker.options)
        while True:
            try:
                await self._worker._beat(self._running, checkpoint=checkpoint, raise_lost=True)
                return
            except LeaseLost:
                raise
            except ErrandError as exc:
                pause = retry.pause_after(exc)
                if pause is None:
                    raise
                await asyncio.sleep(pause)


AsyncHandler = Callable[[AsyncJobContext], Awaitable[Any]]


class AsyncWorker(core.WorkerBase[AsyncHandler, AsyncErrandClient]):
    """Claims jobs of one queue and runs ``async def`` handlers as tasks.

    ``await worker.run()`` runs until SIGTERM/SIGINT; ``await worker.start()`` and
    ``await worker.stop()`` run it beside other work. Options as for :class:`Worker`.
    A stop cancels the waiting claim (the server gives back what it had leased for it),
    lets handlers finish for ``grace_s``, then cancels the rest and gives their jobs back
    uncounted (``POST /v1/jobs/{id}/release``: ``available`` at once, the attempt
    forgotten).
    """

    def __init__(
        self,
        client: Union[AsyncErrandClient, str],
        queue: str,
        *,
        options: Optional[WorkerOptions] = None,
        token: Optional[str] = None,
        **overrides: Any,
    ) -> None:
        super().__init__(client, AsyncErrandClient, queue, options, token, overrides)
        self._running: Dict[str, Running] = {}
        self._tasks: Dict[str, "asyncio.Task[None]"] = {}
        self._slot_freed: Optional[asyncio.Event] = None
        self._settle_q: "Optional[asyncio.Queue[Optional[Outcome]]]" = None
        self._stopping: Optional[asyncio.Event] = None
        self._stopped: Optional[asyncio.Event] = None
        self._claim_task: "Optional[asyncio.Task[None]]" = None
        self._claim_call: "Optional[asyncio.Task[List[ClaimedJob]]]" = None
        self._claim_started = 0.0
        self._settle_task: "Optional[asyncio.Task[None]]" = None
        self._stop_task: "Optional[asyncio.Task[None]]" = None
        self._give_up_at: Optional[float] = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming and running jobs on the running event loop."""
        if self._stopped is not None:
            raise RuntimeError("worker already started")
        if not self.registry.handlers:
            raise RuntimeError("register at least one handler first")
        self._slot_freed = asyncio.Event()
        self._settle_q = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._claim_task = asyncio.create_task(self._claim_loop())
        self._settle_task = asyncio.create_task(self._settle_loop())

    async def run(self, install_signal_handlers: bool = True) -> None:
        """Start, then wait until stopped (SIGTERM and SIGINT stop it when installed)."""
        await self.start()
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        assert self._stopped is not None
        await self._stopped.wait()
        if self.error is not None:
            raise self.error

    def _on_signal(self, signum: int) -> None:
        """First SIGTERM/SIGINT: stop gracefully; a second one: exit now (leases lapse)."""
        core.on_stop_signal(signum, self._stop_task is not None, self.request_stop)

    def request_stop(self, grace_s: Optional[float] = None) -> None:
        """Begin stopping (from the loop's thread) without waiting."""
        if self._stop_task is not None or self._stopping is None:
            return
        self._stopping.set()
        if self._slot_freed is not None:
            self._slot_freed.set()  # wake a claim loop waiting for a slot
        self._stop_task = asyncio.create_task(
            self._shutdown(self.options.grace_s if grace_s is None else grace_s)
        )

    async def stop(self, grace_s: Optional[float] = None) -> None:
        """Stop (see :meth:`request_stop`) and wait until fully stopped."""
        self.request_stop(grace_s)
        if self._stopped is not None:
            await self._stopped.wait()

    async def _shutdown(self, grace_s: float) -> None:
        assert self._settle_q is not None and self._stopped is not None
        call = self._claim_call
        if call is not None and not call.done():
            wait = core.claim_settle_wait(self._claim_started)
            done, _ = await asyncio.wait({call}, timeout=wait)
            if not done:
                call.cancel()  # it waits for work: the server gives back what it leased
        if self._claim_task is not None:
            await asyncio.gather(self._claim_task, return_exceptions=True)
        pending = list(self._tasks.values())
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
        self._give_up_at = core.now() + core.FLUSH_S
        leftovers = core.give_back_leftovers(self._running.values())
        for r in leftovers:
            task = self._tasks.get(r.job.id)
            if task is not None:
                task.cancel()
        # all at once: one slow answer must not hold up the others
        await asyncio.gather(*(self._release(r.job, self._give_up_at) for r in leftovers))
        self._settle_q.put_nowait(None)
        if self._settle_task is not None:
            await asyncio.gather(self._settle_task, return_exceptions=True)
        if self._owns_client:
            await self.client.aclose()
        self._stopped.set()

    async def _release(self, job: ClaimedJob, give_up_at: float) -> None:
        """Give ``job`` back uncounted (see :class:`core.Releasing`)."""
        releasing = core.Releasing(job, self.options, self.stats, give_up_at)
        while True:
            try:
                await self.client.call(releasing.call)
            except ErrandError as exc:
                pause = releasing.refused(exc)
                if pause is None:
                    return
                await asyncio.sleep(pause)
                continue
            releasing.answered()
            return

    # --- claiming -------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        assert self._slot_freed is not None and self._stopping is not None
        opts = self.options
        claiming = core.Claiming(self.queue, opts, self.registry.kinds(), self.stats)
        while not self._stopping.is_set():
            while len(self._running) >= opts.concurrency and not self._stopping.is_set():
                self._slot_freed.clear()
                await self._slot_freed.wait()
            if self._stopping.is_set():
                break
            call = claiming.call(len(self._running))
            self._claim_started = core.now()
            self._claim_call = asyncio.create_task(self.client.call(call))
            try:
                jobs = await self._claim_call
            except asyncio.CancelledError:
                if self._stopping.is_set():
                    break
                raise
            except ErrandError as exc:
                delay = claiming.refused(exc)
                if delay is None:
                    self.error = exc
                    self._claim_call = None
                    self.request_stop()
                    break
                await self._pause(delay)
                continue
            except Exception:  # never let the loop die
                await self._pause(claiming.crashed())
                continue
            finally:
                self._claim_call = None
            for rec in claiming.answered(jobs):
                self._running[rec.job.id] = rec
                self._tasks[rec.job.id] = asyncio.create_task(self._run_job(rec))

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less when a stop comes."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except asyncio.TimeoutError:
            pass

    # --- running --------------------------------------------------------------------------

    async def _run_job(self, rec: Running) -> None:
        assert self._slot_freed is not None and self._settle_q is not None
        beats = asyncio.create_task(self._beat_loop(rec))
        outcome: Optional[Outcome] = None
        try:
            outcome = await self._run_one(rec)
        finally:
            rec.finished = True
            beats.cancel()
            self._running.pop(rec.job.id, None)
            self._tasks.pop(rec.job.id, None)
            self._slot_freed.set()
            if outcome is not None and not rec.settled_elsewhere:
                self._settle_q.put_nowait(outcome)

    async def _run_one(self, rec: Running) -> Optional[Outcome]:
        fn = self.registry.handlers.get(rec.job.kind)
        if fn is None:
            return core.no_handler(rec.job)
        try:
            result = await fn(AsyncJobContext(self, rec))
        except LeaseLost:
            return None
        except asyncio.CancelledError:
            if rec.settled_elsewhere:
                return None
            raise
        except Exception as exc:  # a handler's error becomes the attempt's failure
            return core.failure(rec.job, exc)
        return core.success(rec.job, result)

    async def _beat_loop(self, rec: Running) -> None:
        while not rec.settled_elsewhere:
            await asyncio.sleep(max(0.0, rec.next_beat - core.now()))
            if core.now() >= rec.next_beat:
                try:
                    await self._beat(rec)
                except ErrandError:
                    pass

    async def _beat(
        self,
        rec: Running,
        *,
        progress: Optional[Dict[str, Any]] = None,
        checkpoint: Any = protocol.UNSET,
        raise_lost: bool = False,
    ) -> None:
        try:
            await self.client.call(core.heartbeat_call(rec, self.options, progress, checkpoint))
        except ErrandError as exc:
            if core.beat_refused(rec, exc, self.options, self.stats) and raise_lost:
                raise
            return
        core.beat_answered(rec, self.options)

    # --- settling -------------------------------------------------------------------------

    async def _settle_loop(self) -> None:
        """Group commit, as in the threaded worker."""
        assert self._settle_q is not None
        while True:
            first = await self._settle_q.get()
            if first is None:
                return
            batch, last = core.group_commit(
                first, self._settle_q.get_nowait, asyncio.QueueEmpty, self.options.settle_batch_max
            )
            await self._settle(batch)
            if last:
                return

    async def _settle(self, batch: List[Outcome]) -> None:
        settling = core.Settling(batch, self.options, self.stats)
        while True:
            nxt = settling.next_call()
            if nxt is None:
                return
            _, call = nxt
            try:
                results = await self.client.call(call)
            except ErrandError as exc:
                pause = settling.refused(exc, self._give_up_at)
                if pause:
                    await asyncio.sleep(pause)
                continue
            settling.answered(results)
