"""What both workers share: options, handler errors, outcomes, backoff, the running set.

The threaded and the asyncio worker differ only in how they wait and run things; what they
decide (how many jobs to claim, when to heartbeat, how a handler's end becomes a settle
entry, how to read a settle's answer, how long to back off) lives here.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from .. import protocol
from ..errors import ApiError, ErrandError, LeaseLost, NotFound, Timeout, Unavailable
from ..models import ClaimedJob, Job, SettleResult

log = logging.getLogger("errand_client.worker")

#: On stop, a claim in flight for less than this is let finish (its jobs may already be on
#: the way: cancelling it then would leave them leased until their lease lapses); one in
#: flight longer is waiting for work, and is cancelled (the server normally gives back what
#: it had leased for it, uncounted; an answer already on the wire lapses, counted).
CLAIM_SETTLE_S = 0.25

#: After the grace period, how long a stopping worker keeps retrying its settlements and
#: its give-backs.
FLUSH_S = 15.0

#: How long one give-back call may take: a round trip to a server that answers; one that
#: does not is asked again (within :data:`FLUSH_S`) rather than waited for.
RELEASE_CALL_S = 5.0


class JobError(Exception):
    """Raise from a handler to fail the attempt with a chosen retry delay.

    ``retry_in_ms`` left ``None`` uses the server's backoff (as any other exception does);
    ``dead=True`` ends the job at once, attempts left or not.
    """

    def __init__(self, message: str, *, retry_in_ms: Optional[int] = None, dead: bool = False):
        super().__init__(message)
        self.retry_in_ms = retry_in_ms
        self.dead = dead


class NonRetryableError(JobError):
    """Raise from a handler when retrying cannot help: the job goes ``dead`` at once."""

    def __init__(self, message: str) -> None:
        super().__init__(message, dead=True)


@dataclass
class WorkerOptions:
    """How a worker claims, heartbeats, settles and stops.

    - ``concurrency``: jobs run at once; a claim asks for at most the free slots.
    - ``lease_ms``: the lease each claim asks for; heartbeats renew it every
      ``lease_ms * heartbeat_fraction``.
    - ``claim_wait_ms``: how long one claim long-polls for work.
    - ``grace_s``: on stop, how long running handlers may finish before their jobs are
      given back (released uncounted: ``available`` at once, the attempt forgotten).
    - ``reconnect_base_s``/``reconnect_max_s``: backoff (equal jitter: a pause uniform in
      [c/2, c] with c doubling from the base up to the max) while the server is away.
    - ``settle_max_bytes``: a settle request is split so that its body stays below this
      (keep it under the server's ``--max-request-bytes``).
    """

    concurrency: int = 16
    lease_ms: int = 30_000
    heartbeat_fraction: float = 1 / 3
    claim_wait_ms: int = 5_000
    max_claim: int = 100
    settle_batch_max: int = 1_000
    grace_s: float = 20.0
    reconnect_base_s: float = 0.05
    reconnect_max_s: float = 5.0
    settle_max_bytes: int = 256 * 1024
    name: Optional[str] = None

    @property
    def heartbeat_interval_s(self) -> float:
        """Seconds between two heartbeats of one job."""
        return max(0.05, self.lease_ms * self.heartbeat_fraction / 1000)

    def worker_name(self) -> str:
        """The ``worker`` name sent with claims."""
        return self.name or f"py-{socket.gethostname()}-{os.getpid()}"


class Backoff:
    """Exponential backoff with equal jitter, capped; :meth:`reset` after a success."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The next pause: uniform in [c/2, c] for c = min(max, base * 2^failures)."""
        ceiling = min(self.max_s, self.base_s * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Forget earlier failures."""
        self.failures = 0


def claim_size(free_slots: int, options: WorkerOptions) -> int:
    """How many jobs to ask for: the free slots, at most ``max_claim`` (server cap 1,000)."""
    return max(0, min(free_slots, options.max_claim, 1000))


@dataclass
class Running:
    """A job a worker holds: its lease, when it heartbeats next, and how it ended."""

    job: ClaimedJob
    next_beat: float
    lost: bool = False
    given_back: bool = False
    finished: bool = False  # the handler ended: its settlement is queued or sent
    beating: bool = False  # a heartbeat of it is in flight
    progress: Optional[Dict[str, Any]] = None

    @property
    def settled_elsewhere(self) -> bool:
        """True when the handler's outcome must be dropped (lease lost or given back)."""
        return self.lost or self.given_back


@dataclass
class Outcome:
    """A settle entry for one job, ``kind`` ``"complete"`` or ``"fail"``."""

    kind: str
    entry: Dict[str, Any]
    is_fallback: bool = False  # already the replacement of a refused entry


def success(job: ClaimedJob, result: Any) -> Outcome:
    """The completion of a job whose handler returned ``result``; a failure when the result
    is not JSON the server takes (NaN/Infinity, sets, objects, ...)."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return failure(job, TypeError(f"result is not JSON: {exc}"))
    return Outcome("complete", protocol.completion_entry(job.id, job.lease_token, result))


def failure(job: ClaimedJob, exc: BaseException) -> Outcome:
    """The failure of a job whose handler raised ``exc``.

    A :class:`JobError` chooses its retry delay or death; any other exception retries
    with the server's backoff.
    """
    message = f"{type(exc).__name__}: {exc}"[:4000]
    if isinstance(exc, JobError):
        entry = protocol.failure_entry(
            job.id, job.lease_token, message, retry_in_ms=exc.retry_in_ms, dead=exc.dead
        )
    else:
        entry = protocol.failure_entry(job.id, job.lease_token, message)
    return Outcome("fail", entry)


def no_handler(job: ClaimedJob) -> Outcome:
    """A job of a kind with no handler: dead, since no retry here could run it."""
    return Outcome(
        "fail",
        protocol.failure_entry(
            job.id, job.lease_token, f"no handler for kind {job.kind!r}", dead=True
        ),
    )


def settle_call(batch: Sequence[Outcome]) -> "protocol.Call[List[SettleResult]]":
    """One ``POST /v1/jobs/settle`` for a batch of outcomes."""
    completions = [o.entry for o in batch if o.kind == "complete"]
    failures = [o.entry for o in batch if o.kind == "fail"]
    return protocol.settle(completions, failures)


def claim_error_is_fatal(exc: BaseException) -> bool:
    """Whether a claim refusal will not go away by retrying (a bad queue name, 403, 415,
    ...): the worker then stops and ``run()`` raises it. 408/429 and 5xx are retried."""
    return (
        isinstance(exc, ApiError)
        and exc.status is not None
        and 400 <= exc.status < 500
        and exc.status not in (408, 429)
    )


def claim_settle_wait(started: float) -> float:
    """On stop, how much longer a claim sent at ``started`` is let finish before it is
    cancelled (see :data:`CLAIM_SETTLE_S`)."""
    return max(0.0, started + CLAIM_SETTLE_S - now())


class Claiming:
    """How a worker claims, without I/O: the call for the free slots, what a failed claim
    means (stop, or pause how long), and the records of the jobs an answer hands over."""

    def __init__(
        self, queue: str, options: WorkerOptions, kinds: Sequence[str], stats: "Stats"
    ) -> None:
        self.queue = queue
        self.options = options
        self.kinds = list(kinds)
        self.stats = stats
        self.name = options.worker_name()
        self.backoff = Backoff(options.reconnect_base_s, options.reconnect_max_s)

    def call(self, busy: int) -> "protocol.Call[List[ClaimedJob]]":
        """The long-polling claim for the slots ``busy`` leaves free."""
        opts = self.options
        return protocol.claim(
            self.queue,
            worker=self.name,
            max_jobs=claim_size(opts.concurrency - busy, opts),
            wait_ms=opts.claim_wait_ms,
            lease_ms=opts.lease_ms,
            kinds=self.kinds,
        )

    def refused(self, exc: ErrandError) -> Optional[float]:
        """The claim failed with ``exc``: how long to pause before the next one, or ``None``
        when retrying cannot help (see :func:`claim_error_is_fatal`) and the worker stops."""
        if claim_error_is_fatal(exc):
            log.error("claim refused (%s): stopping the worker", exc)
            return None
        delay = self.backoff.next_delay()
        if isinstance(exc, ApiError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        log.warning("claim failed (%s); retrying in %.2fs", exc, delay)
        return delay

    def crashed(self) -> float:
        """The claim loop met an unexpected error (logged here): how long to pause."""
        log.exception("claim loop error")
        return self.backoff.next_delay()

    def answered(self, jobs: Sequence[ClaimedJob]) -> List["Running"]:
        """The claim handed over ``jobs``: count them and make their records (each due a
        heartbeat one interval from now)."""
        self.backoff.reset()
        self.stats.claims += 1
        self.stats.claimed += len(jobs)
        first_beat = now() + self.options.heartbeat_interval_s
        return [Running(job, first_beat) for job in jobs]


class JobInfo:
    """The job part of a handler's context, shared by both workers' contexts.

    ``lease_lost`` turns true once the server said the lease is gone (cancelled, expired,
    given back at stop): a long handler should check it and return early, as its outcome
    will be dropped.
    """

    def __init__(self, running: "Running") -> None:
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
        """What an earlier attempt saved with ``save_checkpoint`` (or ``None``)."""
        return self.job.checkpoint

    @property
    def lease_token(self) -> str:
        """The fencing token of this attempt."""
        return self.job.lease_token

    @property
    def lease_lost(self) -> bool:
        """True once the lease is gone: stop, the outcome will not be recorded."""
        return self._running.settled_elsewhere


def progress_body(percent: Optional[float], message: Optional[str]) -> Dict[str, Any]:
    """The ``progress`` object of a heartbeat."""
    out: Dict[str, Any] = {}
    if percent is not None:
        out["percent"] = percent
    if message is not None:
        out["message"] = message
    return out


def beat_lost(rec: "Running", stats: "Stats") -> bool:
    """Record a heartbeat's ``lease_lost``; False when it only raced the job's own
    settlement (the handler had finished), which is no loss."""
    if rec.finished:
        return False
    if not rec.lost:
        rec.lost = True
        stats.lease_lost += 1
        log.warning("lease lost on job %s: its outcome will be dropped", rec.job.id)
    return True


def heartbeat_call(
    rec: "Running",
    options: WorkerOptions,
    progress: Optional[Dict[str, Any]] = None,
    checkpoint: Any = protocol.UNSET,
) -> "protocol.Call[Dict[str, Any]]":
    """The heartbeat renewing a running job's lease for ``lease_ms``, with progress and a
    checkpoint when given; it may take one heartbeat interval (at least 1 s)."""
    call = protocol.heartbeat(
        rec.job.id,
        rec.job.lease_token,
        lease_ms=options.lease_ms,
        progress=progress,
        checkpoint=checkpoint,
    )
    call.timeout = max(1.0, options.heartbeat_interval_s)
    return call


def beat_answered(rec: "Running", options: WorkerOptions) -> None:
    """A heartbeat went through: the next is due one interval from now."""
    rec.next_beat = now() + options.heartbeat_interval_s


def beat_refused(rec: "Running", exc: ErrandError, options: WorkerOptions, stats: "Stats") -> bool:
    """A heartbeat failed with ``exc``: record it (a lost lease, or a retry soon) and tell
    whether the handler should hear of it; not when it only raced the job's own
    settlement (see :func:`beat_lost`)."""
    if isinstance(exc, LeaseLost):
        return beat_lost(rec, stats)
    interval = options.heartbeat_interval_s
    rec.next_beat = now() + min(interval / 2, 1.0)
    log.warning("heartbeat of job %s failed (%s); retrying", rec.job.id, exc)
    return True


def progress_not_sent(job_id: str, exc: ErrandError) -> None:
    """Log a progress report that could not be sent (the handler goes on)."""
    log.warning("progress of job %s not sent (%s)", job_id, exc)


class CheckpointRetry:
    """Saving a checkpoint: transient failures (server away) are retried with backoff for
    up to one heartbeat interval; anything else is the handler's to hear."""

    def __init__(self, options: WorkerOptions) -> None:
        self.deadline = now() + options.heartbeat_interval_s
        self.backoff = Backoff(options.reconnect_base_s, options.reconnect_max_s)

    def pause_after(self, exc: ErrandError) -> Optional[float]:
        """How long to pause before saving again after ``exc``; ``None``: give up, raise it."""
        if not settle_error_is_transient(exc) or now() > self.deadline:
            return None
        return self.backoff.next_delay()


def settle_error_is_transient(exc: BaseException) -> bool:
    """Whether a refused settle (or heartbeat) request is worth sending again unchanged:
    the server was away or overloaded. Anything else (400, 413, 415, 500, ...) will be
    refused again, so its batch is split instead."""
    if isinstance(exc, (Unavailable, Timeout)):
        return True
    return isinstance(exc, ApiError) and exc.status == 429


def split_by_size(batch: Sequence[Outcome], max_bytes: int) -> List[List[Outcome]]:
    """The batch in consecutive chunks whose settle bodies stay under ``max_bytes`` (an
    entry larger than that alone goes in a chunk of its own)."""
    chunks: List[List[Outcome]] = []
    current: List[Outcome] = []
    size = 64
    for o in batch:
        n = _entry_size(o) + 1
        if current and size + n > max_bytes:
            chunks.append(current)
            current, size = [], 64
        current.append(o)
        size += n
    if current:
        chunks.append(current)
    return chunks


def _entry_size(o: Outcome) -> int:
    try:
        return len(json.dumps(o.entry, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        return 1


def halves(batch: Sequence[Outcome]) -> Tuple[List[Outcome], List[Outcome]]:
    """A refused batch in two, to find the entry the server refuses."""
    mid = len(batch) // 2
    return list(batch[:mid]), list(batch[mid:])


def fallback(outcome: Outcome, exc: BaseException) -> Optional[Outcome]:
    """What to settle instead of one entry the server refused on its own (a result too
    large or not JSON, a retry delay out of range, ...): a plain failure carrying the
    server's message, with the server's backoff (dead if the entry asked for it). ``None``
    when the entry already was such a failure: then there is nothing left to try."""
    e = outcome.entry
    if outcome.is_fallback:
        return None
    message = f"settle refused ({exc}); the handler's outcome could not be recorded"[:4000]
    dead = bool(e.get("dead")) if outcome.kind == "fail" else False
    entry = protocol.failure_entry(e["id"], e["lease_token"], message, dead=dead)
    return Outcome("fail", entry, is_fallback=True)


def group_commit(
    first: Outcome,
    get_nowait: Callable[[], Optional[Outcome]],
    empty: Type[Exception],
    limit: int,
) -> Tuple[List[Outcome], bool]:
    """One settle batch: ``first`` and what is queued already (``get_nowait`` until it
    raises ``empty``), at most ``limit``; what arrives meanwhile goes in the next batch.
    True with it when the queue's end marker (``None``) was taken: no batch follows."""
    batch = [first]
    while len(batch) < limit:
        try:
            item = get_nowait()
        except empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


def give_back_leftovers(running: Iterable["Running"]) -> List["Running"]:
    """At the end of the grace period: the jobs still running, each marked given back (its
    handler's outcome will be dropped), to be released with :class:`Releasing`."""
    out = []
    for r in running:
        if r.settled_elsewhere:
            continue
        r.given_back = True
        log.warning("grace period over: giving back job %s", r.job.id)
        out.append(r)
    return out


class Releasing:
    """Giving one job back at stop, without I/O: send :attr:`call` (``POST
    /v1/jobs/{id}/release``), then :meth:`answered` or :meth:`refused`.

    A release is uncounted: the attempt is forgotten and the job is ``available`` at once,
    so a job on its last attempt runs again instead of going dead because a worker stopped.
    Transient failures (server away) are retried with backoff until ``give_up_at``; after
    that the job runs again when its lease lapses. A lost lease means the job is no longer
    this worker's: nothing to give back.
    """

    def __init__(
        self, job: ClaimedJob, options: WorkerOptions, stats: "Stats", give_up_at: float
    ) -> None:
        self.job = job
        self.stats = stats
        self.give_up_at = give_up_at
        self.backoff = Backoff(options.reconnect_base_s, options.reconnect_max_s)
        self.call: "protocol.Call[Job]" = protocol.release(job.id, job.lease_token)
        self.call.timeout = RELEASE_CALL_S

    def answered(self) -> None:
        """The server took the job back."""
        self.stats.given_back += 1
        log.info("gave back job %s (uncounted: available again)", self.job.id)

    def refused(self, exc: ErrandError) -> Optional[float]:
        """The release failed with ``exc``: how long to pause before asking again, or
        ``None`` when there is nothing more to do."""
        if isinstance(exc, (LeaseLost, NotFound)):
            log.info("job %s not given back: its lease was already lost (%s)", self.job.id, exc)
            return None
        if settle_error_is_transient(exc) and now() < self.give_up_at:
            delay = self.backoff.next_delay()
            if isinstance(exc, ApiError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            return min(delay, max(0.0, self.give_up_at - now()))
        log.warning("could not give back job %s (%s); it runs again when its lease lapses", self.job.id, exc)
        return None


#: Transient failures in a row after which a settle chunk is split anyway (see Settling).
SPLIT_AFTER_FAILURES = 3


class Settling:
    """How one batch of outcomes gets settled, without I/O: call :meth:`next_call` for the
    request to send, then :meth:`answered` or :meth:`refused`; done when it returns None.

    Transient failures (server away) are retried unchanged with backoff until
    ``give_up_at`` (when stopping), except that a chunk failing so
    :data:`SPLIT_AFTER_FAILURES` times in a row is split as if refused; any other refusal splits the batch in halves until the
    refused entry stands alone, which is replaced by :func:`fallback` once, then given up
    with an error log. Big batches are first cut to ``max_bytes``. Both workers drive it.
    """

    def __init__(self, batch: Sequence[Outcome], options: WorkerOptions, stats: "Stats") -> None:
        self.pending: List[List[Outcome]] = split_by_size(batch, options.settle_max_bytes)
        self.stats = stats
        self.backoff = Backoff(options.reconnect_base_s, options.reconnect_max_s)
        self.max_bytes = options.settle_max_bytes
        self.transient_failures = 0  # in a row, of the first chunk

    def next_call(self) -> "Optional[Tuple[List[Outcome], protocol.Call[List[SettleResult]]]]":
        """The next chunk to send and its call, or ``None`` when all are settled."""
        while self.pending:
            chunk = self.pending[0]
            try:
                protocol.encode_body(settle_call(chunk).body)
            except (TypeError, ValueError) as exc:  # cannot even be sent: treat as refused
                self.refused(ApiError(f"not JSON: {exc}", status=400, code="invalid_json"))
                continue
            return chunk, settle_call(chunk)
        return None

    def answered(self, results: Sequence[SettleResult]) -> None:
        """The server took the first chunk (each entry ok or refused, e.g. lease_lost)."""
        chunk = self.pending.pop(0)
        self.backoff.reset()
        self.transient_failures = 0
        self.stats.settles += 1
        report_settled(results)
        for o, r in zip(ordered(chunk), results):
            count(self.stats, o, r)

    def refused(self, exc: BaseException, give_up_at: Optional[float] = None) -> float:
        """The first chunk's request failed with ``exc``: how long to pause before the next
        call (0 for none)."""
        chunk = self.pending[0]
        transient = isinstance(exc, ErrandError) and settle_error_is_transient(exc)
        if transient:
            self.transient_failures += 1
            # A server refusing a body too large may close the connection before its 413
            # is read: that looks like "server away". After a few such failures, split a
            # batch anyway (settling is idempotent), and treat one entry larger than
            # max_bytes as refused.
            if self.transient_failures >= SPLIT_AFTER_FAILURES and (
                len(chunk) > 1 or _entry_size(chunk[0]) > self.max_bytes
            ):
                transient = False
        if transient:
            if give_up_at is not None and now() > give_up_at:
                log.error("settle failed (%s) while stopping; %d leases will lapse", exc, len(chunk))
                self.pending.pop(0)
                return 0.0
            delay = self.backoff.next_delay()
            if isinstance(exc, ApiError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            log.warning("settle failed (%s); retrying in %.2fs", exc, delay)
            return delay
        self.pending.pop(0)
        self.transient_failures = 0
        if len(chunk) > 1:
            a, b = halves(chunk)
            self.pending[0:0] = [a, b]
            return 0.0
        replacement = fallback(chunk[0], exc)
        if replacement is None:
            log.error("settle of job %s refused (%s); giving it up: its lease will lapse", chunk[0].entry["id"], exc)
            self.stats.errors.append((chunk[0].entry["id"], str(exc)))
            return 0.0
        log.error("settle of job %s refused (%s); failing the attempt instead", chunk[0].entry["id"], exc)
        self.pending.insert(0, [replacement])
        return 0.0


def report_settled(results: Sequence[SettleResult]) -> None:
    """Log entries the server refused (``lease_lost``: someone else holds the job now)."""
    for r in results:
        if not r.ok:
            log.info("settle of job %s refused: %s %s", r.id, r.error_code, r.error_message)


Handler = Callable[..., Any]


class Registry:
    """Handlers by job kind."""

    def __init__(self) -> None:
        self.handlers: Dict[str, Handler] = {}

    def add(self, kind: str, fn: Handler) -> None:
        """Register ``fn`` for ``kind`` (one handler per kind)."""
        if kind in self.handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self.handlers[kind] = fn

    def kinds(self) -> List[str]:
        """The kinds to claim."""
        return sorted(self.handlers)


H = TypeVar("H", bound=Callable[..., Any])
C = TypeVar("C")


class WorkerBase(Generic[H, C]):
    """What both workers keep besides their I/O: options, a client (of type ``C``), queue,
    handlers (of type ``H``), counters and the claim refusal that stopped them."""

    def __init__(
        self,
        client: Union[C, str],
        make_client: Callable[..., C],
        queue: str,
        options: Optional[WorkerOptions],
        token: Optional[str],
        overrides: Dict[str, Any],
    ) -> None:
        self.options = options or WorkerOptions(**overrides)
        self._owns_client = isinstance(client, str)
        #: The client given, or one of the worker's own (closed on stop) for a base URL.
        self.client: C
        if isinstance(client, str):
            self.client = make_client(
                client, token=token, max_connections=self.options.concurrency + 8
            )
        else:
            self.client = client
        self.queue = queue
        self.registry = Registry()
        self.stats = Stats()
        #: A claim refusal retrying cannot fix (bad queue name, 403, ...): ``run()`` raises it.
        self.error: Optional[ErrandError] = None

    def register(self, kind: str, fn: H) -> None:
        """Run ``fn(ctx)`` for jobs of ``kind`` (awaited in an :class:`AsyncWorker`); its
        return value is the job's result."""
        self.registry.add(kind, fn)

    def handler(self, kind: str) -> Callable[[H], H]:
        """Decorator form of :meth:`register`."""

        def deco(fn: H) -> H:
            self.register(kind, fn)
            return fn

        return deco


def on_stop_signal(signum: int, already_stopping: bool, request_stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: stop gracefully; a second one: exit now (leases lapse)."""
    if already_stopping:
        log.warning("second signal %d: exiting without waiting", signum)
        os._exit(128 + signum)
    request_stop()


def now() -> float:
    """The monotonic clock all deadlines use."""
    return time.monotonic()


@dataclass
class Stats:
    """Counters a worker keeps (for logs, tests and the benchmark)."""

    claims: int = 0
    claimed: int = 0
    settles: int = 0
    succeeded: int = 0
    failed: int = 0
    given_back: int = 0
    lease_lost: int = 0
    errors: List[Tuple[str, str]] = field(default_factory=list)


def ordered(batch: Sequence[Outcome]) -> List[Outcome]:
    """The batch in the order of the settle answer: completions first, then failures."""
    return [o for o in batch if o.kind == "complete"] + [o for o in batch if o.kind == "fail"]


def count(stats: Stats, outcome: Outcome, result: SettleResult) -> None:
    """Update counters for one settled entry."""
    if not result.ok:
        if result.error_code == "lease_lost":
            stats.lease_lost += 1
        return
    if outcome.kind == "complete":
        stats.succeeded += 1
    else:
        stats.failed += 1
